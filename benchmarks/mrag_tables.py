"""Markdown tables (every metric, 95% CIs vs the baseline) from ``aspectrag eval mrag
--details`` files.

    python benchmarks/mrag_tables.py benchmarks/results/mrag/*_details.json > tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aspectrag.evaluate.mrag_report import markdown

TITLES = {
    "weighted_avg": "weighted score (2·RSR + category RSR)/3, mean over k = a..a+10",
    "weighted": "weighted score at k = a",
    "rsr": "retrieval success ratio at k = a",
    "crsr": "category retrieval success ratio at k = a",
    "success": "success (all aspects found) at k = a",
}


def main() -> None:
    for path in sys.argv[1:]:
        det = json.loads(Path(path).read_text())
        print(f"# MRAG {det['dataset']} v1: {det['queries']} queries, baseline {det['baseline']}")
        if det["missing_units"]:
            print(
                f"\n{len(det['missing_units'])} relevance units named by queries are absent "
                "from the archive (dropped from the relevant sets)."
            )
        print(
            "\nCells: value (difference to the baseline [95% paired bootstrap CI], * = CI "
            "excludes 0); columns: aspect count.\n"
        )
        for metric, title in TITLES.items():
            print(f"## {title}\n\n{markdown(det, metric)}\n")
        print("## search time per query (ms, query encoding excluded)\n")
        print(" | ".join(f"{n} {e['ms_per_query']:.1f}" for n, e in det["strategies"].items()))
        print()


if __name__ == "__main__":
    main()
