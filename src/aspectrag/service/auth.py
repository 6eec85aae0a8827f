"""Bearer API keys with ``read`` / ``write`` scopes, kept as SHA-256 hashes.

A keys file has one key per line: ``<sha256 hex of the key> <scope>[,<scope>]`` (``#`` starts a
comment). ``aspectrag serve --hash-key`` prints a new key and its file line.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path

from aspectrag.errors import ConfigError
from aspectrag.settings import hash_api_key

SCOPES = frozenset({"read", "write"})

#: sha256 hex of a key -> its scopes.
KeyTable = Mapping[str, frozenset[str]]


hash_key = hash_api_key  # SHA-256 hex digest of a key (what is stored at rest)


def new_key() -> str:
    """A fresh random API key (URL-safe, 256 bits)."""
    return "ar-" + secrets.token_urlsafe(32)


def normalise_keys(keys: Mapping[str, set[str] | frozenset[str]]) -> dict[str, frozenset[str]]:
    """Check a hash -> scopes table.

    Raises:
        ConfigError: a hash that is not 64 hex digits or an unknown scope.
    """
    out: dict[str, frozenset[str]] = {}
    for h, scopes in keys.items():
        h = h.strip().lower()
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            raise ConfigError(f"API key hash {h[:12]}...: expected the 64-digit SHA-256 hex of the "
                              "key (aspectrag serve --hash-key prints one)")
        bad = set(scopes) - SCOPES
        if bad:
            raise ConfigError(f"API key {h[:12]}...: unknown scope(s) {sorted(bad)}; use read, write")
        out[h] = frozenset(scopes)
    return out


def load_keys_file(path: str | Path) -> dict[str, frozenset[str]]:
    """Read a keys file (see the module docstring).

    Raises:
        ConfigError: unreadable file or a bad line (the message names the line).
    """
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the API keys file ({e.strerror})") from None
    table: dict[str, set[str]] = {}
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"{p}:{n}: expected '<sha256 hex> read[,write]'")
        table[parts[0]] = set(parts[1].split(","))
    try:
        return normalise_keys(table)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def scopes_of(keys: KeyTable, authorization: str | None) -> frozenset[str] | None:
    """Scopes of the bearer key in an ``Authorization`` header, or None if absent/unknown."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    digest = hash_key(authorization[7:].strip())
    for h, scopes in keys.items():
        if hmac.compare_digest(h, digest):
            return scopes
    return None
