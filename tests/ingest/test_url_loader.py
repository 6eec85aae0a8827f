"""URL loading against a local http.server on 127.0.0.1 started by the test."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.conftest import shared_data

from aspectrag.errors import BlockedURLError, LoadError
from aspectrag.ingest.loaders import UrlLoader, load
from aspectrag.ingest.net import check_public_url

#: the test server runs on loopback, which the SSRF guard refuses unless allow-listed
LOCAL = ("127.0.0.1",)


def load_local(url: str) -> list:  # type: ignore[type-arg]
    return list(load(url, allow_hosts=LOCAL))

PAGE = (
    "<!DOCTYPE html><html><head><title>Local Test Page</title>"
    "<script>var tracker = function() { return 1; };</script></head><body>"
    "<nav><a href='/'>Home</a> | <a href='/archive'>Archive</a> | <a href='/tags'>Tags</a></nav>"
    "<article><h1>Local Test Page</h1>"
    "<p>Retrieval-augmented generation combines a retriever with a generator. "
    "The retriever finds passages relevant to the question in a large corpus.</p>"
    "<h2>Chunking</h2>"
    "<p>Documents are cut into chunks of a few hundred tokens with some overlap, so that each "
    "chunk fits the context window of the embedding model and keeps enough context.</p>"
    "<p>Each chunk keeps its source, title, page and heading for citations later on.</p>"
    "<h2>Fusion</h2>"
    "<p>Reciprocal rank fusion merges the ranked lists of several retrievers into one list; "
    "documents ranked high by several retrievers rise to the top of the fused list.</p>"
    "</article><footer>Copyright 2024 Example Footer Inc.</footer></body></html>"
)
MARKDOWN = "# Remote Notes\n\nSome *markdown* text.\n\n## Part\n\nMore text.\n"


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]] = {}

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = self.path
        if path.startswith("/to-loopback"):  # a redirect into the loopback address
            return self._redirect(f"http://127.0.0.1:{self.server.server_address[1]}/page.html")
        if path == "/loop":
            return self._redirect("/loop")
        if path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            return self._redirect(f"/hop/{n - 1}" if n > 1 else "/page.html")
        if path == "/slow":
            time.sleep(3)
            return self._send(200, "text/html", PAGE.encode())
        if path == "/trickle":  # sends a byte every 0.2 s, never finishing within the timeout
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return None
        if path == "/huge-chunked":  # no Content-Length: the limit is enforced while streaming
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"a" * 1024)
            except OSError:
                pass
            self.close_connection = True
            return None
        if path not in self.routes:
            return self._send(404, "text/html", b"<h1>Not Found</h1>")
        status, ctype, body = self.routes[path]
        return self._send(status, ctype, body)

    def _redirect(self, to: str) -> None:
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up (timeouts, size limits) leave broken pipes behind


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    routes = {
        "/page.html": (200, "text/html; charset=utf-8", PAGE.encode()),
        "/notes.md": (200, "text/markdown; charset=utf-8", MARKDOWN.encode()),
        "/plain": (200, "text/plain; charset=iso-8859-1", "caf\xe9 au lait".encode("latin-1")),
        "/big.txt": (200, "text/plain", b"word " * 40_000),
        "/image.png": (200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        "/error": (500, "text/plain", b"boom"),
        "/empty.html": (200, "text/html", b""),
        # no <meta charset>: only the HTTP header says how to decode
        "/latin1.html": (
            200,
            "text/html; charset=windows-1252",
            PAGE.replace("combines a", "combines \u2014 na\xefvely \u2014 a").encode("cp1252"),
        ),
    }
    pdf = shared_data() / "aragog" / "papers" / "distilbert.pdf"
    if pdf.is_file():
        routes["/paper.pdf"] = (200, "application/pdf", pdf.read_bytes())
        routes["/download/paper.pdf"] = (200, "application/octet-stream", pdf.read_bytes())
    agent = shared_data() / "lilianweng-posts" / "2023-06-23-agent.html"
    if agent.is_file():
        routes["/posts/agent/"] = (200, "text/html", agent.read_bytes())
    _Handler.routes = routes
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _reason(loader: UrlLoader, url: str) -> str:
    with pytest.raises(LoadError) as exc:
        list(loader.load(url))
    assert exc.value.source == url and "\n" not in exc.value.reason
    return exc.value.reason


def test_html_page(server):
    url = f"{server}/page.html"
    (doc,) = load_local(url)
    assert doc.doc_id == doc.source == url
    assert doc.title == "Local Test Page"
    assert doc.fingerprint == hashlib.sha256(PAGE.encode()).hexdigest()
    assert "Reciprocal rank fusion merges" in doc.text
    assert [s.heading for s in doc.sections][-2:] == ["Chunking", "Fusion"]
    for junk in ("tracker", "Archive", "Copyright", "Footer"):
        assert junk not in doc.text
    assert doc.metadata["content_type"] == "text/html" and doc.metadata["url"] == url


def test_html_charset_from_http_header(server):
    (doc,) = load_local(f"{server}/latin1.html")
    assert "combines — naïvely — a retriever" in doc.text


def test_real_blog_post_over_http(server):
    if not (shared_data() / "lilianweng-posts").is_dir():
        pytest.skip("shared data absent")
    (doc,) = load_local(f"{server}/posts/agent/")
    assert doc.title == "LLM Powered Autonomous Agents"
    assert any(s.heading == "Task Decomposition" for s in doc.sections)


def test_markdown_plain_text_and_declared_charset(server):
    (md,) = load_local(f"{server}/notes.md")
    assert md.title == "Remote Notes" and [s.heading for s in md.sections] == [
        "Remote Notes",
        "Part",
    ]
    (txt,) = load_local(f"{server}/plain")
    assert txt.text == "café au lait" and txt.title == "plain"


def test_pdf_by_content_type_and_by_suffix(server):
    if not (shared_data() / "aragog").is_dir():
        pytest.skip("shared data absent")
    for path in ("/paper.pdf", "/download/paper.pdf"):
        (doc,) = load_local(server + path)
        assert [s.page for s in doc.sections] == [1, 2, 3, 4, 5]
        assert "DistilBERT" in doc.text


def test_redirects_followed_up_to_the_limit(server):
    loader = UrlLoader(max_redirects=3, allow_hosts=LOCAL)
    (doc,) = loader.load(f"{server}/hop/3")
    assert doc.source == f"{server}/hop/3" and doc.metadata["url"] == f"{server}/page.html"
    assert "too many redirects (more than 3)" in _reason(loader, f"{server}/hop/4")
    assert "too many redirects" in _reason(loader, f"{server}/loop")


def test_http_errors_and_dead_url(server):
    loader = UrlLoader(timeout=2, allow_hosts=LOCAL)
    assert _reason(loader, f"{server}/missing") == "HTTP 404 Not Found"
    assert _reason(loader, f"{server}/error").startswith("HTTP 500")
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "connection failed" in _reason(loader, f"http://127.0.0.1:{port}/x")
    assert "empty" in _reason(loader, f"{server}/empty.html")


def test_size_limit_and_content_type(server):
    loader = UrlLoader(max_bytes=10_000, allow_hosts=LOCAL)
    assert "too large (200,000 bytes; limit 10,000 bytes)" in _reason(loader, f"{server}/big.txt")
    assert "too large (over the limit 10,000 bytes)" in _reason(loader, f"{server}/huge-chunked")
    reason = _reason(loader, f"{server}/image.png")
    assert "unsupported content type 'image/png'" in reason and "text/html" in reason
    (doc,) = UrlLoader(max_bytes=300_000, allow_hosts=LOCAL).load(f"{server}/big.txt")
    assert len(doc.text) == 200_000


def test_timeouts(server):
    loader = UrlLoader(timeout=0.5, allow_hosts=LOCAL)
    t0 = time.monotonic()
    assert _reason(loader, f"{server}/slow") == "timed out after 0.5 s"
    assert _reason(loader, f"{server}/trickle") == "timed out after 0.5 s"
    assert time.monotonic() - t0 < 3.0


def test_ssrf_guard_refuses_non_public_addresses():
    for url, why in [
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]:8080/x", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.1/admin", "private"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://169.254.10.1/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://100.64.0.1/", "not a public"),
        ("file:///etc/passwd", "only http(s)"),
        ("gopher://example.org/", "only http(s)"),
    ]:
        with pytest.raises(BlockedURLError) as exc:
            check_public_url(url)
        assert why in exc.value.reason and exc.value.source == url, (url, exc.value.reason)
    check_public_url("http://93.184.215.14/")  # a public literal: no DNS needed
    check_public_url("http://127.0.0.1:8080/", allow=["127.0.0.1"])
    check_public_url("http://10.1.2.3/", allow=["10.0.0.0/8"])
    with pytest.raises(BlockedURLError):
        check_public_url("http://10.1.2.3/", allow=["192.168.0.0/16"])


def test_loader_refuses_loopback_by_default_and_on_every_redirect_hop(server):
    with pytest.raises(BlockedURLError) as exc:
        list(load(f"{server}/page.html"))
    assert "loopback" in exc.value.reason and "--allow-host 127.0.0.1" in exc.value.reason
    # allowed by host name "localhost", then redirected to the loopback IP: refused at the hop
    port = server.rsplit(":", 1)[1]
    with pytest.raises(BlockedURLError) as exc:
        list(load(f"http://localhost:{port}/to-loopback", allow_hosts=["localhost"]))
    assert exc.value.source == f"http://127.0.0.1:{port}/page.html"
    (doc,) = load(f"http://localhost:{port}/to-loopback", allow_hosts=["localhost", "127.0.0.1"])
    assert doc.metadata["url"] == f"http://127.0.0.1:{port}/page.html"
