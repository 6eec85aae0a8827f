"""aspectrag.progress: the one progress-bar helper (rich, stderr)."""

from __future__ import annotations

import pytest

from aspectrag.progress import progress_bar, track


def test_bar_counts_and_shows_postfix_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress_bar(4, "training", "step")
    for _ in range(4):
        bar.update(1)
    bar.set_postfix(loss="0.1234")
    bar.close()
    out, err = capsys.readouterr()
    assert out == ""
    assert "training" in err and "4/4" in err and "loss=0.1234" in err and "step/s" in err


def test_track_yields_every_item(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(track(range(3), "retrieving", "batch")) == [0, 1, 2]
    assert "3/3" in capsys.readouterr().err
