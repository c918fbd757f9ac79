#!/usr/bin/env bash
# The whole test suite, in a virtual environment it creates or reuses. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" "[test,text,onnx,tensorboard,baseline,segment,serve,check]" editable
cd "$ROOT"
exec "$VENV/bin/python" -m pytest -q --durations=15 "$@"
