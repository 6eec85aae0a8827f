"""``aspectrag.client.Client`` against a running server, and the LangChain / LlamaIndex
retrievers over a local ``Index`` and over the client."""

from __future__ import annotations

import pytest

from aspectrag.client import Client, ServiceError
from aspectrag.service import create_app


def test_client_mirrors_index(minilm_index, serve, tmp_path):
    srv = serve(create_app(minilm_index))
    with Client(srv.url) as c:
        local = minilm_index.search("Roman consuls", 3, retriever="hybrid")
        remote = c.search("Roman consuls", 3, retriever="hybrid")
        assert [h.chunk.chunk_id for h in remote] == [h.chunk.chunk_id for h in local]
        assert remote[0].chunk.location == local[0].chunk.location
        assert remote[0].score == pytest.approx(local[0].score, rel=1e-5)
        mq = c.search_json("Who governed Rome and where did the legions fight?", 3,
                           retriever="multiquery", base="bm25")
        assert mq["queries"] and mq["hits"][0]["provenance"]["queries"]
        ans = c.ask("What do enzymes do?", 3)
        assert ans.mode == "extractive" and ans.citations
        assert ans.citations[0].chunk.source.endswith("chem.txt")
        events = [e for e, _ in c.ask_stream("What do enzymes do?", 3)]
        assert events[0] == "queries" and events[-1] == "done" and "token" in events
        with pytest.raises(ServiceError, match="unknown retriever"):
            c.search("x", retriever="nope")
        f = tmp_path / "owls.md"
        f.write_text("# Owls\n\nOwls hunt mice at night with silent flight.")
        job = c.wait(c.add_files([f]), timeout=60)
        assert job["status"] == "succeeded", job
        assert c.search("owls silent flight", 1, retriever="bm25")[0].chunk.source.endswith("owls.md")
        assert c.remove(c.search("owls silent flight", 1, retriever="bm25")[0].chunk.source) == 1
        assert c.stats()["documents"] == 3


def test_langchain_retriever(minilm_index, serve):
    pytest.importorskip("langchain_core", reason="langchain-core is not installed")
    from langchain_core.retrievers import BaseRetriever

    from aspectrag.adapters.langchain import AspectragRetriever

    srv = serve(create_app(minilm_index))
    for searcher in (minilm_index, Client(srv.url)):
        r = AspectragRetriever(searcher=searcher, k=2, retriever="hybrid")
        assert isinstance(r, BaseRetriever)
        docs = r.invoke("Why is Mars red?")
        assert len(docs) == 2 and "iron oxide" in docs[0].page_content
        assert docs[0].metadata["source"].endswith("space.md") and docs[0].metadata["rank"] == 1
        assert docs[0].id == docs[0].metadata["chunk_id"]


def test_llamaindex_retriever(minilm_index, serve):
    pytest.importorskip("llama_index.core", reason="llama-index-core is not installed")
    from llama_index.core.retrievers import BaseRetriever

    from aspectrag.adapters.llamaindex import AspectragRetriever

    srv = serve(create_app(minilm_index))
    for searcher in (minilm_index, Client(srv.url)):
        r = AspectragRetriever(searcher, k=2, retriever="hybrid")
        assert isinstance(r, BaseRetriever)
        nodes = r.retrieve("Why is Mars red?")
        assert len(nodes) == 2 and "iron oxide" in nodes[0].node.get_content()
        assert nodes[0].node.metadata["source"].endswith("space.md")
        assert nodes[0].score >= nodes[1].score
