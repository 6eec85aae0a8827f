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
