#!/usr/bin/env bash
# One command that makes the benchmarks' own environment: quicklearn (editable) plus the tools it is compared with
# (fastai 2.8.12, scikit-learn) and psutil for peak-memory readings. None of these is a quicklearn dependency.
#
#   bash benchmarks/make_env.sh        # -> benchmarks/.venv
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv benchmarks/.venv
benchmarks/.venv/bin/pip install -q --upgrade pip
benchmarks/.venv/bin/pip install -q -e '.[test]' 'fastai==2.8.12' psutil
benchmarks/.venv/bin/python -c "import fastai, quicklearn, psutil; print('benchmark env ready: fastai', fastai.__version__)"
