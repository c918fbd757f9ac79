# Shared by demo.sh and test.sh: create or reuse .venv and install quicklearn into it.
# Usage: source scripts/_venv.sh "<pip extras spec, e.g. .[test]>" [editable]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${QUICKLEARN_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.quicklearn-installed-$(cat "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1)-${2:-wheel}-$(echo "$1" | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "installing quicklearn and its dependencies into $VENV (first run: a few minutes)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
  if [ "${2:-}" = "editable" ]; then
    "$VENV/bin/python" -m pip install -q -e "$ROOT$1" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  else
    "$VENV/bin/python" -m pip install -q "$ROOT$1" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  fi
  "$VENV/bin/python" -c "import quicklearn, quicklearn_cli" || { echo "install failed" >&2; exit 1; }
  rm -f "$VENV"/.quicklearn-installed-* && touch "$stamp"
fi
