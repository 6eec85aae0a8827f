"""A test web site on 127.0.0.1 built from ../shared/data/lilianweng-posts, with crawler traps.

Layout (B = the server's base URL; absolute links to lilianweng.github.io are rewritten to B):
    /                       home: noindex,follow; links every post under 5 spellings (plain,
                            tracking parameters, no trailing slash, index.html, session id)
                            and every trap below
    /posts/<slug>/          the 52 posts (ETag + Last-Modified; conditional GET -> 304); also
                            served at /posts/<slug> and /posts/<slug>/index.html
    /posts/page/<n>/        the 6 archive pages (3.html .. 8.html)
    /print/<slug>/          a near-duplicate "print" version of 5 posts (one line added, no
                            canonical link)
    /old/agent -> /moved/1 -> /moved/2 -> /posts/2023-06-23-agent/   a redirect chain
    /loop/a -> /loop/b -> /loop/a                                   a redirect loop
    /private/...            disallowed by robots.txt
    /calendar/<y>/<m>/      an endless calendar (each month links the next)
    /slow/                  never answers within the crawler's timeout
    /sitemap.xml            lists three posts
Every request is logged (``Site.log``: paths with query) so a test can check what was fetched.
"""

from __future__ import annotations

import hashlib
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

PRINT_SLUGS = ["2023-06-23-agent", "2018-06-24-attention", "2021-07-11-diffusion-models",
               "2017-08-20-gan", "2024-07-07-hallucination"]
AGENT = "2023-06-23-agent"
_MTIME = formatdate(1_700_000_000, usegmt=True)


class Site:
    """Serves the site in a thread; ``with Site(folder) as site: site.base``."""

    def __init__(self, folder: Path, *, slugs: list[str] | None = None,
                 robots_extra: str = "") -> None:
        self.folder = folder
        files = sorted(p for p in folder.glob("*.html"))
        self.posts = {p.stem: p for p in files if p.stem[:4].isdigit() and "-" in p.stem}
        if slugs is not None:
            self.posts = {s: self.posts[s] for s in slugs}
        self.archives = {int(p.stem): p for p in files if p.stem.isdigit()}
        if slugs is not None:
            self.archives = {}
        self.robots_extra = robots_extra
        self.log: list[str] = []
        self.times: list[float] = []  # time.monotonic() of each request in ``log``
        self.changed: dict[str, bytes] = {}  # slug -> replacement body (tests edit posts)
        self._lock = threading.Lock()

    # -- content --------------------------------------------------------------------------
    def post_body(self, slug: str) -> bytes:
        if slug in self.changed:
            return self.changed[slug]
        return self.posts[slug].read_bytes().replace(b"https://lilianweng.github.io",
                                                     self.base.encode())

    def print_body(self, slug: str) -> bytes:
        import re

        body = self.post_body(slug)
        body = re.sub(rb'<link rel="canonical"[^>]*>', b"", body)
        return body.replace(b'<div class="post-content">',
                            b'<div class="post-content"><p>Printer-friendly version of this '
                            b'article, generated for offline reading.</p>', 1)

    def home(self) -> bytes:
        links = []
        for slug in self.posts:
            p = f"/posts/{slug}"
            links += [f"{p}/", f"{p}/?utm_source=newsletter&utm_medium=email", p,
                      f"{p}/index.html", f"{p}/?fbclid=IwAR0xyz&sessionid=8c1f"]
        links += [f"/print/{s}/" for s in PRINT_SLUGS if s in self.posts]
        links += [f"/posts/page/{n}/" for n in self.archives]
        links += ["/old/agent", "/loop/a", "/private/secret-plans/", "/calendar/2024/01/",
                  "/missing-page/", "/gone.html", "/slow/", "mailto:someone@example.org",
                  "javascript:void(0)", "ftp://example.org/file"]
        items = "".join(f'<li><a href="{u}">{u}</a></li>' for u in links)
        return (f"<html><head><title>Home</title><meta name='robots' content='noindex, follow'>"
                f"</head><body><h1>All posts</h1><ul>{items}</ul></body></html>").encode()

    @staticmethod
    def calendar(year: int, month: int) -> bytes:
        ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
        return (f"<html><head><title>Calendar {year}-{month:02d}</title></head><body>"
                f"<h1>Events {year}-{month:02d}</h1><p>No events this month.</p>"
                f"<a href='/calendar/{ny}/{nm:02d}/'>next month</a></body></html>").encode()

    # -- serving --------------------------------------------------------------------------
    def __enter__(self) -> Site:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                with site._lock:
                    site.log.append(self.path)
                    site.times.append(time.monotonic())
                site.route(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        redirects = {"/old/agent": "/moved/1", "/moved/1": "/moved/2",
                     "/moved/2": f"/posts/{AGENT}/", "/loop/a": "/loop/b", "/loop/b": "/loop/a"}
        if path in redirects:
            return _send(h, 301, b"", location=redirects[path])
        if path == "/robots.txt":
            text = (f"User-agent: *\nDisallow: /private/\n{self.robots_extra}"
                    f"Sitemap: {self.base}/sitemap.xml\n")
            return _send(h, 200, text.encode(), "text/plain")
        if path == "/sitemap.xml":
            locs = "".join(f"<url><loc>{self.base}/posts/{s}/</loc></url>"
                           for s in list(self.posts)[:3])
            return _send(h, 200, (f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/'
                                  f'schemas/sitemap/0.9">{locs}</urlset>').encode(), "text/xml")
        if path == "/":
            return _send(h, 200, self.home())
        if path == "/slow/":
            time.sleep(6)
            return _send(h, 200, b"<html><body><p>too late</p></body></html>")
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["calendar"] and len(parts) >= 3 and parts[1].isdigit() \
                and parts[2].isdigit():
            return _send(h, 200, self.calendar(int(parts[1]), int(parts[2])))
        if parts[:2] == ["posts", "page"] and len(parts) == 3 and parts[2].isdigit() \
                and int(parts[2]) in self.archives:
            body = self.archives[int(parts[2])].read_bytes()
            return _send(h, 200, body.replace(b"https://lilianweng.github.io", self.base.encode()))
        if parts[:1] == ["print"] and len(parts) == 2 and parts[1] in PRINT_SLUGS \
                and parts[1] in self.posts:
            return _send(h, 200, self.print_body(parts[1]))
        if parts[:1] == ["posts"] and len(parts) in (2, 3) and parts[1] in self.posts \
                and parts[2:] in ([], ["index.html"]):
            body = self.post_body(parts[1])
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if h.headers.get("If-None-Match") == etag:
                return _send(h, 304, b"", etag=etag)
            return _send(h, 200, body, etag=etag, last_modified=_MTIME)
        return _send(h, 404, b"<html><body><h1>Not found</h1></body></html>")


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "text/html",
          *, location: str | None = None, etag: str | None = None,
          last_modified: str | None = None) -> None:
    try:
        h.send_response(status)
        if location:
            h.send_header("Location", location)
        if etag:
            h.send_header("ETag", etag)
        if last_modified:
            h.send_header("Last-Modified", last_modified)
        if status != 304:
            h.send_header("Content-Type", f"{ctype}; charset=utf-8")
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if status != 304:
            h.wfile.write(body)
    except OSError:
        pass
