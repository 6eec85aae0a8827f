#!/usr/bin/env bash
# Create .venv and install aspectrag with every extra the tests and the demo need (offline-
# friendly: PyPI only). torch is pinned to the local CPU build and installed first, so nothing
# pulls CUDA. A plain `pip install aspectrag` gets the base (embedded default) only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[all,dev,browser-test,langchain,llamaindex]"
