"""The JSON API end to end through FastAPI's test client: search, ask (JSON and SSE), documents,
jobs, stats, health, problem+json errors."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from aspectrag.service import create_app

from .conftest import wait_job

HIT_FIELDS = {"rank", "score", "chunk_id", "doc_id", "source", "title", "location", "page",
              "heading", "start", "end", "text", "provenance", "link"}


def parse_sse(text: str) -> list[tuple[str, object]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_search_hits_carry_fields_and_provenance(hash_client):
    r = hash_client.post("/v1/search", json={"query": "Roman consuls", "k": 2, "retriever": "bm25"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [h["rank"] for h in body["hits"]] == [1, 2]
    assert set(body["hits"][0]) == HIT_FIELDS
    assert body["hits"][0]["source"].endswith("rome.md")
    assert body["hits"][0]["heading"] == "Roman Republic"
    assert body["queries"] == []

    r = hash_client.post("/v1/search", json={"query": "Who governed Rome and where did legions "
                                             "fight?", "k": 3, "retriever": "multiquery",
                                             "base": "bm25"})
    body = r.json()
    assert r.status_code == 200, body
    assert len(body["queries"]) >= 2 and body["queries"][0]["kind"] == "original"
    assert {"query", "weight", "kind"} <= set(body["queries"][0])
    found = body["hits"][0]["provenance"]["queries"]
    assert found and {"query", "rank"} <= set(found[0])
    assert all(q["query"] in {x["query"] for x in body["queries"]} for q in found)


def test_source_filter(hash_client):
    src = next(s["source"] for s in hash_client.get("/v1/documents").json()["items"]
               if s["source"].endswith("chem.txt"))
    r = hash_client.post("/v1/search", json={"query": "Roman consuls", "k": 5, "retriever": "bm25",
                                             "sources": [src]})
    assert r.status_code == 200, r.text
    assert {h["source"] for h in r.json()["hits"]} <= {src}


def test_ask_json_and_stream_with_citations(minilm_index):
    with TestClient(create_app(minilm_index), raise_server_exceptions=False) as c:
        r = c.post("/v1/ask", json={"question": "What do enzymes do?", "k": 3})
        assert r.status_code == 200, r.text
        ans = r.json()
        assert ans["mode"] == "extractive" and "[1]" in ans["answer"] or "[2]" in ans["answer"]
        cited = ans["citations"][0]
        assert cited["source"].endswith("chem.txt") and "Enzymes" in cited["text"]
        assert len(ans["hits"]) == 3

        r = c.post("/v1/ask", json={"question": "What do enzymes do?", "k": 3, "stream": True})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.text)
        names = [e for e, _ in events]
        assert names[:2] == ["queries", "hits"] and names[-2:] == ["citations", "done"]
        assert "token" in names
        tokens = "".join(d for e, d in events if e == "token")  # type: ignore[misc]
        done = events[-1][1]
        assert tokens == done["answer"]  # type: ignore[index]
        assert events[-2][1][0]["source"].endswith("chem.txt")  # type: ignore[index]


def test_problem_json_errors_never_show_a_traceback(hash_client):
    cases = [
        (hash_client.post("/v1/search", json={"query": "x", "k": 0}), 422, "k"),
        (hash_client.post("/v1/search", json={"query": "x", "retriever": "nope"}), 400, "nope"),
        (hash_client.post("/v1/search", json={"query": "x", "options": {"queries_from": "/etc/x"}}),
         400, "not allowed"),
        (hash_client.post("/v1/search", content=b"{", headers={"content-type": "application/json"}),
         422, ""),
        (hash_client.get("/v1/nothing"), 404, "/docs"),
        (hash_client.get("/v1/jobs/abc"), 404, "abc"),
        (hash_client.post("/v1/ask", json={"question": "  "}), 422, "question"),
        (hash_client.post("/v1/ask", json={"question": "x", "llm": "hf:/models/x"}), 400,
         "not enabled"),
    ]
    for r, status, text in cases:
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        p = r.json()
        assert p["status"] == status and p["title"] and text in p["detail"]
        assert "Traceback" not in r.text and 'File "' not in r.text


def test_internal_error_is_a_problem_without_trace(hash_index, monkeypatch):
    app = create_app(hash_index)
    with TestClient(app, raise_server_exceptions=False) as c:
        def boom(*a, **k):  # type: ignore[no-untyped-def]
            raise RuntimeError("secret internal detail /srv/x.py")

        monkeypatch.setattr(app.state.service.engine, "search", boom)
        r = c.post("/v1/search", json={"query": "x"})
        assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
        assert "secret" not in r.text and "server log" in r.json()["detail"]


def test_upload_text_and_files_then_visible_to_readers(hash_client):
    before = hash_client.get("/v1/stats").json()
    r = hash_client.post("/v1/documents", json={"text": "Volcanoes erupt molten basalt lava.",
                                                "title": "Volcanoes", "source": "volcano notes"})
    assert r.status_code == 202 and r.headers["location"] == f"/v1/jobs/{r.json()['job']}"
    job = wait_job(hash_client, r.json()["job"])
    t_done = time.monotonic()
    assert job["status"] == "succeeded", job
    assert job["result"]["added"] == 1 and job["progress"]["chunks_done"] == job["result"]["chunks"]
    hits = hash_client.post("/v1/search", json={"query": "basalt lava", "k": 1,
                                                "retriever": "bm25"}).json()["hits"]
    assert time.monotonic() - t_done < 1.0
    assert hits[0]["title"] == "Volcanoes"

    files = [("files", ("glaciers.md", b"# Glaciers\n\nGlaciers carve fjords.", "text/markdown")),
             ("files", ("tides.txt", b"The Moon drives the ocean tides.", "text/plain"))]
    r = hash_client.post("/v1/documents", files=files)
    assert r.status_code == 202, r.text
    job = wait_job(hash_client, r.json()["job"])
    assert job["status"] == "succeeded" and job["result"]["added"] == 2, job
    after = hash_client.get("/v1/stats").json()
    assert after["documents"] == before["documents"] + 3
    assert after["jobs"]["succeeded"] == 2
    hit = hash_client.post("/v1/search", json={"query": "ocean tides Moon", "k": 1,
                                               "retriever": "bm25"}).json()["hits"][0]
    assert hit["source"].endswith("tides.txt")
    doc = hash_client.get("/v1/documents/text", params={"source": hit["source"]}).json()
    assert doc["text"][hit["start"]:hit["end"]] == hit["text"]


def test_failed_upload_reports_reasons(hash_client):
    r = hash_client.post("/v1/documents", files={"files": ("bad.txt", b"\x00\xff\x00\xfe" * 64)})
    job = wait_job(hash_client, r.json()["job"])
    assert job["status"] == "failed" and "bad.txt" in job["error"]


def test_upload_limits(hash_index):
    with TestClient(create_app(hash_index, max_upload_bytes=2000),
                    raise_server_exceptions=False) as c:
        r = c.post("/v1/documents", files={"files": ("run.exe", b"MZ")})
        assert r.status_code == 415 and ".pdf" in r.json()["detail"]
        r = c.post("/v1/documents", files={"files": ("big.txt", b"word " * 1000)})
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"

        def chunked():  # no Content-Length: counted while received
            yield b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n\r\n"
            for _ in range(10):
                yield b"x" * 500
            yield b"\r\n--b--\r\n"

        r = c.post("/v1/documents", content=chunked(),
                   headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413
        r = c.post("/v1/documents", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415


def test_documents_pagination_and_delete(hash_client):
    page = hash_client.get("/v1/documents", params={"offset": 1, "limit": 1}).json()
    assert page["total"] == 3 and page["offset"] == 1 and len(page["items"]) == 1
    src = page["items"][0]["source"]
    r = hash_client.delete("/v1/documents", params={"source": src})
    assert r.status_code == 200 and r.json()["removed"] == 1, r.text
    assert hash_client.get("/v1/documents").json()["total"] == 2
    r = hash_client.delete("/v1/documents", params={"source": src})
    assert r.status_code == 404


def test_health_ready_stats_openapi(hash_client):
    assert hash_client.get("/healthz").json() == {"status": "ok"}
    end = time.monotonic() + 20
    while hash_client.get("/readyz").status_code != 200 and time.monotonic() < end:
        time.sleep(0.05)
    assert hash_client.get("/readyz").json() == {"status": "ready"}
    s = hash_client.get("/v1/stats").json()
    assert s["documents"] == 3 and s["chunks"] >= 3 and "hybrid" in s["retrievers"]
    spec = hash_client.get("/openapi.json").json()
    for path in ("/v1/search", "/v1/ask", "/v1/documents", "/v1/jobs/{job_id}", "/v1/stats",
                 "/v1/chat/completions", "/v1/models", "/healthz", "/readyz"):
        assert path in spec["paths"], path
    page = hash_client.get("/")
    assert page.status_code == 200 and "<label for=\"question\">" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("https://example.org", "")


def test_sse_stream_ends_with_error_after_time_limit():
    import time as _time

    from aspectrag.service.routes import sse

    def slow():
        yield "queries", []
        _time.sleep(0.05)
        yield "token", "a"
        yield "token", "b"
        yield "done", {}

    out = list(sse(slow(), time_limit=0.01))
    assert out[0].startswith("event: queries")
    assert out[-1].startswith("event: error") and "503" in out[-1]
    assert not any(o.startswith("event: done") for o in out)
