#!/usr/bin/env bash
# Set up and run the whole test suite (offline; real data from ../shared/data when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m pytest -q "$@"
