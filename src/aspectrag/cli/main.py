"""The ``aspectrag`` command line: ingest, remove, search, ask, eval, stats.

Feature modules add their commands by importing ``app`` / ``eval_app`` from here (see the
imports at the bottom).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aspectrag.errors import AspectragError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Retrieval-augmented generation for questions with many aspects.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval on standard benchmarks.")
app.add_typer(eval_app, name="eval")
console = Console(stderr=True)
out = Console(soft_wrap=True)

DEFAULT_INDEX = Path(".aspectrag")  # overridden by --index / ASPECTRAG_INDEX
IndexOpt = Annotated[Path, typer.Option("--index", envvar="ASPECTRAG_INDEX",
                                        help="Index folder.", show_default=True)]
RetrieverOpt = Annotated[str, typer.Option("--retriever", "-r",
                                           help="bm25 | dense | hybrid | multiquery | multihead ...")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
AdapterOpt = Annotated[Path | None, typer.Option(
    "--embedder-adapter", help="LoRA adapter folder (aspectrag train embedder) applied to the "
    "embedder; an index built with it must be searched with it.")]
RerankOpt = Annotated[str | None, typer.Option(
    "--rerank", help="Second stage: late-interaction | cross-encoder | bi-encoder.")]
RerankDepthOpt = Annotated[int, typer.Option("--rerank-depth", help="First-stage candidates reranked.")]
RerankModelOpt = Annotated[Path | None, typer.Option(
    "--rerank-model", help="Cross-encoder model folder (sequence classification).")]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="INFO logging.")] = False,
          ) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def fail(msg: str, code: int = 2) -> None:
    """Print one clear error line and exit with ``code``."""
    # soft_wrap: never break the line inside a path or message, whatever the terminal width
    console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def open_index(path: Path, adapter: Path | None = None):  # type: ignore[no-untyped-def]
    """The index at ``path``; with ``adapter``, its embedder is the base model + LoRA adapter."""
    from aspectrag.index import Index

    if adapter is None:
        return Index(path)
    from aspectrag.embed.factory import build_embedder

    try:
        return Index(path, embedder=build_embedder(adapter=str(adapter)))
    except AspectragError as e:
        fail(str(e))


@app.command()
def ingest(
    sources: Annotated[list[str], typer.Argument(help="Files, folders or http(s) URLs.")],
    index: IndexOpt = DEFAULT_INDEX,
    glob: Annotated[str | None, typer.Option(help="Only files matching this pattern, e.g. '*.pdf'.")] = None,
    chunk_size: Annotated[int, typer.Option(help="Chunk size in embedder tokens.")] = 224,
    chunk_overlap: Annotated[int, typer.Option(help="Chunk overlap in embedder tokens.")] = 32,
    embedder_adapter: AdapterOpt = None,
    token_cache: Annotated[bool, typer.Option(
        help="Also store the chunks' token vectors for --rerank late-interaction "
             "(<index>/token_vectors.sqlite; like `aspectrag rerank cache`).")] = False,
) -> None:
    """Add or update documents; unchanged ones are skipped. Exit code 1 if some failed."""
    from aspectrag.config import ChunkingConfig

    idx = open_index(index, embedder_adapter)
    idx.chunking = ChunkingConfig(chunk_size, chunk_overlap)
    try:
        rep = idx.ingest(sources, glob=glob, progress=sys.stderr.isatty())
    except AspectragError as e:
        fail(str(e))
    for src, reason in rep.failed:
        console.print(f"[red]failed[/] {src}: {reason}", highlight=False)
    for src, reason in rep.skipped:
        console.print(f"[yellow]skipped[/] {src}: {reason}", highlight=False)
    embed_share = rep.embed_seconds / rep.seconds if rep.seconds else 0.0
    console.print(
        f"{rep.added} added, {rep.updated} updated, {rep.unchanged} unchanged, "
        + (f"{rep.removed} removed (no longer in their corpus file), " if rep.removed else "")
        + f"{len(rep.skipped)} skipped, {len(rep.failed)} failed; {rep.chunks} chunks in "
        f"{rep.seconds:.1f} s ({rep.chunks_per_second:.1f} chunks/s, {embed_share:.0%} embedding). "
        f"Index: {index} ({idx.store.stats()['documents']} documents, "
        f"{idx.store.stats()['chunks']} chunks)", highlight=False)
    if token_cache:
        from aspectrag.cli.rerank import build_token_cache

        build_token_cache(idx, index)
    if rep.failed:
        raise typer.Exit(1)


@app.command()
def remove(source: Annotated[str, typer.Argument(help="File, folder, URL or corpus file.")],
           index: IndexOpt = DEFAULT_INDEX) -> None:
    """Delete a document (or all documents under a folder) from the index."""
    n = open_index(index).remove(source)
    if n == 0:
        fail(f"{source}: not in the index {index} (see `aspectrag stats --sources`)", 1)
    console.print(f"removed {n} document(s)")


@app.command()
def stats(index: IndexOpt = DEFAULT_INDEX,
          sources: Annotated[bool, typer.Option("--sources", help="List the sources.")] = False) -> None:
    """Show what the index holds."""
    idx = open_index(index)
    s = idx.store.stats()
    out.print(f"{index}: {s['documents']} documents, {s['chunks']} chunks, embedder "
              f"{idx.store.get_meta('embedder')}, vector spaces {idx.store.vector_spaces()}")
    if sources:
        for src in idx.store.sources():
            out.print(src, highlight=False)


def retriever_options(retriever: str, hybrid_fusion: str | None, hybrid_weight: float | None) -> dict:  # type: ignore[type-arg]
    """Options passed to ``build_retriever`` from the common CLI flags."""
    opts: dict = {}  # type: ignore[type-arg]
    if hybrid_fusion:
        opts["fusion"] = hybrid_fusion
    if hybrid_weight is not None:
        opts["weight"] = hybrid_weight
    return opts


FusionOpt = Annotated[str | None, typer.Option("--fusion", help="Hybrid fusion: convex | rrf.")]
BaseOpt = Annotated[str | None, typer.Option(
    "--base", help="multiquery: the retriever it wraps (bm25 | dense | hybrid | multihead; "
    "default hybrid).")]
QueryGenOpt = Annotated[str | None, typer.Option(
    "--query-generator", help="multiquery: auto | rules[:paragraphs+sentences+clauses+keywords+prf]"
    " | openai:MODEL | hf:PATH | none (auto: the configured LLM, else rules).")]
QueriesFromOpt = Annotated[Path | None, typer.Option(
    "--queries-from", help="multiquery: replay recorded queries from this JSON/JSONL file "
    "(question -> list of queries) instead of generating them.")]
ShowQueriesOpt = Annotated[bool, typer.Option(
    "--show-queries", help="multiquery: print the queries searched (eval: log them).")]
WeightOpt = Annotated[float | None, typer.Option("--weight", help="Hybrid: weight of dense in [0,1].")]
SourceOpt = Annotated[list[str] | None, typer.Option("--source", help="Only these sources (repeatable).")]


def multiquery_options(retriever: str, base: str | None, generator: str | None,
                       queries_from: Path | None) -> dict:  # type: ignore[type-arg]
    """``build_retriever`` options of ``--retriever multiquery`` from its CLI flags."""
    given = {"--base": base, "--query-generator": generator, "--queries-from": queries_from}
    if retriever != "multiquery":
        used = [flag for flag, v in given.items() if v is not None]
        if used:
            fail(f"{', '.join(used)}: only for --retriever multiquery")
        return {}
    if queries_from is not None and not queries_from.is_file():
        fail(f"--queries-from {queries_from}: no such file")
    opts: dict = {"base": base or "hybrid"}  # type: ignore[type-arg]
    if generator:
        opts["queries"] = generator
    if queries_from is not None:
        opts["queries_from"] = str(queries_from)
    return opts


def print_queries(r) -> None:  # type: ignore[no-untyped-def]
    """Print the queries the last multi-query search used (``--show-queries``), on stderr."""
    for _ in range(4):  # unwrap rerankers and other wrappers
        if hasattr(r, "last_queries"):
            for q in r.last_queries:
                console.print(f"query [{q.origin}, w={q.weight:g}]: {q.text}", markup=False,
                              highlight=False)
            return
        r = getattr(r, "first_stage", None) or getattr(r, "base", None)
        if r is None:
            break
    console.print("--show-queries: the retriever is not multiquery", highlight=False)


def build_cli_retriever(idx, retriever: str, fusion: str | None, weight: float | None,  # type: ignore[no-untyped-def]
                        rerank: str | None, rerank_depth: int, rerank_model: Path | None,
                        multiquery: dict | None = None):  # type: ignore[type-arg]
    """The first-stage retriever from the CLI flags, wrapped in ``--rerank`` if given;
    ``multiquery``: options from :func:`multiquery_options`."""
    r = idx.retriever(retriever, **retriever_options(retriever, fusion, weight), **(multiquery or {}))
    if rerank is None:
        return r
    from aspectrag.rerank.factory import with_reranker

    return with_reranker(r, rerank, depth=rerank_depth, embedder=idx.embedder,
                         model_path=rerank_model, index_path=idx.path)


@app.command()
def search(
    query: str,
    index: IndexOpt = DEFAULT_INDEX,
    retriever: RetrieverOpt = "hybrid",
    k: Annotated[int, typer.Option("-k", help="Number of chunks.")] = 10,
    source: SourceOpt = None,
    fusion: FusionOpt = None,
    weight: WeightOpt = None,
    embedder_adapter: AdapterOpt = None,
    rerank: RerankOpt = None,
    rerank_depth: RerankDepthOpt = 100,
    rerank_model: RerankModelOpt = None,
    base: BaseOpt = None,
    query_generator: QueryGenOpt = None,
    queries_from: QueriesFromOpt = None,
    show_queries: ShowQueriesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Search the index and print the top-k chunks."""
    idx = open_index(index, embedder_adapter)
    mq = multiquery_options(retriever, base, query_generator, queries_from)
    try:
        r = build_cli_retriever(idx, retriever, fusion, weight, rerank, rerank_depth, rerank_model,
                                mq)
        hits = idx.search(query, k, retriever=r, sources=source)
    except (AspectragError, ValueError) as e:
        fail(str(e))
    if show_queries:
        print_queries(r)
    if as_json:
        print(json.dumps([{"rank": h.rank, "score": h.score, "chunk_id": h.chunk.chunk_id,
                           "doc_id": h.chunk.doc_id, "source": h.chunk.source,
                           "text": h.chunk.text} for h in hits], ensure_ascii=False, indent=1))
        return
    table = Table(show_lines=True)
    for col in ("#", "score", "source / location", "text"):
        table.add_column(col)
    for h in hits:
        text = h.chunk.text if len(h.chunk.text) < 300 else h.chunk.text[:300] + "…"
        table.add_row(str(h.rank), f"{h.score:.3f}", f"{h.chunk.source}\n{h.chunk.location}", text)
    out.print(table)


@app.command()
def ask(
    question: str,
    index: IndexOpt = DEFAULT_INDEX,
    retriever: RetrieverOpt = "hybrid",
    k: Annotated[int, typer.Option("-k", help="Number of chunks given to the answerer.")] = 5,
    llm: Annotated[str | None, typer.Option(help="openai:MODEL | hf:PATH | extractive.")] = None,
    source: SourceOpt = None,
    fusion: FusionOpt = None,
    weight: WeightOpt = None,
    embedder_adapter: AdapterOpt = None,
    rerank: RerankOpt = None,
    rerank_depth: RerankDepthOpt = 100,
    rerank_model: RerankModelOpt = None,
    base: BaseOpt = None,
    query_generator: QueryGenOpt = None,
    queries_from: QueriesFromOpt = None,
    show_queries: ShowQueriesOpt = False,
    decoding: Annotated[str, typer.Option(
        help="concat (all passages in one prompt) | rag-token | rag-sequence (Lewis et al. "
             "2020; --llm hf:PATH, or rag-token with --llm openai-completions:MODEL).")] = "concat",
    stream: Annotated[bool, typer.Option("--stream/--no-stream",
                                         help="Print the answer as it is generated.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question with numbered citations to the passages used."""
    idx = open_index(index, embedder_adapter)
    mq = multiquery_options(retriever, base, query_generator, queries_from)
    try:
        r = build_cli_retriever(idx, retriever, fusion, weight, rerank, rerank_depth, rerank_model,
                                mq)
        from aspectrag.generate.factory import build_generator
        from aspectrag.generate.run import answer_question

        gen = build_generator(llm, idx.embedder, decoding=decoding)
        hits = idx.search(question, k, retriever=r, sources=source)
        streaming = stream and not as_json
        ans = answer_question(gen, question, hits, on_piece=(
            lambda p: out.print(p, end="", highlight=False, markup=False)) if streaming else None)
    except (AspectragError, ValueError) as e:
        fail(str(e))
    if show_queries:
        print_queries(r)
    if as_json:
        print(json.dumps(ans.to_dict(), ensure_ascii=False, indent=1))
        return
    if not streaming:
        out.print(ans.answer, highlight=False, markup=False)
    out.print()
    if ans.extras.get("invalid_citations"):
        console.print(f"removed invalid citations {ans.extras['invalid_citations']}", highlight=False)
    for c in ans.citations:
        out.print(f"[{c.n}] {c.chunk.source} ({c.chunk.location})", highlight=False)


@eval_app.command("beir")
def eval_beir(
    folder: Annotated[Path, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/.")],
    split: Annotated[str, typer.Option(help="qrels split.")] = "test",
    retriever: RetrieverOpt = "hybrid",
    index: Annotated[Path | None, typer.Option("--index", help="Index folder to build/reuse "
                                                "(default: a cache folder per corpus).")] = None,
    fusion: FusionOpt = None,
    weight: WeightOpt = None,
    embedder_adapter: AdapterOpt = None,
    rerank: RerankOpt = None,
    rerank_depth: RerankDepthOpt = 100,
    rerank_model: RerankModelOpt = None,
    base: BaseOpt = None,
    query_generator: QueryGenOpt = None,
    queries_from: QueriesFromOpt = None,
    show_queries: ShowQueriesOpt = False,
    as_json: JsonOpt = False,
    per_query: Annotated[Path | None, typer.Option(
        help="Also write per-query nDCG@10 as JSON {query id: score} to this file (for paired "
             "significance tests between runs).")] = None,
) -> None:
    """nDCG@10, Recall@100 and MRR@10 of a retriever on a BEIR data set."""
    mq = multiquery_options(retriever, base, query_generator, queries_from)
    if show_queries:
        logging.getLogger("aspectrag.multiquery").setLevel(logging.INFO)
    from aspectrag.evaluate.beir import (
        default_eval_index,
        load_beir,
        per_query_scores,
        run_retriever,
        score_run,
    )

    try:
        ds = load_beir(folder, split)
    except AspectragError as e:
        fail(str(e))
    path = index or default_eval_index(folder)
    if embedder_adapter is not None and index is None:  # one cache index per adapter
        from aspectrag.train.adapter import adapter_id

        try:
            path = path.with_name(f"{path.name}-lora-{adapter_id(embedder_adapter).replace('@', '-')}")
        except AspectragError as e:
            fail(str(e))
    idx = open_index(path, embedder_adapter)
    try:
        rep = idx.ingest([str(ds.corpus)], progress=sys.stderr.isatty())
        if rep.failed:
            fail(f"{ds.corpus}: {rep.failed[0][1]}")
        r = build_cli_retriever(idx, retriever, fusion, weight, rerank, rerank_depth, rerank_model,
                                mq)
    except (AspectragError, ValueError) as e:
        fail(str(e))
    run = run_retriever(r, ds.queries, progress=sys.stderr.isatty())
    scores = score_run(ds.qrels, run)
    if per_query is not None:
        per_query.write_text(json.dumps(dict(zip(ds.qrels, per_query_scores(ds.qrels, run).tolist(),
                                                 strict=True))))  # fmt: skip
    if as_json:
        print(json.dumps(scores))
        return
    table = Table(title=f"{folder} ({split}, {len(ds.queries)} queries), retriever {r.name}")
    for m in scores:
        table.add_column(m)
    table.add_row(*(f"{v:.4f}" for v in scores.values()))
    out.print(table)


# Feature modules register their commands on import.
for _module in ("aspectrag.cli.train", "aspectrag.cli.rerank", "aspectrag.cli.heads",
                "aspectrag.cli.eval_mrag"):
    __import__(_module)
__import__("aspectrag.cli.serve")  # aspectrag serve (HTTP service)
