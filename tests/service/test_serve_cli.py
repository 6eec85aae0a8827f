"""``aspectrag serve`` wiring: the app factory uvicorn workers rebuild in their own process."""

from __future__ import annotations

import functools
import pickle

from fastapi.testclient import TestClient

from aspectrag.cli.serve import build_app, is_loopback


def test_factory_is_picklable_and_builds_the_app(tmp_path):
    params = {"index": str(tmp_path / "idx"), "api_keys": None, "cors_origins": (),
              "max_upload_bytes": 1000, "request_timeout": 5.0, "url_allow": ()}
    factory = pickle.loads(pickle.dumps(functools.partial(build_app, params)))
    with TestClient(factory()) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/v1/stats").json()["documents"] == 0
    assert params["index"] == str(tmp_path / "idx")  # not consumed: every worker builds its own


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("example.org")
