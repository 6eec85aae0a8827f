"""SSRF guard for the service's URL ingest: the shared guard of the URL loader
(:mod:`aspectrag.ingest.net`), applied when the request arrives so that a refused URL is a 400
answer at once rather than a failed job later (the loader checks every hop again when it
fetches)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from aspectrag.errors import AspectragError, BlockedURLError
from aspectrag.ingest.net import RedirectError, check_public_url, open_guarded

check_url = check_public_url  # the one guard: public http(s) URLs after DNS resolution

__all__ = ["BlockedURLError", "check_url", "resolve_redirects"]


def resolve_redirects(url: str, *, allow: Sequence[str] = (), max_redirects: int = 5,
                      timeout: float = 10.0) -> str:
    """Follow ``url``'s redirects, checking every hop before requesting it; the final URL.

    Only response headers are read (the body is the loader's job). ``timeout`` in seconds.

    Raises:
        BlockedURLError: a hop is not public; AspectragError: too many redirects, a loop, or
        the server cannot be reached.
    """
    with httpx.Client(follow_redirects=False, timeout=timeout) as client:
        try:
            resp, chain = open_guarded(client, url, allow=allow, max_redirects=max_redirects)
        except RedirectError as e:
            raise AspectragError(f"{url}: {e}") from None
        except httpx.HTTPError as e:
            raise AspectragError(f"{url}: cannot fetch ({type(e).__name__}: {e})") from None
        resp.close()
        return chain[-1]
