"""The ``aspectrag`` command line end to end, with the bundled MiniLM on small inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aspectrag.cli.main import app

runner = CliRunner()


def _docs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "rome.md").write_text(
        "# Roman Republic\n\nThe Roman Republic was governed by two consuls elected every year.\n\n"
        "## Army\n\nThe legions were the backbone of the Roman army and fought in Gaul.\n")
    (folder / "chem.txt").write_text(
        "Catalysts speed up chemical reactions without being consumed. Enzymes are biological catalysts.\n")
    (folder / "bad.txt").write_bytes(b"\x00\xff\x00\xfe" * 64)
    return folder


def test_ingest_search_ask_json(tmp_path):
    docs = _docs(tmp_path / "docs")
    index = str(tmp_path / "idx")
    res = runner.invoke(app, ["ingest", str(docs), "--index", index])
    assert res.exit_code == 1, res.output  # one file failed
    assert "bad.txt" in res.output and "2 added" in res.output
    res = runner.invoke(app, ["search", "who governed Rome", "--index", index, "-k", "2", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert [h["rank"] for h in hits] == [1, 2]
    assert set(hits[0]) == {"rank", "score", "chunk_id", "doc_id", "source", "text"}
    assert hits[0]["source"].endswith("rome.md")
    # an option the retriever does not have is an error naming the ones it has
    res = runner.invoke(app, ["search", "who governed Rome", "--index", index, "-r", "multihead",
                              "--weight", "0.3"])
    assert res.exit_code == 2 and "has no option 'weight'" in res.output
    assert "votes, centre, dense_weight, bm25_weight, depth" in res.output
    res = runner.invoke(app, ["ask", "What do enzymes do?", "--index", index, "--json"])
    assert res.exit_code == 0, res.output
    ans = json.loads(res.stdout)
    assert ans["mode"] == "extractive" and ans["citations"]
    assert set(ans["citations"][0]) >= {"n", "source", "chunk_id", "location", "text"}
    assert any(c["source"].endswith("chem.txt") for c in ans["citations"])
    # the unchanged re-ingest is a no-op and exits 0 once the bad file is gone
    (docs / "bad.txt").unlink()
    res = runner.invoke(app, ["ingest", str(docs), "--index", index])
    assert res.exit_code == 0 and "2 unchanged" in res.output
    res = runner.invoke(app, ["remove", str(docs / "chem.txt"), "--index", index])
    assert res.exit_code == 0
    res = runner.invoke(app, ["remove", str(docs / "chem.txt"), "--index", index])
    assert res.exit_code == 1 and "not in the index" in res.output
    assert len(res.output.strip().splitlines()) == 1  # one error line, the paths unbroken


def test_eval_beir_json_on_a_scifact_subset(tmp_path, data_dir):
    src = data_dir / "scifact"
    qrels = (src / "qrels" / "test.tsv").read_text().splitlines()[1:21]
    wanted = {line.split("\t")[1] for line in qrels}
    qids = {line.split("\t")[0] for line in qrels}
    sub = tmp_path / "scifact-mini"
    (sub / "qrels").mkdir(parents=True)
    lines = (src / "corpus.jsonl").read_text().splitlines()
    keep = [ln for ln in lines if json.loads(ln)["_id"] in wanted] + lines[:60]
    (sub / "corpus.jsonl").write_text("\n".join(keep) + "\n")
    (sub / "queries.jsonl").write_text("\n".join(
        ln for ln in (src / "queries.jsonl").read_text().splitlines()
        if json.loads(ln)["_id"] in qids) + "\n")
    (sub / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n")
    res = runner.invoke(app, ["eval", "beir", str(sub), "--index", str(tmp_path / "idx"),
                              "--retriever", "bm25", "--json", "--per-query", str(tmp_path / "pq.json")])
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)
    assert set(scores) == {"ndcg@10", "recall@100", "mrr@10"}
    per_q = json.loads((tmp_path / "pq.json").read_text())
    assert set(per_q) == set(qids)
    assert sum(per_q.values()) / len(per_q) == pytest.approx(scores["ndcg@10"])
    # a small corpus that contains every relevant document: BM25 must find most of them
    assert scores["recall@100"] > 0.9 and scores["ndcg@10"] > 0.5


def test_eval_beir_skips_and_reports_empty_documents(tmp_path):
    folder = tmp_path / "tiny-beir"
    (folder / "qrels").mkdir(parents=True)
    rows = [{"_id": "d1", "title": "Consuls", "text": "Two consuls governed the Roman Republic."},
            {"_id": "d2", "title": "", "text": ""},
            {"_id": "d3", "title": "Catalysts", "text": "Enzymes are biological catalysts."},
            {"_id": "d4"},
            {"_id": "d5", "title": "Only a title", "text": "  "}]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "who governed the Roman Republic"}) + "\n"
        + json.dumps({"_id": "q2", "text": "what are enzymes"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    index = str(tmp_path / "idx")
    for _ in range(2):  # first build, then the cached index: both report the empty documents
        res = runner.invoke(app, ["eval", "beir", str(folder), "--index", index,
                                  "--retriever", "bm25", "--json"])
        assert res.exit_code == 0, res.output
        assert "2 empty document(s) (neither title nor text) skipped: d2, d4" in res.stderr
        scores = json.loads(res.stdout)
        assert scores["empty_documents"] == {"count": 2, "ids": ["d2", "d4"]}
        assert scores["ndcg@10"] == pytest.approx(1.0)
    # a plain ingest skips them too (listed as skipped), and it is not a failed ingest
    res = runner.invoke(app, ["ingest", str(folder / "corpus.jsonl"), "--index",
                              str(tmp_path / "idx2")])
    assert res.exit_code == 0, res.output
    assert "3 added" in res.output and res.output.count("empty document") == 2
