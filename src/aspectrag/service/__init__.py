"""The HTTP service: ``create_app(index, ...)`` (FastAPI) and ``aspectrag serve``.

Needs the ``service`` extra (``pip install aspectrag[service]``: FastAPI, uvicorn,
python-multipart).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`aspectrag.service.app.create_app`."""
    from aspectrag.service.app import create_app as _create

    return _create(*args, **kwargs)
