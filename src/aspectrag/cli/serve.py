"""``aspectrag serve``: the HTTP API, the OpenAI-compatible chat endpoint and the web page."""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path
from typing import Annotated, Any

import typer

from aspectrag.cli.common import DEFAULT_INDEX, IndexOpt, console, fail
from aspectrag.errors import AspectragError


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(params: dict[str, Any]) -> Any:
    """The ASGI app from ``serve``'s parameters (a module-level factory, so uvicorn workers can
    build it in their own process)."""
    from aspectrag.service.app import create_app

    p = dict(params)
    return create_app(p.pop("index"), **p)


def serve(
    index: IndexOpt = DEFAULT_INDEX,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(
        help="Server processes sharing the index (searches in every one; ingest jobs run one at "
             "a time, by whichever process claims them, under the index's writer lock).")] = 1,
    keys_file: Annotated[Path | None, typer.Option(
        "--keys-file", help="API keys file: lines '<sha256 hex of key> read[,write]' "
        "(see --hash-key).")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Allow a non-loopback bind without API keys.")] = False,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Origin allowed by CORS (repeatable; default: CORS off).")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload, in MiB.")] = 50.0,
    request_timeout: Annotated[float, typer.Option(
        help="Seconds a search/ask may take before a 503 answer.")] = 60.0,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="Host or CIDR URL ingest may reach although not public "
        "(repeatable; default: only public addresses).")] = None,
    hash_key: Annotated[bool, typer.Option(
        "--hash-key", help="Print a new API key and its keys-file line, then exit.")] = False,
) -> None:
    """Serve the index over HTTP: JSON API (/docs), OpenAI-compatible /v1/chat/completions,
    and the web page at /."""
    from aspectrag.service.auth import hash_key as _hash
    from aspectrag.service.auth import load_keys_file, new_key

    if hash_key:
        key = new_key()
        console.print(f"API key (give it to the client; it is not stored): {key}", highlight=False)
        print(f"{_hash(key)} read,write")
        return
    try:
        import uvicorn
    except ImportError:
        fail("aspectrag serve needs the service extra: pip install 'aspectrag[service]'")
    keys = None
    if keys_file is not None:
        try:
            keys = load_keys_file(keys_file)
        except AspectragError as e:
            fail(str(e))
    if not is_loopback(host) and keys is None and not no_auth:
        fail(f"--host {host} is reachable from other machines: give --keys-file with API keys, "
             "or --no-auth to serve without authentication")
    if workers < 1:
        fail("--workers must be at least 1")
    params = {"index": str(index), "api_keys": keys, "cors_origins": tuple(cors_origin or ()),
              "max_upload_bytes": int(max_upload_mb * 1024 * 1024),
              "request_timeout": request_timeout, "url_allow": tuple(allow_host or ())}
    config = uvicorn.Config(functools.partial(build_app, params), factory=True, host=host,
                            port=port, workers=workers, log_level="warning",
                            timeout_graceful_shutdown=10)
    console.print(f"serving {index} on http://{host}:{port}/ (API docs: /docs"
                  + (f", {workers} workers" if workers > 1 else "") + ")", highlight=False)
    if workers == 1:
        uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    Multiprocess(config, sockets=[sock]).run()
