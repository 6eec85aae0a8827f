"""Ray Data ingestion (``aspectrag ingest --engine ray``): the in-process pipeline's steps
spread over a Ray cluster, with the same result, report and crash safety.

Design (the Ray Data pattern for batch embedding, https://docs.ray.io/en/latest/data/):

1. **discovery** on the driver (:func:`~aspectrag.ingest.pipeline.discover_items`), under the
   store's writer lock, as in-process;
2. **loading and splitting** as Ray tasks: ``ray.data.from_items(sources).flat_map(...)`` runs
   :func:`~aspectrag.ingest.pipeline.read_source` per source and emits one row per document,
   one per chunk and one closing row per source (its :class:`SourceTally`: unchanged, failed,
   skipped documents). Documents whose indexed fingerprint is unchanged are dropped here,
   before embedding (the driver ships the fingerprints of the indexed versions);
3. **embedding** in an actor pool: ``map_batches`` with a callable class holding one embedder
   per actor (``workers`` actors, ``batch_size`` rows a call), built in the actor by
   ``embedder_factory`` (so the multi-head embedder, when the index stores heads, gives the
   same per-head spaces as in-process);
4. **one writer**: the rows stream back in order (``preserve_order``, ``iter_batches``) to the
   driver, which regroups each document's chunks and vectors, re-checks its fingerprint
   against the store, stages it (:class:`~aspectrag.ingest.staging.Staging`) and feeds the
   ingest hooks; then the same single write transaction as in-process
   (:func:`~aspectrag.ingest.pipeline.commit_staged`) copies everything in. A Ray failure or an
   interrupt before that commit leaves the index exactly as it was.

The chunk ids, texts and vectors equal the in-process ingest's (up to float rounding of
different batch compositions, < 1e-5), and so does the report (``embed_seconds`` is the
embedders' time summed over actors and divided by their number).

Ray is imported lazily; without it :func:`ingest_ray` raises ``MissingExtraError`` naming
``pip install 'aspectrag[ray]'``. On a remote cluster (``address``) aspectrag and its model
must be installed on every node (or shipped with ``runtime_env``).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from aspectrag.embed.base import Embedder
from aspectrag.errors import AspectragError, IngestEngineError
from aspectrag.ingest.base import IngestHook, Splitter
from aspectrag.ingest.pipeline import (
    DEFAULT_MAX_FILE_BYTES,
    IngestReport,
    SourceTally,
    StageBar,
    check_embedder,
    commit_staged,
    discover_items,
    failure,
    make_splitter,
    read_source,
    refresh_derived,
    source_name,
    stale_members,
)
from aspectrag.ingest.staging import Staging
from aspectrag.store.base import CAP_SIDE_FILES, SpaceSpec, Store, specs_of_vectors
from aspectrag.types import Chunk, Document, Section

log = logging.getLogger("aspectrag.ingest")

#: rows per embedding call of an actor
DEFAULT_BATCH_SIZE = 64
_VEC = "vec:"  # column prefix of a vector space in the embedded rows
_DOC, _CHUNK, _SOURCE = "doc", "chunk", "source"  # row kinds


def ingest_ray(
    store: Store,
    embedder: Embedder,
    embedder_factory: Callable[[], Embedder],
    sources: Sequence[str | Document],
    *,
    address: str | None = None,
    workers: int = 1,
    num_cpus: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    glob: str | None = None,
    splitter: Splitter | None = None,
    progress: bool = True,
    hooks: Sequence[IngestHook] = (),
    on_progress: Callable[[int, int], None] | None = None,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    allow_hosts: Sequence[str] = (),
    runtime_env: Mapping[str, Any] | None = None,
) -> IngestReport:
    """Ingest ``sources`` into ``store`` with Ray Data, all or nothing, with the result of
    :func:`aspectrag.ingest.pipeline.ingest` (see there for ``glob``, ``hooks``, ``wait``,
    ``on_wait``, ``max_file_bytes``, ``allow_hosts``).

    Args:
        embedder: the driver's embedder: its name is checked against the index and it gives the
            splitter's tokenizer (the driver embeds nothing).
        embedder_factory: a picklable zero-argument callable building the same embedder in each
            actor (e.g. ``functools.partial(build_embedder, recorded=..., heads=...)``).
        address: a running Ray cluster (``ray://HOST:10001``, ``HOST:6379``, ``auto``); None: use
            the Ray runtime this process already started, else start a local one (``num_cpus``
            CPUs, default all) that is shut down at the end.
        workers: embedding actors (>= 1).
        batch_size: rows (about as many chunks) per embedding call of an actor.
        progress: a progress bar over the sources (with each source's chunks embedded), as
            in-process; Ray's own bars and logs stay off.
        on_progress: ``on_progress(done_chunks, chunks_so_far)`` as each document arrives.
        runtime_env: Ray runtime environment of the job (when this call starts Ray).

    Returns:
        The :class:`IngestReport` (sources that failed to load are listed, not raised).

    Raises:
        MissingExtraError: Ray is not installed (``pip install 'aspectrag[ray]'``).
        ConfigError: ``workers`` or ``batch_size`` < 1.
        IngestEngineError: the cluster cannot be reached or an embedding actor failed; the
            index is unchanged.
        IndexMismatchError, IndexBusyError, StoreError: as in-process.
    """
    from aspectrag.errors import ConfigError
    from aspectrag.extras import optional_import

    if workers < 1 or batch_size < 1:
        raise ConfigError(f"--workers ({workers}) and the batch size ({batch_size}) must be >= 1")
    ray = optional_import("ray", "Ray ingestion (--engine ray)")
    optional_import("ray.data", "Ray ingestion (--engine ray)")
    t0 = time.perf_counter()
    check_embedder(store, embedder)
    splitter = splitter or make_splitter(embedder)
    report = IngestReport()
    with store.write_lock(wait=wait, on_wait=on_wait):
        report.wait_seconds = time.perf_counter() - t0
        check_embedder(store, embedder)
        items = discover_items(sources, glob, report)
        parent = store.side_path("staging") if CAP_SIDE_FILES in store.capabilities else None
        with Staging(parent) as stage:
            stale: list[str] = []
            specs: list[SpaceSpec] = []
            if items:
                quiet = _Quiet()
                started = _start_ray(ray, address, num_cpus, runtime_env)
                try:
                    rows = _dataset(ray, items, store, splitter, embedder_factory, workers,
                                    batch_size, max_file_bytes, allow_hosts, progress)
                    specs = _collect(rows, items, store, stage, hooks, report, stale, workers,
                                     progress, on_progress)
                except AspectragError:
                    raise
                except ray.exceptions.RayError as e:
                    raise IngestEngineError(
                        f"the Ray ingest failed ({_first_line(e)}); the index is unchanged"
                    ) from e
                finally:
                    if started:
                        ray.shutdown()
                    quiet.restore()
            report.removed = len(stale)
            if not stage.documents and not stale:  # nothing to write: no write transaction
                report.seconds = time.perf_counter() - t0 - report.wait_seconds
                return report
            commit_staged(store, embedder, stage, stale, specs, hooks, report)
    refresh_derived(store)
    report.seconds = time.perf_counter() - t0 - report.wait_seconds
    return report


class _Quiet:
    """Ray's Python loggers at ERROR while an ingest runs (no start-up, plan or progress lines
    in the default output; its full logs stay in the session folder under /tmp/ray)."""

    NAMES = ("ray", "ray.data", "ray._private", "ray.util")

    def __init__(self) -> None:
        self.levels = {n: logging.getLogger(n).level for n in self.NAMES}
        for n in self.NAMES:
            logging.getLogger(n).setLevel(logging.ERROR)

    def restore(self) -> None:
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def _start_ray(ray: Any, address: str | None, num_cpus: int | None,
               runtime_env: Mapping[str, Any] | None) -> bool:
    """Connect to / start Ray quietly; True when this call started it (and must stop it)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus,
                 include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=True, runtime_env=dict(runtime_env) if runtime_env else None)
    except (ConnectionError, ValueError, RuntimeError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
        raise IngestEngineError(f"cannot start or reach {where}: {_first_line(e)} "
                                "(check --ray-address; `ray status` on the head node)") from e
    return True


def _dataset(ray: Any, items: Sequence[str | Document], store: Store, splitter: Splitter,
             embedder_factory: Callable[[], Embedder], workers: int, batch_size: int,
             max_bytes: int, allow_hosts: Sequence[str], progress: bool) -> Any:
    """The lazy Ray Dataset: sources -> (load + split tasks) -> (embedding actor pool)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # our bar, not Ray's
    ctx.enable_operator_progress_bars = False
    ctx.enable_auto_log_stats = False
    ctx.execution_options.preserve_order = True  # the in-process staging order
    ctx.execution_options.verbose_progress = False
    # One source (a corpus file) is one loading task; Ray cuts a task's output into blocks of
    # at most this many bytes, and one block goes to one actor: at the default 128 MiB a
    # corpus file fed a single actor. About a batch of chunk rows (JSON of a chunk, ~4 KiB at
    # most) per block spreads it over the pool. (``repartition`` would do it too, but as a
    # task asking for a CPU of its own, which 2 actors on 2 CPUs leave no room for: a hang.)
    ctx.target_max_block_size = max(1 << 16, batch_size * 4096)
    total = float(ray.cluster_resources().get("CPU", 1.0))
    node = max([float(n.get("Resources", {}).get("CPU", 0.0)) for n in ray.nodes()
                if n.get("Alive")] or [total])
    share = max(0.1, (total - 0.5) / workers)  # leave half a CPU to the loading tasks
    actor_cpus = min(share, node, max(1.0, float(int(share))))
    threads = max(1, int(actor_cpus))
    rows = [{"seq": i, "item": it if isinstance(it, str) else "",
             "doc": "" if isinstance(it, str) else json.dumps(_doc_to_list(it))}
            for i, it in enumerate(items)]
    known = _known_fingerprints(store, items)
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), max(4 * workers, 8)))
    ds = ds.flat_map(_load_and_split, num_cpus=0.5,
                     fn_kwargs={"splitter": splitter, "known": known, "max_bytes": max_bytes,
                                "allow_hosts": tuple(allow_hosts)})
    with warnings.catch_warnings():  # Ray's API deprecations are no user's business
        warnings.simplefilter("ignore")
        return ds.map_batches(_EmbedActor, fn_constructor_args=(embedder_factory, threads),
                              batch_size=batch_size, batch_format="numpy",
                              compute=ray.data.ActorPoolStrategy(size=workers),
                              num_cpus=actor_cpus, ray_remote_args_fn=_no_restarts)


def _no_restarts() -> dict[str, Any]:
    """Remote options of the embedding actors: an actor that fails is not restarted (the
    ingest fails as a whole, leaving the index unchanged)."""
    return {"max_restarts": 0}


def _known_fingerprints(store: Store, items: Sequence[str | Document]) -> dict[str, str]:
    """Fingerprints of the indexed documents of ``items`` (a file, URL or in-memory document's
    own source, the ``FILE#id`` members of a corpus file), so that the loading tasks skip
    unchanged documents before embedding. Only an optimisation: the driver re-checks."""
    names = {it if isinstance(it, str) else it.source for it in items}
    out: dict[str, str] = {}
    for s in store.sources():
        if s in names or s.rsplit("#", 1)[0] in names:
            fp = store.fingerprint(s)
            if fp is not None:
                out[s] = fp
    return out


def _load_and_split(row: dict[str, Any], *, splitter: Splitter, known: Mapping[str, str],
                    max_bytes: int, allow_hosts: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Ray task body: the rows of one source (documents and chunks, then its tally)."""
    item: str | Document = row["item"] or _doc_from_list(json.loads(row["doc"]))
    tally = SourceTally()
    complete = True
    out: list[dict[str, Any]] = []
    seq = int(row["seq"])
    try:
        for doc, chunks, is_update in read_source(item, splitter, known.get, set(), max_bytes,
                                                  allow_hosts, tally):
            out.append(_row(seq, _DOC, json.dumps([_doc_to_list(doc), is_update])))
            out += [_row(seq, _CHUNK, json.dumps(_chunk_to_list(c)), c.index_text())
                    for c in chunks]
    except Exception as e:  # a loader bug must not lose the rest of the ingest
        tally.failed.append(failure(source_name(item), e))
        complete = False
    out.append(_row(seq, _SOURCE, json.dumps({
        "loaded": tally.loaded, "unchanged": tally.unchanged, "failed": tally.failed,
        "skipped": tally.skipped, "complete": complete})))
    yield from out


def _row(seq: int, kind: str, data: str, text: str = "") -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "data": data, "text": text}


class _EmbedActor:
    """Ray actor of the embedding pool: one embedder, built once by ``factory``; each call
    embeds the chunk rows of a batch (``kind == "chunk"``; other rows get zero vectors) and
    adds a ``vec:SPACE`` float32 (n, d) column per space and ``embed_s`` (seconds per row)."""

    def __init__(self, factory: Callable[[], Embedder], threads: int) -> None:
        from aspectrag.config import setup_threads

        setup_threads(threads)
        self.embedder = factory()
        probe = self.embedder.encode(["probe"], kind="document")
        self.dims = {s: int(np.asarray(v).shape[1]) for s, v in probe.items()}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["kind"])
        at = np.flatnonzero(batch["kind"] == _CHUNK)
        t = time.perf_counter()
        vectors = (self.embedder.encode([str(batch["text"][i]) for i in at], kind="document")
                   if len(at) else {})
        seconds = time.perf_counter() - t
        out = {k: v for k, v in batch.items() if k != "text"}
        for space, d in self.dims.items():
            col = np.zeros((n, d), np.float32)
            if len(at):
                col[at] = np.asarray(vectors[space], dtype=np.float32)
            out[_VEC + space] = col
        out["embed_s"] = np.full(n, seconds / max(n, 1))
        return out


class _Pending:
    """One document being regrouped on the driver: its chunks and vectors."""

    def __init__(self, doc: Document, is_update: bool) -> None:
        self.doc, self.is_update = doc, is_update
        self.chunks: list[Chunk] = []
        self.vectors: dict[str, list[np.ndarray]] = {}


def _collect(rows: Any, items: Sequence[str | Document], store: Store, stage: Staging,
             hooks: Sequence[IngestHook], report: IngestReport, stale: list[str], workers: int,
             progress: bool, on_progress: Callable[[int, int], None] | None) -> list[SpaceSpec]:
    """Stream the embedded rows into ``stage`` (one document at a time), fill ``report`` and
    ``stale``; returns the space specs of the embedder's output."""
    specs: list[SpaceSpec] = []
    seen: set[str] = set()
    pending: _Pending | None = None
    embed_s = 0.0

    def flush() -> None:
        nonlocal pending, specs
        p, pending = pending, None
        if p is None or p.doc.source in seen:
            return
        seen.add(p.doc.source)
        old = store.fingerprint(p.doc.source)  # the tasks' view may be partial: re-check
        if old is not None and old == p.doc.fingerprint:
            report.unchanged += 1
            return
        vectors = {s: np.stack(v).astype(np.float32, copy=False) for s, v in p.vectors.items()}
        if not specs:
            specs = specs_of_vectors(vectors)
        for h in hooks:
            h.added(vectors)
        first = stage.total_chunks
        stage.add(p.doc, p.chunks, old is not None)
        stage.put_vectors(first, vectors)
        if on_progress is not None:
            on_progress(stage.total_chunks, stage.total_chunks)

    with StageBar(progress, "reading + embedding", len(items), "file") as bar:
        for batch in rows.iter_batches(batch_size=256, batch_format="numpy"):
            spaces = [k[len(_VEC):] for k in batch if k.startswith(_VEC)]
            embed_s += float(np.sum(batch["embed_s"]))
            for i, kind in enumerate(batch["kind"]):
                data = json.loads(str(batch["data"][i]))
                if kind == _DOC:
                    flush()
                    pending = _Pending(_doc_from_list(data[0]), bool(data[1]))
                elif kind == _CHUNK:
                    assert pending is not None, "chunk row without its document row"
                    pending.chunks.append(Chunk(*data))
                    for s in spaces:
                        pending.vectors.setdefault(s, []).append(batch[_VEC + s][i])
                else:
                    flush()
                    _tally_source(items[int(batch["seq"][i])], data, store, seen, report, stale)
                    bar.advance()
    flush()
    report.embed_seconds = embed_s / workers
    return specs


def _tally_source(item: str | Document, data: Mapping[str, Any], store: Store, seen: set[str],
                  report: IngestReport, stale: list[str]) -> None:
    """Apply one source's closing row: its unchanged / failed / skipped documents (those
    already seen in an earlier source are ignored, as in-process) and stale members."""
    fresh = [s for s in data["loaded"] if s not in seen]
    keep = set(fresh)
    report.unchanged += sum(1 for s in data["unchanged"] if s in keep)
    report.skipped += [(s, r) for s, r in data["skipped"] if s in keep]
    report.failed += [(s, r) for s, r in data["failed"] if s in keep or s not in data["loaded"]]
    seen.update(fresh)
    if data["complete"]:
        stale += stale_members(store, item, data["loaded"])


def _doc_to_list(doc: Document) -> list[Any]:
    return [doc.doc_id, doc.source, doc.title, doc.text,
            [[s.start, s.end, s.page, s.heading] for s in doc.sections],
            doc.fingerprint, doc.metadata]


def _doc_from_list(d: Sequence[Any]) -> Document:
    return Document(d[0], d[1], d[2], d[3], [Section(*s) for s in d[4]], d[5], d[6])


def _chunk_to_list(c: Chunk) -> list[Any]:
    return [c.chunk_id, c.doc_id, c.source, c.title, c.index, c.text, c.start, c.end, c.page,
            c.heading]
