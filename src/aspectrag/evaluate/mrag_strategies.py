"""Strategies of the MRAG evaluation and the evaluation indexes they run on.

A strategy is a retriever factory name plus options, the index variant it needs and whether
it searches the data set's LLM sub-queries (Fusion RAG, Besta et al. 2024 section 4). The
indexes are built with the product ingest pipeline; all variants of one data set share one
forward pass per text (a caching multi-head embedder).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from aspectrag.errors import AspectragError
from aspectrag.evaluate.mrag import MragDataset, StrategyRun, run_strategy
from aspectrag.retrieve.base import Retriever

log = logging.getLogger("aspectrag.evaluate")


@dataclass(frozen=True, slots=True)
class Strategy:
    """A named retrieval strategy of the MRAG evaluation.

    Attributes:
        name: strategy name (table row, JSON key).
        retriever: retriever factory name (``dense``, ``multihead``...).
        options: factory options.
        index: evaluation index variant it needs (a key of ``INDEX_VARIANTS``).
        fusion: wrap it in a ``MultiQueryRetriever`` searching the data set's LLM sub-queries
            (Fusion RAG: 4 sub-queries, reciprocal rank fusion, c = 60, without the question).
    """

    name: str
    retriever: str
    options: tuple[tuple[str, object], ...] = ()
    index: str = "main"
    fusion: bool = False


INDEX_VARIANTS: dict[str, dict[str, object]] = {
    "main": {"split": True},  # the default multi-head layout (CLS pooling, 12 heads) + split
    "mean": {"pooling": "mean"},  # the paper's pooling choice for encoders
    **{f"g{g}": {"groups": g} for g in (1, 2, 3, 4, 6)},
}
"""Evaluation index variants: ``MultiHeadEmbedder`` options (all share one forward pass)."""


def _s(
    name: str, retriever: str, index: str = "main", fusion: bool = False, **opts: object
) -> Strategy:
    return Strategy(name, retriever, tuple(sorted(opts.items())), index, fusion)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        _s("standard", "dense"),
        _s("split", "split"),
        _s("mrag", "multihead-heads"),
        _s("mrag-safe", "multihead"),
        _s("mrag-paper", "multihead-paper", index="mean"),
        _s("mrag-paper-cls", "multihead-paper"),
        _s("mrag-unweighted", "multihead-unweighted"),
        _s("mrag-distance", "multihead-distance"),
        _s("mrag-centred", "multihead-heads", dense_weight=0.0),
        _s("mrag-importance", "multihead-heads", votes="importance"),
        *[_s(f"mrag-g{g}", "multihead-heads", index=f"g{g}") for g in (1, 2, 3, 4, 6)],
        _s("bm25", "bm25"),
        _s("hybrid", "hybrid"),
        _s("mrag+bm25", "multihead-bm25"),
        _s("fusion", "dense", fusion=True),
        _s("fusion-mrag", "multihead-heads", fusion=True),
    ]
}
"""Built-in strategies; any other retriever factory name is accepted too (run on ``main``)."""

DEFAULT_STRATEGIES = (
    "standard",
    "split",
    "mrag",
    "mrag-paper",
    "mrag-unweighted",
    "mrag-distance",
    "mrag-centred",
    "mrag-g1",
    "mrag-g2",
    "mrag-g3",
    "mrag-g4",
    "mrag-g6",
    "bm25",
    "hybrid",
    "mrag+bm25",
    "fusion",
    "fusion-mrag",
)


def strategy(name: str) -> Strategy:
    """The built-in strategy ``name`` or, for a retriever factory name, that retriever with
    default options on the main index. Raises AspectragError for an unknown name."""
    if name in STRATEGIES:
        return STRATEGIES[name]
    from aspectrag.retrieve.factory import available

    if name in available():
        return Strategy(name, name)
    raise AspectragError(
        f"unknown strategy {name!r}; built-in: {', '.join(STRATEGIES)}; "
        f"retrievers: {', '.join(available())}"
    )


def default_cache_dir() -> Path:
    """``<cache_dir>/mrag`` (``cache_dir`` setting, default ``~/.cache/aspectrag``)."""
    from aspectrag.settings import get_settings

    return get_settings().cache_dir / "mrag"


class MragEvaluation:
    """Builds (or reuses) the evaluation indexes of a data set and runs strategies on them.

    Indexes live in ``<cache_dir>/<dataset>-<fingerprint>/<variant>/`` and are built with the
    product ingest pipeline from a BEIR-layout ``corpus.jsonl`` written beside them (title and
    text of each document; the pipeline chunks at 224 tokens and prepends the title).

    Args:
        ds: the data set.
        cache_dir: where indexes are kept (default ``~/.cache/aspectrag/mrag``).
        model_path: embedding model folder (default: the bundled MiniLM).
        runtime: embedder runtime (``torch``, ``onnx-int8``, ``onnx-fp32``, ``auto``; default:
            the ``embedder.runtime`` setting, see :func:`~aspectrag.embed.factory.resolve_runtime`).
            The embedder name (with its ``@onnx-*`` suffix) is part of the index folder, so
            each runtime has its own indexes.
        progress: show progress bars.
    """

    def __init__(
        self,
        ds: MragDataset,
        cache_dir: str | Path | None = None,
        *,
        model_path: str | None = None,
        runtime: str | None = None,
        progress: bool = False,
    ) -> None:
        import re

        self.ds = ds
        self.progress = progress
        from aspectrag.embed.factory import multihead_embedder
        from aspectrag.multihead.embedder import RawCache

        # one forward pass per text for every index variant and strategy (layer -1, CLS and
        # mean pooling memoised; the variants' copies share the cache); the runtime follows
        # ``runtime`` / the ``embedder.runtime`` setting, and names the cache folder
        self.embedder = multihead_embedder(model_path, runtime=runtime,
                                           raw_cache=RawCache((-1,), ("cls", "mean")))
        model = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.embedder.name)
        self.root = Path(cache_dir or default_cache_dir()) / f"{ds.name}-{ds.fingerprint()}-{model}"
        self._indexes: dict[str, object] = {}
        self._replay: object | None = None

    def corpus(self) -> Path:
        """The data set as ``corpus.jsonl`` (written once)."""
        path = self.root / "corpus.jsonl"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                for d in self.ds.documents:
                    fh.write(
                        json.dumps(
                            {"_id": d.doc_id, "title": d.title, "text": d.text}, ensure_ascii=False
                        )
                        + "\n"
                    )
            tmp.replace(path)
        return path

    def index(self, variant: str):  # type: ignore[no-untyped-def]
        """The :class:`~aspectrag.index.Index` of ``variant`` (ingested if needed)."""
        if variant in self._indexes:
            return self._indexes[variant]
        if variant not in INDEX_VARIANTS:
            raise AspectragError(f"unknown index variant {variant!r}")
        from aspectrag.index import Index

        emb = copy_embedder(self.embedder, **INDEX_VARIANTS[variant])
        folder = self.root / variant
        idx = Index(folder, embedder=emb)
        corpus = str(self.corpus().resolve())
        if any(not src.startswith(corpus) for src in idx.store.sources()[:1]):
            import shutil

            log.warning("%s: built from another corpus path; rebuilding", folder)
            shutil.rmtree(folder)
            idx = Index(folder, embedder=emb)
        rep = idx.ingest([self.corpus()], progress=self.progress)
        if rep.failed:
            raise AspectragError(f"{self.corpus()}: {rep.failed[0][1]}")
        self._indexes[variant] = idx
        return idx

    def retriever(self, st: Strategy) -> Retriever:
        """The retriever of strategy ``st`` over its index."""
        from aspectrag.retrieve.factory import build_retriever

        idx = self.index(st.index)
        r = build_retriever(st.retriever, idx.store, self.embedder, **dict(st.options))
        if not st.fusion:
            return r
        if not any(q.fusion for q in self.ds.queries):
            raise AspectragError(
                f"{self.ds.name}: no LLM sub-queries in this data set; the "
                "fusion strategies need them (Wikipedia only)"
            )
        from aspectrag.retrieve.multiquery import MultiQueryRetriever

        return MultiQueryRetriever(r, self.replay(), keep_original=False)

    def replay(self):  # type: ignore[no-untyped-def]
        """The recorded sub-queries of the data set as a ``ReplayQueryGenerator``."""
        if self._replay is None:
            from aspectrag.retrieve.query_gen.replay import ReplayQueryGenerator

            path = self.root / "fusion.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                for q in self.ds.queries:
                    fh.write(json.dumps({"question": q.text, "queries": list(q.fusion)}) + "\n")
            self._replay = ReplayQueryGenerator(path)
        return self._replay

    def warm(self) -> None:
        """Encode every query text and sub-query once (the cache then serves all strategies,
        so the strategies' timings exclude query encoding)."""
        self.embedder.encode_raw([q.text for q in self.ds.queries], show_progress=self.progress)
        if any(q.fusion for q in self.ds.queries):
            from aspectrag.retrieve.query_gen.parse import clean_query

            self.embedder.encode_raw([clean_query(f) for q in self.ds.queries for f in q.fusion])

    def run(self, name: str, retriever: Retriever | None = None, **kw: object) -> StrategyRun:
        """Run strategy ``name`` (built-in or factory name), or ``retriever`` under that name
        (any Retriever: e.g. a multi-query strategy built by the caller)."""
        r = retriever if retriever is not None else self.retriever(strategy(name))
        return run_strategy(self.ds, name, r, **kw)  # type: ignore[arg-type]


def copy_embedder(embedder, **options: object):  # type: ignore[no-untyped-def]
    """A shallow copy of a ``MultiHeadEmbedder`` (shared model and cache) with other head
    options (``pooling``, ``groups``, ``split``): :meth:`MultiHeadEmbedder.with_layout`."""
    return embedder.with_layout(
        pooling=options.get("pooling"),  # type: ignore[arg-type]
        groups=options.get("groups"),  # type: ignore[arg-type]
        split=bool(options.get("split", False)),
    )
