"""The ``aspectrag`` command line: ingest, remove, search, ask, eval, stats.

The commands of the feature modules (``rerank``, ``heads``, ``train``, ``eval mrag``) are
registered explicitly at the bottom; those modules import only ``cli/common.py``, so nothing
imports this module back (no import cycle).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from aspectrag.cli import admin, crawl, eval_mrag, heads, rerank, serve, train
from aspectrag.cli.common import (
    DEFAULT_INDEX,
    AdapterOpt,
    IndexOpt,
    JsonOpt,
    NoWaitOpt,
    RerankDepthOpt,
    RerankModelOpt,
    RerankOpt,
    RetrieverOpt,
    RuntimeOpt,
    console,
    edge_setup,
    fail,
    open_index,
    out,
    path_or_none,
    prepare_twin,
    settings,
)
from aspectrag.errors import AspectragError
from aspectrag.retrieve.factory import DEFAULT_RETRIEVER


class _Group(typer.core.TyperGroup):
    """Maps every :class:`AspectragError` a command lets through to one error line (exit 2)
    and OS / SQLite errors to one line naming the failure (exit 1): never a traceback for a
    user error or a full disk."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        import sqlite3

        try:
            return super().invoke(ctx)
        except AspectragError as e:
            fail(str(e))
        except (OSError, sqlite3.Error) as e:
            fail(f"{_io_message(e)} (the index keeps its last committed state)", 1)


def _io_message(e: BaseException) -> str:
    """One line for an OS or SQLite error, with a hint for a full or read-only disk."""
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        text = f"{where}{e.strerror or e}"
    else:
        text = f"index database error: {e}"
    if any(w in text.lower() for w in ("disk", "space", "too large", "read-only", "readonly")):
        text += "; check the free space and write permission of the index folder"
    return text


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_Group,
                  help="Retrieval-augmented generation for questions with many aspects.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval on standard benchmarks.")
app.add_typer(eval_app, name="eval")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="INFO logging.")] = False,
          config: Annotated[Path | None, typer.Option(
              "--config", help="TOML settings file (default: $ASPECTRAG_CONFIG, ./aspectrag.toml, "
              "~/.config/aspectrag/config.toml). Flags > environment > file > defaults.")] = None,
          ) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from aspectrag.settings import use_config_file

    use_config_file(config)
    settings()  # a bad file or variable: one error line now, not a traceback later



@app.command()
def ingest(
    sources: Annotated[list[str], typer.Argument(help="Files, folders or http(s) URLs.")],
    index: IndexOpt = DEFAULT_INDEX,
    glob: Annotated[str | None, typer.Option(help="Only files matching this pattern, e.g. '*.pdf'.")] = None,
    chunk_size: Annotated[int | None, typer.Option(
        help="Chunk size in embedder tokens (default: the index's recorded chunking, else "
             "the chunking setting, 128).")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(
        help="Chunk overlap in embedder tokens (default: the index's recorded chunking, else "
             "the chunking setting, 16).")] = None,
    embedder_adapter: AdapterOpt = None,
    runtime: RuntimeOpt = None,
    token_cache: Annotated[bool, typer.Option(
        help="Also store the chunks' token vectors for --rerank late-interaction "
             "(<index>/token_vectors.sqlite; like `aspectrag rerank cache`).")] = False,
    max_file_size: Annotated[float, typer.Option(
        help="Per-file size limit in MB (larger files are reported as failed).")] = 50.0,
    no_wait: NoWaitOpt = False,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="Host or CIDR that URL sources may resolve to although it is not "
                             "public (e.g. 127.0.0.1). Repeatable.")] = None,
    engine: Annotated[str, typer.Option(
        help="inprocess, or ray: load/split as Ray tasks and embed in Ray actors (needs "
             "aspectrag[ray]; same resulting index).")] = "inprocess",
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster address for --engine ray (default: start a local Ray).")] = None,
    workers: Annotated[int, typer.Option(
        help="Embedding actors for --engine ray.", min=1)] = 1,
) -> None:
    """Add or update documents; unchanged ones are skipped. Exit code 1 if some failed."""
    edge_setup(runtime)
    if engine not in ("inprocess", "ray"):
        fail(f"--engine {engine}: unknown ingest engine; use inprocess or ray")
    idx = open_index(index, embedder_adapter)
    if chunk_size is not None or chunk_overlap is not None:  # else the index's own chunking
        idx.chunking = settings().replace(
            chunking={"chunk_size": chunk_size, "chunk_overlap": chunk_overlap}).chunking
        idx.chunking_explicit = True
    try:
        rep = idx.ingest(sources, glob=glob, progress=sys.stderr.isatty(), wait=not no_wait,
                         on_wait=lambda m: console.print(m, highlight=False, soft_wrap=True),
                         max_file_bytes=int(max_file_size * 2**20),
                         allow_hosts=tuple(allow_host or ()), engine=engine,
                         ray_address=ray_address, workers=workers)
        counts = idx.store.stats()
    except AspectragError as e:
        fail(str(e))
    for src, reason in rep.failed:
        console.print(f"[red]failed[/] {src}: {reason}", highlight=False)
    for src, reason in rep.skipped:
        console.print(f"[yellow]skipped[/] {src}: {reason}", highlight=False)
    if rep.skipped_types:
        console.print("skipped files of unsupported types: " + ", ".join(
            f"{n} {ext}" for ext, n in sorted(rep.skipped_types.items(), key=lambda kv: -kv[1])),
            highlight=False)
    embed_share = rep.embed_seconds / rep.seconds if rep.seconds else 0.0
    console.print(
        f"{rep.added} added, {rep.updated} updated, {rep.unchanged} unchanged, "
        + (f"{rep.removed} removed (no longer in their corpus file), " if rep.removed else "")
        + f"{len(rep.skipped)} skipped, {len(rep.failed)} failed; {rep.chunks} chunks in "
        f"{rep.seconds:.1f} s ({rep.chunks_per_second:.1f} chunks/s, {embed_share:.0%} embedding"
        + (f"; waited {rep.wait_seconds:.1f} s for another writer" if rep.wait_seconds >= 0.5
           else "") + "). "
        f"Index: {index} ({counts['documents']} documents, {counts['chunks']} chunks)",
        highlight=False)
    if token_cache:
        rerank.build_token_cache(idx, index)
    if embedder_adapter is None and rep.chunks:
        prepare_twin(idx)
    if rep.failed:
        raise typer.Exit(1)


@app.command()
def remove(source: Annotated[str, typer.Argument(help="File, folder, URL or corpus file.")],
           index: IndexOpt = DEFAULT_INDEX, no_wait: NoWaitOpt = False) -> None:
    """Delete a document (or all documents under a folder) from the index."""
    try:
        n = open_index(index, must_exist=True).remove(source, wait=not no_wait, on_wait=lambda m: console.print(
            m, highlight=False, soft_wrap=True))
    except AspectragError as e:
        fail(str(e))
    if n == 0:
        fail(f"{source}: not in the index {index} (see `aspectrag stats --sources`)", 1)
    console.print(f"removed {n} document(s)")


@app.command()
def stats(index: IndexOpt = DEFAULT_INDEX,
          sources: Annotated[bool, typer.Option("--sources", help="List the sources.")] = False) -> None:
    """Show what the index holds."""
    from aspectrag.ingest.chunking import recorded_chunking

    idx = open_index(index, must_exist=True)
    try:
        s = idx.store.stats()
        ch = recorded_chunking(idx.store)
        chunking = f"{ch.chunk_size}/{ch.chunk_overlap} tokens" if ch else "not recorded"
        out.print(f"{index}: {s['documents']} documents, {s['chunks']} chunks, embedder "
                  f"{idx.store.get_meta('embedder')}, chunking {chunking}, vector spaces "
                  f"{idx.store.vector_spaces()}")
        if sources:
            for src in idx.store.sources():
                out.print(src, highlight=False)
    except AspectragError as e:
        fail(str(e))


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
        used = [flag for flag, v in given.items()
                if v is not None and not (retriever == "auto" and flag == "--base")]
        if used:
            fail(f"{', '.join(used)}: only for --retriever multiquery")
        return {"base": base or "hybrid"} if retriever == "auto" else {}
    if queries_from is not None and not queries_from.is_file():
        fail(f"--queries-from {queries_from}: no such file")
    opts: dict = {"base": base or "hybrid"}  # type: ignore[type-arg]
    if generator:
        opts["queries"] = generator
    if queries_from is not None:
        opts["queries_from"] = str(queries_from)
    return opts


def print_queries(res) -> None:  # type: ignore[no-untyped-def]
    """Print the queries a multi-query search used (``--show-queries``), on stderr, from its
    :class:`~aspectrag.types.SearchResult`."""
    if not res.queries:
        console.print("--show-queries: the retriever is not multiquery", highlight=False)
        return
    route = res.info.get("route")
    if route:
        console.print(route["reason"], markup=False, highlight=False)
    for q in res.queries:
        console.print(f"query [{q['kind']}, w={q['weight']:g}]: {q['query']}", markup=False,
                      highlight=False)


def build_cli_retriever(idx, retriever: str, fusion: str | None, weight: float | None,  # type: ignore[no-untyped-def]
                        rerank: str | None, rerank_depth: int, rerank_model: Path | None,
                        multiquery: dict | None = None):  # type: ignore[type-arg]
    """The first-stage retriever from the CLI flags, wrapped in ``--rerank`` if given;
    ``multiquery``: options from :func:`multiquery_options`."""
    r = idx.retriever(retriever, **retriever_options(retriever, fusion, weight), **(multiquery or {}))
    if rerank is None:
        return r
    from aspectrag.rerank.cache import CACHE_FILE
    from aspectrag.rerank.factory import with_reranker

    cache = idx.store.side_path(CACHE_FILE)  # the token cache is a side file of the store
    return with_reranker(r, rerank, depth=rerank_depth, embedder=idx.embedder,
                         model_path=rerank_model, index_path=cache.parent if cache else None)


@app.command()
def search(
    query: str,
    index: IndexOpt = DEFAULT_INDEX,
    retriever: RetrieverOpt = DEFAULT_RETRIEVER,
    k: Annotated[int, typer.Option("-k", help="Number of chunks.")] = 10,
    source: SourceOpt = None,
    fusion: FusionOpt = None,
    weight: WeightOpt = None,
    embedder_adapter: AdapterOpt = None,
    runtime: RuntimeOpt = None,
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
    edge_setup(runtime)
    idx = open_index(index, embedder_adapter, must_exist=True, for_queries=True)
    mq = multiquery_options(retriever, base, query_generator, queries_from)
    try:
        idx.check_request(query, k)
        r = build_cli_retriever(idx, retriever, fusion, weight, rerank, rerank_depth, rerank_model,
                                mq)
        res = idx.search_result(query, k, retriever=r, sources=source)
    except (AspectragError, ValueError) as e:
        fail(str(e))
    hits = res.hits
    if show_queries:
        print_queries(res)
    if as_json:
        print(json.dumps([{"rank": h.rank, "score": h.score, "chunk_id": h.chunk.chunk_id,
                           "doc_id": h.chunk.doc_id, "source": h.chunk.source,
                           "text": h.chunk.text} for h in hits], ensure_ascii=False, indent=1))
        return
    out.print(hits_table(hits))


def hits_table(hits):  # type: ignore[no-untyped-def]
    """The results table of ``search``: rank, score, where (file name and location on lines of
    their own, never cut; then the folder, folded at the column width) and the text (first
    300 characters)."""
    from rich.markup import escape
    from rich.table import Table

    def where(source: str) -> tuple[str, str]:  # (name, folder or URL)
        if source.startswith(("http://", "https://")):
            return source, ""
        p = Path(source)
        return p.name or source, str(p.parent) if p.name else ""

    cells = [(*where(h.chunk.source), str(h.chunk.location or "")) for h in hits]
    width = max([len(t) for c in cells for t in c[:1] + c[2:]] + [len("source / location")])
    table = Table(show_lines=True)
    table.add_column("#", no_wrap=True)
    table.add_column("score", no_wrap=True)
    table.add_column("source / location", min_width=min(width, 100), overflow="fold")
    table.add_column("text", min_width=20)
    for h, (name, folder, location) in zip(hits, cells, strict=True):
        text = h.chunk.text if len(h.chunk.text) < 300 else h.chunk.text[:300] + "…"
        lines = [f"[bold]{escape(name)}[/]", escape(location)] + (
            [f"[dim]{escape(folder)}[/]"] if folder else [])
        table.add_row(str(h.rank), f"{h.score:.3f}", "\n".join(x for x in lines if x),
                      escape(text))
    return table


@app.command()
def ask(
    question: str,
    index: IndexOpt = DEFAULT_INDEX,
    retriever: RetrieverOpt = DEFAULT_RETRIEVER,
    k: Annotated[int, typer.Option("-k", help="Number of chunks given to the answerer.")] = 5,
    llm: Annotated[str | None, typer.Option(help="openai:MODEL | hf:PATH | extractive.")] = None,
    source: SourceOpt = None,
    fusion: FusionOpt = None,
    weight: WeightOpt = None,
    embedder_adapter: AdapterOpt = None,
    runtime: RuntimeOpt = None,
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
    edge_setup(runtime)
    idx = open_index(index, embedder_adapter, must_exist=True, for_queries=True)
    mq = multiquery_options(retriever, base, query_generator, queries_from)
    try:
        idx.check_request(question, k, field="question")
        r = build_cli_retriever(idx, retriever, fusion, weight, rerank, rerank_depth, rerank_model,
                                mq)
        from aspectrag.generate.factory import build_generator
        from aspectrag.generate.run import answer_question

        gen = build_generator(llm, idx.embedder, decoding=decoding)
        res = idx.search_result(question, k, retriever=r, sources=source)
        hits = res.hits
        streaming = stream and not as_json
        ans = answer_question(gen, question, hits, on_piece=(
            lambda p: out.print(p, end="", highlight=False, markup=False)) if streaming else None)
    except (AspectragError, ValueError) as e:
        fail(str(e))
    if show_queries:
        print_queries(res)
    if as_json:
        print(json.dumps(ans.to_dict(), ensure_ascii=False, indent=1))
        _warn_unsupported(ans)
        return
    if not streaming:
        out.print(ans.answer, highlight=False, markup=False)
    out.print()
    if ans.extras.get("invalid_citations"):
        console.print(f"removed invalid citations {ans.extras['invalid_citations']}", highlight=False)
    for c in ans.citations:
        out.print(f"[{c.n}] {c.chunk.source} ({c.chunk.location})", highlight=False)
    _warn_unsupported(ans)


def _warn_unsupported(ans) -> None:  # type: ignore[no-untyped-def]
    """One warning line on stderr for an LLM answer that cites no passage (contract 9)."""
    if ans.mode == "llm" and not ans.extras.get("supported", True):
        console.print("[yellow]warning:[/] the answer cites none of the retrieved passages, so "
                      "nothing in the index supports it (check it, or retry with a larger -k)",
                      highlight=False, soft_wrap=True)


@eval_app.command("beir")
def eval_beir(
    folder: Annotated[Path, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/.")],
    split: Annotated[str, typer.Option(help="qrels split.")] = "test",
    retriever: RetrieverOpt = DEFAULT_RETRIEVER,
    index: Annotated[Path | None, typer.Option("--index", help="Index folder to build/reuse "
                                                "(default: a cache folder per corpus).")] = None,
    fusion: FusionOpt = None,
    weight: WeightOpt = None,
    embedder_adapter: AdapterOpt = None,
    runtime: RuntimeOpt = None,
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
    edge_setup(runtime)
    mq = multiquery_options(retriever, base, query_generator, queries_from)
    if show_queries:
        logging.getLogger("aspectrag.multiquery").setLevel(logging.INFO)
    from aspectrag.evaluate.beir import beir_run, default_eval_index, load_beir
    from aspectrag.evaluate.metrics import per_query_scores, score_run

    try:
        from aspectrag.extras import optional_import

        optional_import("ranx", "eval beir")  # before the long work
        ds = load_beir(folder, split)
    except AspectragError as e:
        fail(str(e))
    from aspectrag.embed.factory import resolve_runtime

    try:  # the default cache folder is per runtime (a new index's runtime)
        path = index or default_eval_index(folder, resolve_runtime(settings().embedder.runtime,
                                                                   None))
    except AspectragError as e:
        fail(str(e))
    embedder_adapter = embedder_adapter or path_or_none(settings().embedder.adapter)
    if embedder_adapter is not None and index is None:  # one cache index per adapter
        from aspectrag.embed.adapter import adapter_id

        try:
            path = path.with_name(f"{path.name}-lora-{adapter_id(embedder_adapter).replace('@', '-')}")
        except AspectragError as e:
            fail(str(e))
    idx = open_index(path, embedder_adapter)
    try:
        rep = idx.ingest([str(ds.corpus)], progress=sys.stderr.isatty())
        if rep.failed:
            fail(f"{ds.corpus}: {rep.failed[0][1]}")
        empty = _empty_documents(rep.skipped)
        r = build_cli_retriever(idx, retriever, fusion, weight, rerank, rerank_depth, rerank_model,
                                mq)
    except (AspectragError, ValueError) as e:
        fail(str(e))
    run = beir_run(r, ds.queries, progress=sys.stderr.isatty())
    scores = score_run(ds.qrels, run)
    if per_query is not None:
        per_query.write_text(json.dumps(dict(zip(ds.qrels, per_query_scores(ds.qrels, run).tolist(),
                                                 strict=True))))  # fmt: skip
    if as_json:
        print(json.dumps({**scores, "empty_documents": {"count": len(empty), "ids": empty[:20]}}
                         if empty else scores))
        return
    from rich.table import Table

    caption = f"{len(empty)} empty documents skipped" if empty else None
    table = Table(title=f"{folder} ({split}, {len(ds.queries)} queries), retriever {r.name}",
                  caption=caption)
    for m in scores:
        table.add_column(m)
    table.add_row(*(f"{v:.4f}" for v in scores.values()))
    out.print(table)


def _empty_documents(skipped: list[tuple[str, str]]) -> list[str]:
    """Ids of the corpus documents skipped for having neither title nor text (sorted), after
    one warning line on stderr naming how many and the first few; they are not a failure."""
    from aspectrag.ingest.pipeline import EMPTY_DOCUMENT

    ids = sorted(src.rpartition("#")[2] for src, why in skipped if why == EMPTY_DOCUMENT)
    if ids:
        first = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        console.print(f"[yellow]warning:[/] {len(ids)} empty document(s) (neither title nor text) "
                      f"skipped: {first}", highlight=False, soft_wrap=True)
    return ids


# The feature modules' commands, registered explicitly.
app.add_typer(train.train_app, name="train")
app.add_typer(rerank.rerank_app, name="rerank")
app.command("heads")(heads.heads_cmd)
eval_app.command("mrag")(eval_mrag.eval_mrag)
app.command("check")(admin.check)
app.command("repair")(admin.repair)
app.command("crawl")(crawl.crawl)
app.command("serve")(serve.serve)
