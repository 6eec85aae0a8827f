"""Exceptions raised by aspectrag; every message names the file/field and what to do."""


class AspectragError(Exception):
    """Base class of aspectrag errors."""


class LoadError(AspectragError):
    """A source could not be loaded (corrupt, empty, binary, undecodable, dead URL...).

    Attributes:
        source: the file path or URL.
        reason: one-line reason shown to the user.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class IndexMismatchError(AspectragError):
    """The index was built with a different embedder (or adapter) than the one in use."""


class ConfigError(AspectragError):
    """A configuration value is missing or invalid."""


class StoreError(AspectragError):
    """The store failed (damaged file, locked, read-only, unreachable); the message names the
    index and the next step (e.g. ``aspectrag check --index X``).

    Attributes:
        location: the index location.
    """

    def __init__(self, location: str, message: str) -> None:
        super().__init__(message)
        self.location = location


class IndexBusyError(StoreError):
    """Another process is writing the index and the caller asked not to wait (``--no-wait``)."""


class InvalidRequestError(AspectragError):
    """A request argument is invalid (``k`` < 1, an empty query, a query with no searchable
    token...). The message names the argument, the value and the limit.

    Attributes:
        field: the argument at fault (``"k"``, ``"query"``, ...), for the HTTP API's
            problem+json and the CLI option name.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class IndexNotFoundError(AspectragError):
    """A read command (search, ask, stats, remove...) named an index that does not exist.

    Attributes:
        location: the index folder (or location string) that was given.
    """

    def __init__(self, location: str) -> None:
        super().__init__(
            f"no index at {location}; run `aspectrag ingest ... --index {location}` first"
        )
        self.location = location


class BlockedURLError(LoadError):
    """A URL was refused by the SSRF guard (:func:`aspectrag.ingest.net.check_public_url`):
    not http(s), or its host resolves to a loopback, private, link-local, multicast, reserved,
    unspecified or cloud-metadata address that no allow-list entry covers.

    A :class:`LoadError` (so an ingest reports it per source), hence an :class:`AspectragError`.

    Attributes:
        source: the refused URL.
        reason: one line, e.g. ``"refused: 127.0.0.1 is a loopback address (allow it with
            --allow-host 127.0.0.1)"``.
    """


class IngestEngineError(AspectragError):
    """A distributed ingest engine failed as a whole (the Ray cluster is unreachable, an
    embedding worker died or raised); the index is left exactly as it was. Failures of single
    sources are not this error: they are listed in the ingest report."""
