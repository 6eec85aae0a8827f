"""The web page in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
upload a file, watch the progress finish, ask, see the streamed answer and a citation, open the
cited passage from the keyboard; with ``UPDATE_SCREENSHOT=1`` it also saves the screenshot as
docs/service.png (a test run never changes the checkout otherwise)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from aspectrag.index import Index
from aspectrag.service import create_app

from .conftest import write_docs

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

VOLCANOES = """# Volcanoes

Volcanoes are openings in the crust of a planet.

## Eruptions

Shield volcanoes such as Mauna Loa erupt runny basalt lava that flows for many kilometres.
Explosive volcanoes throw out ash and pumice instead.
"""


@pytest.fixture
def chromium_page(tmp_path):  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the Python package playwright is not installed")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=FLAGS,
            headless=True, viewport={"width": 1000, "height": 760})
        try:
            yield ctx.pages[0] if ctx.pages else ctx.new_page()
        finally:
            ctx.close()


def test_upload_ask_and_open_citation(tmp_path, embedder, serve, chromium_page):
    idx = Index(tmp_path / "idx", embedder=embedder)
    idx.ingest([str(write_docs(tmp_path / "docs"))])
    srv = serve(create_app(idx))
    upload = tmp_path / "volcanoes.md"
    upload.write_text(VOLCANOES)
    page = chromium_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(srv.url + "/")
    page.wait_for_function("document.getElementById('stats').textContent.includes('3 documents')")

    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'file' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.id)""")
    assert unlabelled == []

    page.set_input_files("#file", str(upload))
    page.wait_for_function("document.getElementById('job').textContent.startsWith('done')",
                           timeout=60_000)
    assert page.eval_on_selector("#progress", "e => e.value") == 100
    assert "1 added" in page.inner_text("#job")
    page.wait_for_function("document.getElementById('stats').textContent.includes('4 documents')")
    assert page.locator("#source option", has_text="volcanoes.md").count() == 1

    page.evaluate("""(text) => {  // drag and drop onto the drop zone
        const dt = new DataTransfer();
        dt.items.add(new File([text], "geysers.md", {type: "text/markdown"}));
        document.getElementById("drop").dispatchEvent(
            new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", "# Geysers\n\nGeysers spout hot water heated by magma below.\n")
    page.wait_for_function("document.getElementById('stats').textContent.includes('5 documents')",
                           timeout=60_000)
    assert page.inner_text("#job").startswith("done")

    page.fill("#question", "What lava do shield volcanoes erupt?")
    page.select_option("#retriever", "multiquery")
    page.click("#ask-btn")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')",
                           timeout=60_000)
    assert "basalt" in page.inner_text("#answer")
    cite = page.locator("#answer button.cite").first
    assert cite.count() == 1
    assert page.locator("#queries li").count() >= 2
    assert "found by" in page.inner_text("#hits")

    cite.focus()
    page.keyboard.press("Enter")  # keyboard-usable: the citation is a button
    page.wait_for_selector("#passage:not([hidden])")
    assert "basalt" in page.inner_text("#passage-text")
    assert "volcanoes.md" in page.inner_text("#passage-meta")
    assert "§ Eruptions" in page.inner_text("#passage-meta")
    shot = tmp_path / "service.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shot), full_page=False)
    page.click("#passage-link")
    page.wait_for_selector("#passage-doc:not([hidden])")
    assert "basalt" in page.inner_text("#passage-doc mark")
    assert errors == []
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "service.png")
