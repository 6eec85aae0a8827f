"""Settings: the ONE module that reads the environment and the TOML config file.

Every other module takes its configuration as parameters, defaulting to ``get_settings()``.

Precedence, one rule for every value (highest first):
    1. explicit values: CLI flags, ``get_settings(**overrides)``, constructor arguments;
    2. environment variables (``ASPECTRAG_*``, names in the table below); empty ones are ignored;
    3. the TOML config file (for ``[llm]``: the file named by ``llm.config_file`` first, then
       the ``[llm]`` table of the main file);
    4. the defaults written in the dataclasses below (each default is written only here).

Config file location (the first that applies):
    1. ``--config PATH`` (CLI; ``use_config_file``) or ``get_settings(config_file=PATH)``;
    2. ``$ASPECTRAG_CONFIG``;
    3. ``./aspectrag.toml`` if it exists;
    4. ``$XDG_CONFIG_HOME/aspectrag/config.toml`` (``~/.config/aspectrag/config.toml``) if it
       exists.
A file named by 1 or 2 must exist. Relative paths inside files count from the current folder.

File layout (every key optional; unknown keys are an error)::

    threads = 0                      # top-level fields
    [index]
    location = ".aspectrag"
    [llm]
    base_url = "http://127.0.0.1:8000/v1"
    model = "qwen2.5"
    [service]
    api_keys = ["read+write:SECRET", "read:sha256=3f1c..."]

Fields (``section.field``: environment variable, default):
    threads: ASPECTRAG_THREADS, 0 (= all cores) — torch intra-op threads (BLAS is kept at 1)
    cache_dir: ASPECTRAG_CACHE_DIR, ``~/.cache/aspectrag`` (BEIR and MRAG evaluation indexes)
    shared_data_dir: ASPECTRAG_SHARED_DATA, ``../shared/data``
    index.location: ASPECTRAG_INDEX, ``.aspectrag`` (a folder or ``scheme://...``)
    store.qdrant_api_key: ASPECTRAG_QDRANT_API_KEY, None (API key of a ``qdrant://`` server)
    store.qdrant_url: ASPECTRAG_QDRANT_URL, None (a Qdrant server the tests also run against,
        ``http://HOST:6333``)
    store.head_dtype: ASPECTRAG_HEAD_DTYPE, ``float16`` (storage dtype of the per-head vectors
        of NEW indexes: ``float16`` or ``float32``; an existing index keeps its own)
    store.ann_dtype: ASPECTRAG_ANN_DTYPE, ``float16`` (how an HNSW graph, built from 50k chunks,
        holds its rows in memory: ``float16`` halves the dense space's RAM, ``float32``)
    embedder.path: ASPECTRAG_EMBEDDER, None (= bundled all-MiniLM-L6-v2)
    embedder.adapter: ASPECTRAG_EMBEDDER_ADAPTER, None (LoRA adapter folder)
    embedder.heads: ASPECTRAG_HEADS, true (per-head vectors at ingest, Multi-Head RAG)
    embedder.runtime: ASPECTRAG_EMBEDDER_RUNTIME, None (= ``torch`` for a new index, the
        recorded one for an existing index); ``torch``, ``onnx-int8``, ``onnx-fp32``, ``auto``
    embedder.query_twin: ASPECTRAG_QUERY_TWIN, true (queries of a torch-built index encode
        with its fp32 ONNX export in ``search``, ``ask`` and ``serve``)
    embedder.onnx_spin: ASPECTRAG_ONNX_SPIN, true (ONNX Runtime's idle threads spin-wait)
    retrieval.multiquery_late_chunking: ASPECTRAG_MULTIQUERY_LATE_CHUNKING, false (multi-query
        sub-queries that are spans of the question pooled from its token vectors)
    chunking.chunk_size / chunk_overlap: ASPECTRAG_CHUNK_SIZE / ASPECTRAG_CHUNK_OVERLAP,
        128 / 16 embedder tokens
    llm.base_url / model / api_key: ASPECTRAG_LLM_BASE_URL / _MODEL / _API_KEY, None
    llm.config_file: ASPECTRAG_LLM_CONFIG, None (flat TOML of the llm keys)
    llm.timeout / max_retries / context_tokens: ASPECTRAG_LLM_TIMEOUT / _MAX_RETRIES /
        _CONTEXT_TOKENS, 60 s / 3 / 6000 tokens
    llm.prompt_template: ASPECTRAG_PROMPT_TEMPLATE, None (JSON file of prompt templates)
    service.host / port: ASPECTRAG_SERVICE_HOST / _PORT, 127.0.0.1 / 8000
    service.api_keys: ASPECTRAG_SERVICE_API_KEYS, () — entries ``[SCOPES:]SECRET`` separated by
        commas or whitespace, SCOPES ``read``, ``write`` or ``read+write`` (default read),
        SECRET a plain key or ``sha256=HEX``; only SHA-256 digests are kept (``ApiKey``)
    service.cors_origins: ASPECTRAG_SERVICE_CORS_ORIGINS, () (CORS off)
    service.upload_limit_mb: ASPECTRAG_SERVICE_UPLOAD_LIMIT_MB, 50 MB
    service.request_timeout_s: ASPECTRAG_SERVICE_REQUEST_TIMEOUT_S, 60 s
    service.search_concurrency: ASPECTRAG_SERVICE_SEARCH_CONCURRENCY, 0 (= the cores of each
        server process / its model-runtime threads, at least 1): searches run at once per
        process, the others queue
    service.ingest_process / ingest_nice: ASPECTRAG_SERVICE_INGEST_PROCESS / _INGEST_NICE,
        true / 10 — ingest jobs embed in a child process at this nice increment (0-19), so
        searches keep the cores while an ingest runs
    crawl.user_agent: ASPECTRAG_CRAWL_USER_AGENT, ``aspectrag/0.1 (+https://github.com/aspectrag)``
    crawl.allow_hosts: ASPECTRAG_CRAWL_ALLOW_HOSTS, () (hosts/CIDRs exempt from the SSRF guard)
    url.timeout / max_bytes / max_redirects: ASPECTRAG_URL_TIMEOUT / _MAX_BYTES /
        _MAX_REDIRECTS, 20 s / 50 MiB / 5
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from aspectrag.errors import ConfigError

ENV_PREFIX = "ASPECTRAG_"
CONFIG_ENV = "ASPECTRAG_CONFIG"
CONFIG_FILENAME = "aspectrag.toml"


def _env(name: str, default: Any = None, factory: Any = None) -> Any:
    """A dataclass field whose environment variable is ``ASPECTRAG_<name>``."""
    meta = {"env": ENV_PREFIX + name}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def hash_api_key(secret: str) -> str:
    """Hex SHA-256 digest of an API key (what settings keep instead of the key)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


SCOPES = ("read", "write")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One service API key: its SHA-256 digest and scopes (subset of ``SCOPES``)."""

    sha256: str
    scopes: frozenset[str] = frozenset({"read"})

    @classmethod
    def parse(cls, entry: str, where: str = "api key") -> ApiKey:
        """``[SCOPES:]SECRET`` (SCOPES ``read``, ``write``, ``read+write``; SECRET a plain key or
        ``sha256=HEX``).

        Raises:
            ConfigError: empty secret, unknown scope or a malformed digest.
        """
        scopes_s, sep, secret = entry.strip().partition(":")
        if not sep or not set(scopes_s.split("+")) <= set(SCOPES):
            scopes_s, secret = "read", entry.strip()
        scopes = frozenset(s for s in scopes_s.split("+") if s)
        if secret.startswith("sha256="):
            digest = secret[len("sha256=") :].lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError(f"{where}: sha256= must be followed by 64 hex digits")
            return cls(digest, scopes)
        if not secret:
            raise ConfigError(f"{where}: empty API key")
        return cls(hash_api_key(secret), scopes)


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """Where the index lives: a folder path, or ``scheme://...`` for another backend."""

    location: str = _env("INDEX", ".aspectrag")


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Store backends: the API key sent to a ``qdrant://`` server (None: no key), the
    URL of a Qdrant server the store tests also run against (None: local mode only), the
    storage dtype of the per-head vectors of new indexes (``store/vector_codec.py``) and the
    dtype HNSW graphs hold their rows in (``store/dense_index.py``)."""

    qdrant_api_key: str | None = _env("QDRANT_API_KEY")
    qdrant_url: str | None = _env("QDRANT_URL")
    head_dtype: str = _env("HEAD_DTYPE", "float16")
    ann_dtype: str = _env("ANN_DTYPE", "float16")


@dataclass(frozen=True, slots=True)
class EmbedderSettings:
    """The embedding model: ``path`` None = bundled all-MiniLM-L6-v2; ``adapter`` a LoRA folder;
    ``heads``: also store per-head vectors at ingest (Multi-Head RAG, Besta et al. 2024);
    ``runtime``: ``torch``, ``onnx-int8``, ``onnx-fp32`` or ``auto`` (None: see
    ``embed/factory.py``); ``query_twin``: ``aspectrag ingest`` into a torch-built index also
    prepares the fp32 ONNX export that ``search`` / ``ask`` then encode queries with, without
    importing torch (``embed.factory.query_twin``; needs onnxruntime, the ``onnx`` extra);
    ``onnx_spin``: ONNX Runtime's idle intra-op threads spin-wait for the next parallel
    region (lower latency per encode, more CPU per encode; ``embed/onnx.py``)."""

    path: str | None = _env("EMBEDDER")
    adapter: str | None = _env("EMBEDDER_ADAPTER")
    heads: bool = _env("HEADS", True)
    runtime: str | None = _env("EMBEDDER_RUNTIME")
    query_twin: bool = _env("QUERY_TWIN", True)
    onnx_spin: bool = _env("ONNX_SPIN", True)


@dataclass(frozen=True, slots=True)
class RetrievalSettings:
    """Retrieval: ``multiquery_late_chunking`` -- multi-query (and ``auto``) sub-queries that
    are spans of the question are pooled from the question's token vectors instead of encoded
    alone (late chunking; ``retrieve/multiquery.py``, ``embed/late.py``)."""

    multiquery_late_chunking: bool = _env("MULTIQUERY_LATE_CHUNKING", False)


@dataclass(frozen=True, slots=True)
class ChunkingSettings:
    """Chunking, in *tokens of the embedder*: at most 128 tokens with 16 overlap by default
    (the bundled MiniLM truncates at 256 and was trained on short inputs). Chosen on development
    data by benchmarks/chunk_size_dev.py (results/chunking/): against 224 / 32, SciFact train
    dense nDCG@10 +0.014 [+0.003, +0.024], hybrid +0.005, auto +0.005, MRAG Wikipedia v1 hybrid
    +0.015 [+0.007, +0.022], HotpotQA hybrid unchanged; 96 / 12 was no better. It costs 1.66x
    the chunks (SciFact: 17,114 vs 10,323) and multi-head alone gives a little back on MRAG
    Wikipedia (-0.009)."""

    chunk_size: int = _env("CHUNK_SIZE", 128)
    chunk_overlap: int = _env("CHUNK_OVERLAP", 16)


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """OpenAI-compatible LLM endpoint (answers and query rewriting alike).

    ``timeout`` in seconds per request; ``context_tokens`` the prompt budget in tokens;
    ``prompt_template`` a JSON file (``generate.prompt.PromptTemplate``); ``config_file`` a flat
    TOML file of these keys (the old ``ASPECTRAG_LLM_CONFIG``).
    """

    base_url: str | None = _env("LLM_BASE_URL")
    model: str | None = _env("LLM_MODEL")
    api_key: str | None = _env("LLM_API_KEY")
    config_file: Path | None = _env("LLM_CONFIG")
    timeout: float = _env("LLM_TIMEOUT", 60.0)
    max_retries: int = _env("LLM_MAX_RETRIES", 3)
    context_tokens: int = _env("LLM_CONTEXT_TOKENS", 6000)
    prompt_template: Path | None = _env("PROMPT_TEMPLATE")

    @property
    def configured(self) -> bool:
        """An endpoint is configured: base URL and model both set. ``ask`` then answers with
        the LLM and ``--query-generator auto`` rewrites queries with it."""
        return bool(self.base_url and self.model)


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """HTTP service: bind address, API keys (digests only), CORS origins (empty = CORS off),
    upload limit in MB (10**6 bytes), request time limit in seconds (a streamed answer too),
    how long finished ingest jobs stay in the job table, in seconds (default 7 days), searches
    run at once per server process (0: its cores; more CPU-bound searches than cores only slow
    each other down), whether ingest jobs embed in a child process and at which nice
    increment (0-19)."""

    host: str = _env("SERVICE_HOST", "127.0.0.1")
    port: int = _env("SERVICE_PORT", 8000)
    api_keys: tuple[ApiKey, ...] = _env("SERVICE_API_KEYS", ())
    cors_origins: tuple[str, ...] = _env("SERVICE_CORS_ORIGINS", ())
    upload_limit_mb: int = _env("SERVICE_UPLOAD_LIMIT_MB", 50)
    request_timeout_s: float = _env("SERVICE_REQUEST_TIMEOUT_S", 60.0)
    job_retention_s: float = _env("SERVICE_JOB_RETENTION_S", 7 * 86400.0)
    search_concurrency: int = _env("SERVICE_SEARCH_CONCURRENCY", 0)
    ingest_process: bool = _env("SERVICE_INGEST_PROCESS", True)
    ingest_nice: int = _env("SERVICE_INGEST_NICE", 10)

    def key_scopes(self, secret: str) -> frozenset[str]:
        """Scopes of the bearer key ``secret`` (empty when it is not a configured key);
        compared in constant time."""
        digest = hash_api_key(secret)
        for k in self.api_keys:
            if hmac.compare_digest(k.sha256, digest):
                return k.scopes
        return frozenset()


@dataclass(frozen=True, slots=True)
class CrawlSettings:
    """Web fetching: the User-Agent sent, and hosts/CIDRs allowed past the SSRF guard."""

    user_agent: str = _env("CRAWL_USER_AGENT", "aspectrag/0.1 (+https://github.com/aspectrag)")
    allow_hosts: tuple[str, ...] = _env("CRAWL_ALLOW_HOSTS", ())


@dataclass(frozen=True, slots=True)
class URLSettings:
    """URL ingest limits: seconds per request (whole body), bytes per body, redirects."""

    timeout: float = _env("URL_TIMEOUT", 20.0)
    max_bytes: int = _env("URL_MAX_BYTES", 50 * 1024 * 1024)
    max_redirects: int = _env("URL_MAX_REDIRECTS", 5)


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "aspectrag"


@dataclass(frozen=True, slots=True)
class Settings:
    """All settings (see the module docstring for the variables, defaults and precedence).

    ``config_file`` is the TOML file that was read (None when none was found).
    """

    threads: int = _env("THREADS", 0)
    cache_dir: Path = _env("CACHE_DIR", factory=_default_cache_dir)
    shared_data_dir: Path = _env("SHARED_DATA", Path("../shared/data"))
    index: IndexSettings = field(default_factory=IndexSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    crawl: CrawlSettings = field(default_factory=CrawlSettings)
    url: URLSettings = field(default_factory=URLSettings)
    config_file: Path | None = None

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``: top-level fields by name, sections as a mapping of their
        fields (``replace(llm={"model": "m"}, threads=2)``) or as a section object. Values of
        None are ignored (= "not given"), so CLI flags can be passed through as they are.

        Raises:
            ConfigError: unknown field, or a value of the wrong type.
        """
        return _apply(self, changes, "override")


# ---- parsing ----------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp is not ApiKey


def _split(value: str) -> list[str]:
    return [p for p in value.replace(",", " ").split() if p]


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` (a string from the environment, or a TOML/Python value) as type ``tp``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return None if value is None else _convert(inner[0], value, where)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in _TRUE or s in _FALSE:
                return s in _TRUE
            raise ValueError(f"expected one of {'/'.join(_TRUE + _FALSE)}")
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if tp is str:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError("expected a string")
            return str(value)
        if tp is Path:
            if not isinstance(value, str | os.PathLike):
                raise ValueError("expected a path")
            return Path(value).expanduser()
        if typing.get_origin(tp) is tuple:
            items = _split(value) if isinstance(value, str) else value
            if not isinstance(items, list | tuple):
                raise ValueError("expected a list")
            if args[0] is ApiKey:
                return tuple(_api_key(v, where) for v in items)
            return tuple(_convert(args[0], v, where) for v in items)
    except (TypeError, ValueError) as e:
        msg = str(e) if "expected" in str(e) else f"expected {getattr(tp, '__name__', tp)}"
        raise ConfigError(f"{where}: invalid value {value!r} ({msg})") from None
    raise ConfigError(f"{where}: unsupported setting type {tp}")  # pragma: no cover


def _api_key(v: Any, where: str) -> ApiKey:
    if isinstance(v, ApiKey):
        return v
    if isinstance(v, str):
        return ApiKey.parse(v, where)
    if isinstance(v, dict):
        unknown = set(v) - {"key", "sha256", "scopes"}
        scopes = v.get("scopes", ["read"])
        if unknown or ("key" in v) == ("sha256" in v) or not isinstance(scopes, list):
            raise ConfigError(
                f"{where}: an API key table needs exactly one of key / sha256, and scopes "
                "(a list of read, write)"
            )
        if not set(scopes) <= set(SCOPES):
            raise ConfigError(f"{where}: unknown scopes {sorted(set(scopes) - set(SCOPES))}")
        secret = f"sha256={v['sha256']}" if "sha256" in v else str(v["key"])
        return ApiKey.parse(f"{'+'.join(scopes) or 'read'}:{secret}", where)
    raise ConfigError(f"{where}: an API key is a string or a table")


def _apply(obj: Any, changes: dict[str, Any], source: str) -> Any:
    """``obj`` (a settings dataclass) with ``changes`` converted and applied (None skipped)."""
    hints = _hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if type(obj) is Settings:
        fields.pop("config_file")
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        section = _section_name(obj).rstrip(".")
        raise ConfigError(
            f"{source}: unknown keys {unknown}{' in [' + section + ']' if section else ''}; "
            f"allowed: {', '.join(fields)}"
        )
    new: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            continue
        tp = hints[key]
        env = fields[key].metadata.get("env")
        where = (f"{source} {env}" if source == "environment" and env
                 else f"{source}: {_section_name(obj)}{key}")
        if _is_section(tp):
            if isinstance(value, tp):
                new[key] = value
            elif isinstance(value, dict):
                new[key] = _apply(getattr(obj, key), value, source)
            else:
                raise ConfigError(f"{where}: expected a table of settings")
        else:
            new[key] = _convert(tp, value, where)
    return dataclasses.replace(obj, **new) if new else obj


def _section_name(obj: Any) -> str:
    """``"llm."`` for an ``LLMSettings`` object, ``""`` for ``Settings``."""
    for f in dataclasses.fields(Settings):
        if _hints(Settings)[f.name] is type(obj):
            return f.name + "."
    return ""


def _env_layer(env: dict[str, str]) -> dict[str, Any]:
    """The values set in ``env``, as a nested mapping of settings."""
    out: dict[str, Any] = {}
    hints = _hints(Settings)
    for f in dataclasses.fields(Settings):
        if _is_section(hints[f.name]):
            sub = {
                g.name: env[g.metadata["env"]]
                for g in dataclasses.fields(hints[f.name])
                if env.get(g.metadata["env"], "").strip()
            }
            if sub:
                out[f.name] = sub
        elif "env" in f.metadata and env.get(f.metadata["env"], "").strip():
            out[f.name] = env[f.metadata["env"]]
    return out


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path} ({what}): no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path} ({what}): cannot read TOML ({e})") from None


def env_names() -> dict[str, str]:
    """``{"section.field" or "field": "ASPECTRAG_..."}`` for every setting read from the
    environment (the documentation table in one call)."""
    out: dict[str, str] = {}
    hints = _hints(Settings)
    for f in dataclasses.fields(Settings):
        if _is_section(hints[f.name]):
            for g in dataclasses.fields(hints[f.name]):
                out[f"{f.name}.{g.name}"] = g.metadata["env"]
        elif "env" in f.metadata:
            out[f.name] = f.metadata["env"]
    return out


# ---- loading ----------------------------------------------------------------------------

_CLI_CONFIG: Path | None = None


def use_config_file(path: str | Path | None) -> None:
    """Set the config file given on the command line (``--config``); None to unset. Called
    once by the CLI's callback, before any command reads settings."""
    global _CLI_CONFIG
    _CLI_CONFIG = Path(path).expanduser() if path is not None else None


def use_flag(env_name: str, value: str | None) -> None:
    """Map a command-line flag onto its setting (CLI edge only): ``value`` becomes the
    setting's variable ``env_name`` (an ``ASPECTRAG_*`` name of the table above, e.g.
    ``ASPECTRAG_EMBEDDER_RUNTIME`` for ``--runtime``) in this process and the processes it
    starts (a local Ray, server workers), so the flag outranks the environment and the file
    everywhere. None (the flag was not given) changes nothing.

    Raises:
        ConfigError: ``env_name`` is not the variable of a setting.
    """
    if env_name not in env_names().values():
        raise ConfigError(f"{env_name}: not the environment variable of a setting")
    if value is not None:
        os.environ[env_name] = value


def find_config_file(explicit: str | Path | None = None) -> Path | None:
    """The config file to read (see the module docstring), or None when there is none.

    Raises:
        ConfigError: a file named by ``--config`` or ``$ASPECTRAG_CONFIG`` does not exist.
    """
    for given, what in ((explicit, "--config"), (_CLI_CONFIG, "--config"),
                        (os.environ.get(CONFIG_ENV, "").strip() or None, CONFIG_ENV)):
        if given is not None:
            p = Path(given).expanduser()
            if not p.is_file():
                raise ConfigError(f"{p} ({what}): no such config file")
            return p
    local = Path(CONFIG_FILENAME)
    if local.is_file():
        return local
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(xdg) / "aspectrag" / "config.toml"
    return user if user.is_file() else None


Stamp = tuple[str, int, int] | None


def _stamp(path: Path | None) -> Stamp:
    """Cache key of a file: resolved path, modification time (ns) and size."""
    if path is None:
        return None
    try:
        st = path.stat()
        return (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return (str(path), -1, -1)


@lru_cache(maxsize=32)
def _toml(stamp: tuple[str, int, int], what: str) -> dict[str, Any]:
    return _read_toml(Path(stamp[0]), what)


def _llm_file(main: Stamp, env: dict[str, str]) -> Path | None:
    """The LLM file: ``ASPECTRAG_LLM_CONFIG``, else ``[llm] config_file`` of the main file."""
    name: Any = env.get("ASPECTRAG_LLM_CONFIG", "").strip() or None
    if name is None and main is not None:
        section = _toml(main, "config file").get("llm")
        name = section.get("config_file") if isinstance(section, dict) else None
    if name is None:
        return None
    if not isinstance(name, str):
        raise ConfigError(f"{main and main[0]}: llm.config_file: expected a path")
    return Path(name).expanduser()


@lru_cache(maxsize=32)
def _load(main: Stamp, llm: Stamp, env: tuple[tuple[str, str], ...]) -> Settings:
    s = Settings()
    if main is not None:
        s = _apply(s, _toml(main, "config file"), main[0])
        s = dataclasses.replace(s, config_file=Path(main[0]))
    if llm is not None:
        what = "llm.config_file / ASPECTRAG_LLM_CONFIG"
        data = _toml(llm, what) if llm[1] >= 0 else _read_toml(Path(llm[0]), what)
        if "config_file" in data:
            raise ConfigError(f"{llm[0]}: an LLM config file cannot name another one")
        s = dataclasses.replace(s, llm=_apply(s.llm, data, llm[0]))
    return _apply(s, _env_layer(dict(env)), "environment")


def get_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """The settings: ``overrides`` > environment > config file > defaults.

    Cached: the environment (``ASPECTRAG_*``) and the file (path and modification time) are
    the cache key, so a changed variable or file is seen at the next call.

    Args:
        config_file: the TOML file to read instead of the one found by ``find_config_file``.
        overrides: as for ``Settings.replace`` (None values are ignored).

    Raises:
        ConfigError: unreadable or invalid file, unknown key, invalid value (the message names
            the file or variable and the key).
    """
    env = tuple(sorted((k, v) for k, v in os.environ.items()
                       if k.startswith(ENV_PREFIX) or k == "HOME"))
    main = _stamp(find_config_file(config_file))
    s = _load(main, _stamp(_llm_file(main, dict(env))), env)
    return s.replace(**overrides) if overrides else s


def export_to_libraries(values: dict[str, str], *, keep_user: frozenset[str] = frozenset()) -> None:
    """Set process environment variables that third-party libraries read when a later step
    imports them (``OMP_NUM_THREADS`` for torch's pool, ``TRANSFORMERS_VERBOSITY``,
    ``HF_HUB_DISABLE_PROGRESS_BARS``): the command line configures them this way so that it
    need not import those libraries up front. Names in ``keep_user`` keep a value the user
    already set. The one place (with the settings above) that touches ``os.environ``."""
    for name, value in values.items():
        if name in keep_user:
            os.environ.setdefault(name, value)
        else:
            os.environ[name] = value
