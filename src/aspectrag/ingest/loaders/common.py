"""Helpers shared by the loaders: reading bytes, fingerprints, binary/encoding checks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from aspectrag.errors import LoadError

#: How many leading bytes are scanned for NUL bytes to recognise a binary file.
BINARY_SNIFF_BYTES = 8192


def fingerprint(raw: bytes) -> str:
    """SHA-256 hex digest (64 chars) of the raw input bytes: equal digests mean unchanged input."""
    return hashlib.sha256(raw).hexdigest()


def resolve_path(source: str) -> Path:
    """Absolute, symlink-resolved path of a file source (``~`` expanded); the file's ``doc_id``."""
    return Path(os.path.expanduser(source)).resolve()


def read_file(source: str) -> tuple[Path, bytes]:
    """Read a whole file.

    Returns:
        ``(resolved_path, raw_bytes)``.

    Raises:
        LoadError: the file does not exist, is a folder, cannot be read, or is empty.
    """
    path = resolve_path(source)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LoadError(source, "no such file") from None
    except IsADirectoryError:
        raise LoadError(source, "is a folder, not a file") from None
    except PermissionError:
        raise LoadError(source, "permission denied") from None
    except OSError as exc:
        raise LoadError(source, f"cannot be read ({exc.strerror or exc})") from None
    if not raw.strip():
        raise LoadError(source, "empty file")
    return path, raw


def check_not_binary(source: str, raw: bytes) -> None:
    """Raise ``LoadError`` when ``raw`` looks binary (a NUL byte in the first 8 KiB).

    UTF-16/32 text with a byte-order mark is not considered binary.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return
    if b"\x00" in raw[:BINARY_SNIFF_BYTES]:
        raise LoadError(source, "binary file (contains NUL bytes), not text")


def decode_text(source: str, raw: bytes, charset: str | None = None) -> str:
    """Decode text bytes strictly: a declared ``charset`` (e.g. from HTTP headers), else UTF-8
    (a UTF-8/UTF-16 byte-order mark is honoured and removed).

    Raises:
        LoadError: binary content, or bytes that are not valid in the encoding (the message gives
            the byte offset and asks to convert the file to UTF-8).
    """
    check_not_binary(source, raw)
    if raw.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = charset or "utf-8"
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise LoadError(source, f"unknown text encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise LoadError(
            source,
            f"undecodable: not valid {encoding} (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); convert the file to UTF-8",
        ) from None
    if "\x00" in text:
        raise LoadError(source, "binary file (contains NUL characters), not text")
    return text
