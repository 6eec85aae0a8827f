"""The Qdrant store: the ``Store`` protocol on a Qdrant server or on qdrant-client's local mode.

Locations (``aspectrag.store.factory``):
    ``qdrant://HOST:PORT/COLLECTION``        a server over HTTP (API key: ``store.qdrant_api_key``)
    ``qdrant+https://HOST:PORT/COLLECTION``  a server over HTTPS
    ``qdrant+local://PATH/COLLECTION``       qdrant-client's local mode in folder PATH (one
                                             process at a time; tests, single machines)
    ``qdrant+local://:memory:/COLLECTION``   local mode in memory (this process only)

Data model (one index = collection ``C`` plus a small collection ``C__meta``):
    ``C``        one point per chunk *version*: named dense vectors as declared by the space
                 specs (``dense``, ``head0..head11``; ``ip`` -> ``Distance.DOT``, ``cosine`` ->
                 ``Distance.COSINE``), the sparse vector ``bm25`` (``Modifier.IDF``; term
                 weights computed here, ``store/qdrant_terms.py``), and every chunk field in
                 the payload, plus ``seq`` (insertion order), ``born`` / ``died`` (write ids,
                 below) and the keys of the source filter: ``source`` (exact), ``dirs`` (every
                 prefix of the source ending in ``/``) and ``hashes`` (every prefix ending in
                 ``#``), so :func:`~aspectrag.store.base.source_matches` is three exact keyword
                 matches (keyword payload indexes on a server).
    ``C__meta``  vectorless points: one per document version (source, fingerprint, title,
                 metadata, sections; ``born`` / ``died`` / ``seq``) and the *state point*:
                 ``committed`` (the last committed write id), the index metadata
                 (``get_meta``), the declared spaces, the next ``seq`` and BM25's ``avgdl``.

Crash safety without transactions (Qdrant writes each point atomically, never several):
    Every ``writer()`` transaction gets the write id ``T = committed + 1``. New chunk and
    document versions are written as new points (ids ``uuid5(chunk id, T)``) with ``born = T``;
    replaced or deleted versions get ``died = T``. Readers read ``committed = C`` from the state
    point first and see exactly the points with ``born <= C`` and no ``died <= C`` (a payload
    filter on every search, scroll and count), so nothing a transaction writes is visible until
    its last step: one upsert of the state point with ``committed = T`` (and the new metadata),
    after every other write was acknowledged (``wait=True``). A writer that dies at any moment
    before that step leaves only invisible marks, so each document is at its old version or
    (after the commit) at its new one, never both and never a mix, and the index metadata
    commits with the data. An exception inside ``with store.writer()`` removes the marks at once
    (best effort); the next writer always first collects the garbage: it deletes points with
    ``born > C`` (an unfinished transaction), clears ``died > C`` and deletes the versions that
    died at or before ``C`` (superseded; ``repair()`` does the same). Until then, superseded and
    unfinished versions still count in Qdrant's IDF statistics (``N`` and document frequencies),
    so BM25 scores right after an update differ slightly from those of a fresh index.
    ``reading()`` pins ``C`` for the reads on this thread (one consistent committed state); a
    search that began before the previous commit may miss a version the next writer collected.

Writers: one at a time. In local mode the folder's writer lock (``store/lock.py``, an OS file
lock) serialises them; qdrant-client's local mode also admits one process per folder. A server
has no compare-and-set, so for ``qdrant://`` the lock is only within this process: run the
ingests of one collection from one process (one writer host). Searches never wait.

Searching in local mode: qdrant-client's local mode evaluates a payload filter in Python, point
by point (about 0.5 s per search at 10k points on one core, against 0.03 s without a filter).
So a search without a source filter runs *unfiltered* first and keeps the result when every
returned point is visible at the pinned state ``C`` (checked on its ``born`` / ``died``
payload): the visible points are a subset of all points, so a top-k made only of visible points
is exactly the filtered top-k. A search whose result holds an invisible point (an unfinished
write, or versions not yet collected) is repeated with the visibility filter. On a freshly
written or collected index no search is repeated. Searches with a source filter, and every
search on a server (filters evaluated in Rust with payload indexes), always send the filter.
Chunks by id (``get_chunks``, ``get_vectors``) are read in local mode by point id instead of a
filtered scroll: every version a chunk can have is ``uuid5(chunk id, t)`` for a write id ``t
<= C``, so the ``C`` candidate ids per chunk are looked up and the visible one kept (while
``C`` times the chunks asked is at most ``LOCAL_RETRIEVE_MAX``; else the filtered scroll).

Hybrid stays client-side (``retrieve/hybrid.py``: convex combination of min-max normalised
BM25 and dense scores over two searches of this store), measured against the Query API's
server-side fusion (a sparse and a dense prefetch of max(100, k) each) by
``benchmarks/qdrant_parity.py`` (results/qdrant_parity.txt), SciFact nDCG@10 train (dev, 809
queries) / test: convex 0.7314 / 0.7325; ``FusionQuery(DBSF)`` 0.7321 / 0.7364 (dev +0.0007,
95% CI [-0.0034, +0.0049]: no difference); ``FusionQuery(RRF)`` (k = 2) 0.7252 / 0.7226;
``RrfQuery(k=60)`` 0.7157 / 0.7171 (= client RRF 0.7153 / 0.7172). DBSF's dev lead is within
noise, so convex is kept: it ranks identically on the SQLite store, and server-side fusion
needs the visibility filter in every prefetch (the check of "Searching in local mode" cannot
see prefetch lists), about 1.0 s against 0.34 s per query in local mode (under load).

Exact search: local mode searches exhaustively; a server uses HNSW above its full-scan
threshold (10k points by default), so results can differ slightly from the SQLite store's
exact search on large indexes.
"""

from __future__ import annotations

import atexit
import logging
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from aspectrag.errors import AspectragError, ConfigError, IndexBusyError, StoreError
from aspectrag.store.base import (
    CAP_BATCHED_VECTOR_SEARCH,
    CAP_CHECK,
    CAP_SIDE_FILES,
    CAP_TRANSACTIONS,
    CheckReport,
    ScoredId,
    SpaceSpec,
)
from aspectrag.store.lock import WriterLock
from aspectrag.store.qdrant_model import (
    SPARSE,
    STATE_ID,
    is_visible,
    match,
    point_id,
    source_filter,
    visible,
)
from aspectrag.store.qdrant_terms import TermWeigher
from aspectrag.store.vector_codec import as_stored, new_index_dtypes
from aspectrag.types import Chunk, Document, Section

log = logging.getLogger("aspectrag.store")

META_SUFFIX = "__meta"
PAGE = 512
LOCAL_RETRIEVE_MAX = 200_000
"""Local mode reads chunks by point id when (committed write id) x (chunks asked) is at most this."""
_CHUNK_FIELDS = ("chunk_id", "doc_id", "source", "title", "index", "text", "start", "end",
                 "page", "heading")
_KEYWORD_FIELDS = ("source", "dirs", "hashes", "chunk_id", "kind")
_INT_FIELDS = ("born", "died", "seq")

_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()


class _Serialised:
    """A local-mode client whose calls are serialised (qdrant-client's local mode is not
    thread-safe; searches of one process may run on several threads)."""

    def __init__(self, client: QdrantClient) -> None:
        self._client, self._lock = client, threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*a: Any, **kw: Any) -> Any:
            with self._lock:
                return attr(*a, **kw)
        return call


@atexit.register
def close_local_clients() -> None:
    """Close the local-mode clients of this process (at exit, before the interpreter tears
    down the modules qdrant-client's own finaliser needs)."""
    with _CLIENTS_LOCK:
        for c in _CLIENTS.values():
            try:
                c.close()
            except Exception:  # closing at exit must not fail the exit
                pass
        _CLIENTS.clear()


def _local_client(path: str) -> Any:
    """The one client of this process for local-mode folder ``path`` (or ``:memory:``)."""
    key = path if path == ":memory:" else str(Path(path).resolve())
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            try:
                _CLIENTS[key] = _Serialised(QdrantClient(location=":memory:") if key == ":memory:"
                                            else QdrantClient(path=key))
            except (RuntimeError, OSError) as e:  # folder held by another process
                raise StoreError(f"qdrant+local://{path}", (
                    f"index qdrant+local://{path}: cannot open the local Qdrant folder ({e}); "
                    "local mode serves one process at a time: stop the other one, or use a "
                    "Qdrant server (qdrant://HOST:6333/COLLECTION)")) from None
        return _CLIENTS[key]


def parse_location(location: str) -> tuple[str, str, str]:
    """``(scheme, base, collection)`` of a Qdrant location (see the module doc).

    Raises:
        ConfigError: no collection name, or one with characters other than letters, digits,
            ``_`` and ``-``.
    """
    scheme, _, rest = location.partition("://")
    base, _, collection = rest.rstrip("/").rpartition("/")
    ok = collection and all(c.isalnum() or c in "_-" for c in collection) and collection.isascii()
    if not base or not ok:
        raise ConfigError(
            f"index location {location!r}: expected {scheme}://"
            f"{'PATH' if 'local' in scheme else 'HOST:PORT'}/COLLECTION with a collection name "
            "of letters, digits, '_' and '-'")
    return scheme.lower(), base, collection


class QdrantStore:
    """A :class:`aspectrag.store.base.Store` in a Qdrant collection (see the module doc).

    Args:
        location: ``qdrant://HOST:PORT/COLLECTION``, ``qdrant+https://...`` or
            ``qdrant+local://PATH/COLLECTION``.
        readonly: open for reading only (writes raise; nothing is created).
        api_key: API key of a server (from ``store.qdrant_api_key``); ignored in local mode.
        timeout: seconds per server request.
        client: a ready ``QdrantClient`` to use instead (tests).

    Raises:
        ConfigError: a malformed location.
        StoreError: (from any method) the server is unreachable or refused a request, or the
            local folder is held by another process.
    """

    def __init__(self, location: str, *, readonly: bool = False, api_key: str | None = None,
                 timeout: float = 60.0, client: Any = None,
                 head_dtype: str | None = None) -> None:
        self.location = location
        self.head_dtype = head_dtype  # of new collections' head vectors (store/vector_codec.py)
        self._dtypes: dict[str, str] | None = None
        self.readonly = readonly
        scheme, base, self.collection = parse_location(location)
        self.meta_collection = self.collection + META_SUFFIX
        self.local = scheme == "qdrant+local"
        self.folder: Path | None = Path(base) if self.local and base != ":memory:" else None
        self.batch_points = 256
        caps = {CAP_BATCHED_VECTOR_SEARCH, CAP_CHECK, CAP_TRANSACTIONS}
        if self.folder is not None:
            caps.add(CAP_SIDE_FILES)
        self.capabilities = frozenset(caps)
        self._client = client
        self._base, self._scheme, self._api_key, self._timeout = base, scheme, api_key, timeout
        self._tls = threading.local()
        self._process_lock = threading.RLock()
        self._writer_lock = None if self.folder is None else WriterLock(self.folder, location)
        self._weigher: TermWeigher | None = None

    # -- connection ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The ``QdrantClient`` (opened on first use; local-mode folders are shared per process)."""
        if self._client is None:
            if self.local:
                self._client = _local_client(self._base)
            else:
                https = self._scheme == "qdrant+https"
                self._client = QdrantClient(
                    url=f"{'https' if https else 'http'}://{self._base}", api_key=self._api_key,
                    timeout=int(self._timeout), check_compatibility=False)
        return self._client

    def _opened(self) -> bool:
        """False for a read-only local folder that does not exist (reading creates nothing)."""
        return self._client is not None or self.folder is None or self.folder.exists() \
            or not self.readonly

    def _exists(self, name: str) -> bool:
        return self._opened() and bool(self.client.collection_exists(name))

    @property
    def weigher(self) -> TermWeigher:
        if self._weigher is None:
            self._weigher = TermWeigher()
        return self._weigher

    def side_path(self, name: str) -> Path | None:
        """``PATH/COLLECTION.side/<name>`` in local mode; None for a server or ``:memory:``."""
        return None if self.folder is None else self.folder / f"{self.collection}.side" / name

    # -- state ---------------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any]:
        """The committed state point's payload (``{"committed": 0, ...}`` for a new index)."""
        empty: dict[str, Any] = {"committed": 0, "meta": {}, "spaces": [], "next_seq": 0,
                                 "avgdl": None}
        if not self._exists(self.meta_collection):
            return empty
        got = self.client.retrieve(self.meta_collection, [STATE_ID], with_payload=True)
        return {**empty, **(got[0].payload or {})} if got else empty

    def _state(self) -> dict[str, Any]:
        pinned = getattr(self._tls, "state", None)
        return pinned if pinned is not None else self.read_state()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Pins the committed state for the reads on this thread (``Store.reading``). Nests."""
        if getattr(self._tls, "state", None) is not None:
            yield
            return
        self._tls.state = self.read_state()
        try:
            yield
        finally:
            self._tls.state = None

    # -- writing -------------------------------------------------------------------------------
    def write_lock(self, *, wait: bool = True,
                   on_wait: Callable[[str], None] | None = None) -> AbstractContextManager[None]:
        """The writer session (``Store.write_lock``): the folder's file lock in local mode, a
        lock of this process for a server (module doc: one writer host)."""
        return self._write_session(wait, on_wait)

    @contextmanager
    def _write_session(self, wait: bool,
                       on_wait: Callable[[str], None] | None) -> Iterator[None]:
        if self.readonly:
            raise StoreError(self.location, f"index {self.location} is open read-only; "
                                            "open it without readonly to write")
        if self._writer_lock is not None:
            assert self.folder is not None
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._writer_lock.hold(wait=wait, on_wait=on_wait):
                yield
            return
        if not self._process_lock.acquire(blocking=wait):
            raise IndexBusyError(self.location, f"index {self.location} is busy: another "
                                 "ingest of this process is writing it; try again later")
        try:
            yield
        finally:
            self._process_lock.release()

    @contextmanager
    def writer(self) -> Iterator[Any]:
        """One write transaction (module doc): invisible until its commit on normal exit; an
        exception (or the death of the process) leaves the committed state unchanged."""
        from aspectrag.store.qdrant_write import QdrantWriter

        with self.write_lock():
            w = QdrantWriter(self)
            try:
                yield w
                w.commit()
            except BaseException:
                w.rollback()
                raise

    def ensure_collections(self, specs: Sequence[SpaceSpec] | None) -> None:
        """Create ``C__meta`` and (when ``specs`` is given) ``C`` with these spaces, replacing a
        ``C`` left by an uncommitted first write."""
        c = self.client
        if not c.collection_exists(self.meta_collection):
            c.create_collection(self.meta_collection, vectors_config={})
            self._indexes(self.meta_collection)
        if specs is None:
            return
        if c.collection_exists(self.collection):
            c.delete_collection(self.collection)
        dist = {"ip": models.Distance.DOT, "cosine": models.Distance.COSINE}
        dense = [s for s in specs if s.kind == "dense"]
        half = new_index_dtypes([s.name for s in dense], self.head_dtype)
        c.create_collection(
            self.collection,
            vectors_config={s.name: models.VectorParams(
                size=s.dim, distance=dist[s.distance],
                datatype=models.Datatype.FLOAT16 if s.name in half else None)
                for s in dense},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(
                modifier=models.Modifier.IDF)})
        self._indexes(self.collection)
        self._dtypes = None

    def vector_dtypes(self) -> dict[str, str] | None:
        """``{space: "float16"}`` for the named vectors whose collection datatype is FLOAT16
        ({}: all float32, e.g. a collection created before head vectors were float16); None
        while the collection does not exist (its first write decides)."""
        if self._dtypes is None:
            if not self._exists(self.collection):
                return None
            have = self.client.get_collection(self.collection).config.params.vectors or {}
            self._dtypes = {name: "float16" for name, p in (have.items() if isinstance(
                have, dict) else []) if p.datatype == models.Datatype.FLOAT16}
        return self._dtypes

    def as_stored(self, vectors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``vectors`` as this collection reads them back (float16 named vectors rounded); the
        writer sends these values, so that local mode (which keeps float32) and a server
        (which stores float16) return the same numbers."""
        dtypes = self.vector_dtypes()
        if dtypes is None:
            dtypes = new_index_dtypes(list(vectors), self.head_dtype)
        return as_stored(vectors, dtypes)

    def _indexes(self, name: str) -> None:
        if self.local:  # local mode ignores payload indexes (and warns)
            return
        for f in _KEYWORD_FIELDS:
            self.client.create_payload_index(name, f, models.PayloadSchemaType.KEYWORD)
        for f in _INT_FIELDS:
            self.client.create_payload_index(name, f, models.PayloadSchemaType.INTEGER)

    # -- reading -------------------------------------------------------------------------------
    def _scroll(self, name: str, flt: models.Filter, *, fields: Sequence[str] | bool = True,
                vectors: Sequence[str] | bool = False, ordered: bool = False,
                limit: int | None = None) -> Iterator[Any]:
        """Every point of ``name`` passing ``flt`` (by ``seq`` when ``ordered``)."""
        if not self._exists(name):
            return
        offset, start, left = None, None, limit
        payload = list(fields) if not isinstance(fields, bool) else fields
        while left is None or left > 0:
            n = PAGE if left is None else min(PAGE, left)
            order = models.OrderBy(key="seq", start_from=start) if ordered else None
            pts, offset = self.client.scroll(name, scroll_filter=flt, limit=n, offset=offset,
                                             with_payload=payload, with_vectors=vectors,
                                             order_by=order)
            yield from pts
            if left is not None:
                left -= len(pts)
            if ordered:
                if len(pts) < n:
                    return
                start = int(pts[-1].payload["seq"]) + 1
            elif offset is None:
                return

    def _docs(self, *conds: models.Condition, fields: Sequence[str] | bool = True,
              ordered: bool = False, limit: int | None = None) -> Iterator[Any]:
        c = int(self._state()["committed"])
        flt = visible(c, match("kind", "doc"), *conds)
        return self._scroll(self.meta_collection, flt, fields=fields, ordered=ordered,
                            limit=limit)

    def fingerprint(self, source: str) -> str | None:
        for p in self._docs(match("source", source), fields=["fingerprint"], limit=1):
            return str(p.payload["fingerprint"])
        return None

    def sources(self) -> list[str]:
        return [p.payload["source"] for p in self._docs(fields=["source", "seq"], ordered=True)]

    def get_document(self, source: str) -> Document | None:
        """The stored document (its ``text`` is not kept: '')."""
        for p in self._docs(match("source", source), limit=1):
            d = p.payload
            return Document(d["doc_id"], d["source"], d["title"], "",
                            [Section(*s) for s in d["sections"]], d["fingerprint"],
                            d["metadata"])
        return None

    def stats(self) -> dict[str, int]:
        c = int(self._state()["committed"])
        out = {"documents": 0, "chunks": 0}
        if self._exists(self.meta_collection):
            out["documents"] = self.client.count(
                self.meta_collection, count_filter=visible(c, match("kind", "doc")),
                exact=True).count
        if self._exists(self.collection):
            out["chunks"] = self.client.count(self.collection, count_filter=visible(c),
                                              exact=True).count
        return out

    def _chunk_points(self, chunk_ids: Sequence[str], vectors: Sequence[str] | bool = False,
                      fields: Sequence[str] | bool = True) -> dict[str, Any]:
        c = int(self._state()["committed"])
        found: dict[str, Any] = {}
        ids = list(dict.fromkeys(chunk_ids))
        if self.local and c * len(ids) <= LOCAL_RETRIEVE_MAX:  # module doc: local mode
            if not isinstance(fields, bool):
                fields = [*fields, "chunk_id", "born", "died"]
            cand = [point_id("chunk", cid, t) for cid in ids for t in range(1, c + 1)]
            for i in range(0, len(cand), 4096):
                for p in self.client.retrieve(self.collection, cand[i : i + 4096],
                                              with_payload=fields, with_vectors=vectors):
                    if is_visible(p.payload, c):
                        found[p.payload["chunk_id"]] = p
            return found
        for i in range(0, len(ids), PAGE):
            part = ids[i : i + PAGE]
            for p in self._scroll(self.collection, visible(c, match("chunk_id", part)),
                                  fields=fields, vectors=vectors, limit=len(part)):
                found[p.payload["chunk_id"]] = p
        return found

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        if not chunk_ids:
            return []
        found = self._chunk_points(chunk_ids, fields=list(_CHUNK_FIELDS))
        missing = [c for c in chunk_ids if c not in found]
        if missing:
            raise KeyError(f"unknown chunk ids: {missing[:5]}")
        return [_chunk(found[c].payload) for c in chunk_ids]

    def iter_chunks(self) -> Iterator[Chunk]:
        c = int(self._state()["committed"])
        for p in self._scroll(self.collection, visible(c), fields=[*_CHUNK_FIELDS, "seq"],
                              ordered=True):
            yield _chunk(p.payload)

    def get_meta(self, key: str) -> str | None:
        value = self._state()["meta"].get(key)
        return None if value is None else str(value)

    def meta_keys(self) -> list[str]:
        return sorted(self._state()["meta"])

    def spaces(self) -> list[SpaceSpec]:
        return [SpaceSpec.from_dict(d) for d in self._state()["spaces"]]

    def vector_spaces(self) -> list[str]:
        return [s.name for s in self.spaces()]

    def get_vectors(self, space: str, chunk_ids: Sequence[str]) -> np.ndarray:
        if not chunk_ids:
            return np.zeros((0, 0), np.float32)
        found = self._chunk_points(chunk_ids, vectors=[space], fields=["chunk_id"])
        missing = [c for c in chunk_ids if c not in found or space not in (found[c].vector or {})]
        if missing:
            raise KeyError(f"no '{space}' vectors for chunk ids {missing[:5]}")
        return np.asarray([found[c].vector[space] for c in chunk_ids], dtype=np.float32)

    # -- search --------------------------------------------------------------------------------
    def _search(self, requests: list[tuple[str, Any]], k: int,
                sources: Sequence[str] | None) -> list[list[ScoredId]]:
        """One ``query_batch_points`` call: ``requests`` are ``(vector name, query)``."""
        if not requests or not self._exists(self.collection):
            return [[] for _ in requests]
        c = int(self._state()["committed"])
        sf = source_filter(sources)
        flt = visible(c) if sf is None else visible(c, sf)
        optimistic = self.local and sf is None  # module doc: "Searching in local mode"
        fields = ["chunk_id", "born", "died"] if optimistic else ["chunk_id"]
        reqs = [models.QueryRequest(query=q, using=using, filter=None if optimistic else flt,
                                    limit=k, with_payload=fields) for using, q in requests]
        points = self._query_batch(reqs)
        if optimistic:
            redo = [i for i, pts in enumerate(points)
                    if not all(is_visible(p.payload, c) for p in pts)]
            if redo:
                again = self._query_batch([reqs[i].model_copy(update={"filter": flt})
                                           for i in redo])
                for i, pts in zip(redo, again, strict=True):
                    points[i] = pts
        return [[ScoredId(p.payload["chunk_id"], float(p.score)) for p in pts] for pts in points]

    def _query_batch(self, reqs: list[Any]) -> list[list[Any]]:
        """The scored points of each ``QueryRequest`` (``query_batch_points``, 64 a call)."""
        out: list[list[Any]] = []
        for i in range(0, len(reqs), 64):
            out += [r.points for r in self.client.query_batch_points(self.collection,
                                                                     reqs[i : i + 64])]
        return out

    def keyword_search(
        self, queries: Sequence[str], k: int, sources: Sequence[str] | None = None
    ) -> list[list[ScoredId]]:
        """BM25 through the sparse ``bm25`` vector (Qdrant's IDF; ``store/qdrant_terms.py``)."""
        if not queries:
            return []
        sparse = self.weigher.queries(queries)
        asked = [i for i, (idx, _) in enumerate(sparse) if idx]
        res = self._search([(SPARSE, models.SparseVector(indices=sparse[i][0],
                                                         values=sparse[i][1])) for i in asked],
                           k, sources)
        out: list[list[ScoredId]] = [[] for _ in queries]
        for i, r in zip(asked, res, strict=True):
            out[i] = [s for s in r if s.score > 0]
        return out

    def vector_search(
        self, space: str, queries: np.ndarray, k: int, sources: Sequence[str] | None = None
    ) -> list[list[ScoredId]]:
        return self.vector_search_spaces([(space, queries)], k, sources)[0]

    def vector_search_spaces(
        self, searches: Sequence[tuple[str, np.ndarray]], k: int,
        sources: Sequence[str] | None = None,
    ) -> list[list[list[ScoredId]]]:
        """Every ``(space, queries (q, d_space))`` search in one ``query_batch_points`` request
        (the 12 head searches of multi-head retrieval are one round trip)."""
        dims = {s.name: s.dim for s in self.spaces()}
        reqs: list[tuple[str, Any]] = []
        sizes = []
        for space, queries in searches:
            q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
            if space not in dims:
                raise AspectragError(f"index {self.location} has no vector space {space!r} "
                                     f"(spaces: {sorted(dims)})")
            if q.shape[1] != dims[space]:
                raise AspectragError(f"query vectors have {q.shape[1]} dims but space '{space}' "
                                     f"has {dims[space]}; was the index built with another "
                                     "embedder?")
            reqs += [(space, row.tolist()) for row in q]
            sizes.append(len(q))
        flat = self._search(reqs, k, sources)
        out, j = [], 0
        for n in sizes:
            out.append(flat[j : j + n])
            j += n
        return out

    def refresh(self) -> None:
        """Nothing to rebuild: Qdrant keeps its indexes current."""

    # -- check / repair ------------------------------------------------------------------------
    def check(self, *, quick: bool = False) -> CheckReport:
        """Whether the collections match the committed state (spaces, points), and how many
        uncommitted or superseded versions await collection (notes)."""
        from aspectrag.store.qdrant_write import check_store

        return check_store(self, quick=quick)

    def repair(self) -> list[str]:
        """Collect the garbage of unfinished and superseded versions (module doc)."""
        from aspectrag.store.qdrant_write import collect_garbage

        with self.write_lock():
            return collect_garbage(self, int(self.read_state()["committed"]))


def _chunk(p: dict[str, Any]) -> Chunk:
    return Chunk(p["chunk_id"], p["doc_id"], p["source"], p["title"], int(p["index"]), p["text"],
                 int(p["start"]), int(p["end"]), p.get("page"), p.get("heading"))


def _quiet_local_warnings() -> None:
    warnings.filterwarnings("ignore", message="Payload indexes have no effect in the local")


_quiet_local_warnings()
