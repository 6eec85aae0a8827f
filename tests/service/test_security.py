"""Security defaults: API key scopes, hashed keys file, refusing a public bind without keys,
CORS off by default, request time limits, the SSRF guard on URL ingest (every redirect hop)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aspectrag.errors import BlockedURLError
from aspectrag.service import create_app
from aspectrag.service.auth import hash_key, load_keys_file, scopes_of
from aspectrag.service.netguard import check_url

from .conftest import wait_job

READ, WRITE = "reader-key-1", "writer-key-2"
KEYS = {hash_key(READ): {"read"}, hash_key(WRITE): {"read", "write"}}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_scopes(hash_index):
    with TestClient(create_app(hash_index, api_keys=KEYS), raise_server_exceptions=False) as c:
        q = {"query": "Roman consuls", "retriever": "bm25"}
        r = c.post("/v1/search", json=q)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.headers["content-type"] == "application/problem+json"
        assert c.post("/v1/search", json=q, headers=bearer("wrong")).status_code == 401
        assert c.post("/v1/search", json=q, headers=bearer(READ)).status_code == 200
        doc = {"text": "Basalt is a volcanic rock.", "source": "basalt"}
        r = c.post("/v1/documents", json=doc, headers=bearer(READ))
        assert r.status_code == 403 and "write" in r.json()["detail"]
        r = c.post("/v1/documents", files={"files": ("a.txt", b"hello there world")},
                   headers=bearer(READ))
        assert r.status_code == 403
        assert c.delete("/v1/documents", params={"source": "x"},
                        headers=bearer(READ)).status_code == 403
        r = c.post("/v1/documents", json=doc, headers=bearer(WRITE))
        assert r.status_code == 202
        assert wait_job(c, r.json()["job"], headers=bearer(READ))["status"] == "succeeded"
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers=bearer(READ)).status_code == 200
        assert c.get("/healthz").status_code == 200  # probes need no key
        assert c.get("/").status_code == 200  # the page itself; its API calls send the key


def test_keys_file_holds_hashes(tmp_path):
    f = tmp_path / "keys"
    f.write_text(f"# team keys\n{hash_key(READ)} read\n{hash_key(WRITE)} read,write\n")
    keys = load_keys_file(f)
    assert READ not in f.read_text()
    assert scopes_of(keys, f"Bearer {WRITE}") == {"read", "write"}
    assert scopes_of(keys, f"Bearer {READ}") == {"read"}
    assert scopes_of(keys, "Bearer nope") is None and scopes_of(keys, None) is None
    f.write_text("abc read\n")
    with pytest.raises(Exception, match="keys:1|SHA-256"):
        load_keys_file(f)
    f.write_text(f"{hash_key(READ)} admin\n")
    with pytest.raises(Exception, match="unknown scope"):
        load_keys_file(f)


def test_serve_refuses_public_bind_without_keys(tmp_path):
    from aspectrag.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["serve", "--index", str(tmp_path / "i"), "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "--keys-file" in res.output and "--no-auth" in res.output
    res = runner.invoke(app, ["serve", "--hash-key"])
    assert res.exit_code == 0
    line = res.stdout.strip().splitlines()[-1]
    assert len(line.split()[0]) == 64 and line.endswith("read,write")


def test_cors_off_by_default_and_on_when_configured(hash_index):
    pre = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(hash_index)) as c:
        r = c.options("/v1/search", headers=pre)
        assert "access-control-allow-origin" not in r.headers
        r = c.get("/v1/stats", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    with TestClient(create_app(hash_index, cors_origins=["https://app.example"])) as c:
        r = c.get("/v1/stats", headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.get("/v1/stats", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_request_time_limit(hash_index, monkeypatch):
    app = create_app(hash_index, request_timeout=0.2)
    with TestClient(app, raise_server_exceptions=False) as c:
        engine = app.state.service.engine
        real = engine.search
        monkeypatch.setattr(engine, "search", lambda *a, **k: (time.sleep(1.5), real(*a, **k))[1])
        t0 = time.monotonic()
        r = c.post("/v1/search", json={"query": "x", "retriever": "bm25"})
        assert r.status_code == 503 and time.monotonic() - t0 < 1.2
        assert "longer than 0.2 s" in r.json()["detail"]


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(302)
        self.send_header("Location", self.target)
        self.end_headers()

    def log_message(self, *a) -> None:  # type: ignore[no-untyped-def]
        pass


def _redirector(host: str, target: str) -> HTTPServer:
    handler = type("H", (_Redirect,), {"target": target})
    srv = HTTPServer((host, 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _can_bind(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def test_ssrf_guard_refuses_private_addresses():
    for url in ("http://127.0.0.1:9/", "http://localhost/", "http://10.0.0.1/",
                "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "file:///etc/passwd",
                "http://192.168.1.1/", "ftp://example.org/"):
        with pytest.raises(BlockedURLError, match="refused|http"):
            check_url(url)
    check_url("http://127.0.0.1:9/", allow=["127.0.0.1"])
    check_url("http://10.1.2.3/", allow=["10.0.0.0/8"])


def test_url_ingest_refuses_loopback_and_redirects_to_it(hash_index):
    if not _can_bind("127.0.0.2"):
        pytest.skip("cannot bind 127.0.0.2 for the allow-listed redirector")
    with TestClient(create_app(hash_index, url_allow=["127.0.0.2"]),
                    raise_server_exceptions=False) as c:
        r = c.post("/v1/documents", json={"url": "http://127.0.0.1:9/secret"})
        assert r.status_code == 400 and "refused" in r.json()["detail"]
        srv = _redirector("127.0.0.2", "http://127.0.0.1:9/secret")
        try:
            url = f"http://127.0.0.2:{srv.server_port}/page"
            r = c.post("/v1/documents", json={"url": url})
            assert r.status_code == 400, r.text
            assert "127.0.0.1" in r.json()["detail"] and "refused" in r.json()["detail"]
        finally:
            srv.shutdown()
        assert c.get("/v1/stats").json()["jobs"] == {}
