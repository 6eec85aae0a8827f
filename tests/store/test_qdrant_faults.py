"""Crash safety of the Qdrant store (issue 13, item 2): a write that fails or dies at any
point leaves every document at its old version, and a committed one at its new version --
never both, never a mix (local mode in memory; the failure is injected into the client)."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install "
                    "'aspectrag[qdrant]')")

from aspectrag.store.factory import build_store  # noqa: E402
from aspectrag.store.qdrant_write import QdrantWriter  # noqa: E402
from aspectrag.store.testing import SPACES, make_doc, vectors_for  # noqa: E402

OLD = {"/a.txt": ["alpha old one", "alpha old two"], "/b.txt": ["beta old one", "beta old two"],
       "/c.txt": ["gamma old"]}
NEW = {"/a.txt": ["alpha new one", "alpha new two", "alpha new three"],
       "/b.txt": ["beta new one"], "/d.txt": ["delta new"]}  # /c.txt is deleted


class Boom(RuntimeError):
    pass


def _store():  # type: ignore[no-untyped-def]
    st = build_store(f"qdrant+local://:memory:/f{uuid.uuid4().hex[:12]}")
    with st.writer() as w:
        w.declare_spaces(SPACES)
        for i, (src, texts) in enumerate(OLD.items()):
            d, c = make_doc(src, texts, fp="old")
            w.upsert(d, c, vectors_for(len(c), i))
        w.set_meta("version", "old")
    st.batch_points = 1  # one point per request: a failure can fall between any two
    return st


def _write_new(st) -> None:  # type: ignore[no-untyped-def]
    with st.writer() as w:
        w.declare_spaces(SPACES)
        w.delete("/c.txt")
        for i, (src, texts) in enumerate(NEW.items()):
            d, c = make_doc(src, texts, fp="new")
            w.upsert(d, c, vectors_for(len(c), 10 + i))
        w.set_meta("version", "new")


def _view(st) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    out: dict[str, list[str]] = {}
    for ch in st.iter_chunks():
        out.setdefault(ch.source, []).append(ch.text)
    return out


def _assert_state(st, want: dict[str, list[str]], version: str) -> None:  # type: ignore[no-untyped-def]
    assert _view(st) == want
    assert sorted(st.sources()) == sorted(want) and st.get_meta("version") == version
    assert st.stats() == {"documents": len(want), "chunks": sum(map(len, want.values()))}
    for src in want:
        assert st.fingerprint(src) == version
    # searches see the same state: no hit of the other version, every chunk of this one
    other = "new" if version == "old" else "old"
    assert st.keyword_search([other], 20) == [[]]
    hits = st.keyword_search([version], 20)[0]
    assert {h.chunk_id.rsplit("#", 1)[0] for h in hits} == set(want)
    vec = st.vector_search("dense", vectors_for(1, 0)["dense"], 20)[0]
    assert len(vec) == sum(map(len, want.values()))


def _calls_of_a_write() -> int:
    st = _store()
    n = 0
    for name in ("upsert", "set_payload", "update_vectors", "delete"):
        real = getattr(st.client, name)

        def counted(*a, _real=real, **kw):  # type: ignore[no-untyped-def]
            nonlocal n
            n += 1
            return _real(*a, **kw)
        setattr(st.client, name, counted)
    _write_new(st)
    return n


def _failing_after(st, calls: int, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Make the ``calls+1``-th write request of ``st``'s client raise."""
    seen = 0
    for name in ("upsert", "set_payload", "update_vectors", "delete"):
        real = getattr(st.client, name)

        def failing(*a, _real=real, **kw):  # type: ignore[no-untyped-def]
            nonlocal seen
            seen += 1
            if seen > calls:
                raise Boom(f"injected failure at write request {seen}")
            return _real(*a, **kw)
        monkeypatch.setattr(st.client, name, failing, raising=False)


@pytest.mark.parametrize("die", [False, True], ids=["exception", "process-death"])
def test_failure_at_every_write_request(die: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    total = _calls_of_a_write()
    assert total > 10  # chunks, documents, deletion marks, the state point
    if die:  # a killed process runs no rollback: its marks stay until the next writer
        monkeypatch.setattr(QdrantWriter, "rollback", lambda self: None)
    for fail_at in range(total):
        st = _store()
        with monkeypatch.context() as m:
            _failing_after(st, fail_at, m)
            with pytest.raises(Boom):
                _write_new(st)
        _assert_state(st, OLD, "old")
        _write_new(st)  # the next writer collects the leftovers and commits
        _assert_state(st, NEW, "new")
    ok = _store()
    _write_new(ok)
    _assert_state(ok, NEW, "new")


def test_leftovers_are_collected_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QdrantWriter, "rollback", lambda self: None)
    st = _store()
    with monkeypatch.context() as m:
        _failing_after(st, 6, m)
        with pytest.raises(Boom):
            _write_new(st)
    rep = st.check()
    assert rep.ok and any("unfinished or superseded" in n for n in rep.notes)
    lines = st.repair()
    assert lines and "unfinished" in lines[0]
    assert not any("unfinished or superseded" in n for n in st.check().notes)
    _assert_state(st, OLD, "old")
