#!/usr/bin/env bash
# Set up, ingest the bundled sample corpus and ask a multi-aspect question with citations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ASPECTRAG_INDEX=${ASPECTRAG_INDEX:-.aspectrag-demo}
.venv/bin/aspectrag ingest samples/wikipedia-aspects/corpus.jsonl
.venv/bin/aspectrag search "ziggurats and courtyard houses in Mesopotamia" -k 5
.venv/bin/aspectrag ask "How did the Romans win the Battle of the Isère River, and which Gallic tribes did they fight?"
