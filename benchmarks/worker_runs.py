"""What the side-by-side benchmarks (vs_fastai.py, segment.py) share: each tool runs in its own worker process,
which prints one `RESULT {json}` line; the driver samples the worker tree's memory (PSS) while it runs.

    res = run_worker([sys.executable, __file__, "--worker", ...], env, f"{run} seed {seed}")
    res["peak_pss_mb"], res["process_s"]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from pathlib import Path

__all__ = ["peak_rss_mb", "tree_pss_mb", "run_worker", "print_result", "lite0_weights_file"]

ARCH = "tf_efficientnet_lite0"


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_result(out: dict) -> None:
    """A worker's answer to the driver: one JSON line, with its thread count and main-process peak RSS added."""
    import torch

    out.update(threads=torch.get_num_threads(), peak_rss_main_mb=peak_rss_mb())
    print("RESULT " + json.dumps(out), flush=True)


def _pss_kb(pid: int) -> int:
    """Proportional set size of one process from /proc/<pid>/smaps_rollup (cheap: the kernel sums it)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_mb(proc) -> float:
    """PSS of a psutil process and all its children, in MB (0 once it is gone)."""
    import psutil

    try:
        pids = [proc.pid, *(c.pid for c in proc.children(recursive=True))]
    except psutil.NoSuchProcess:
        return 0.0
    return sum(_pss_kb(pid) for pid in pids) / 1024


def run_worker(cmd: list[str], env: dict, label: str) -> dict:
    """Run one worker to its end, sampling its tree's PSS every second; its RESULT line as a dict, plus
    `peak_pss_mb` and `process_s` (the worker's whole life). A failed worker ends the benchmark, naming `label`."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ps, peak = psutil.Process(proc.pid), 0.0
    while proc.poll() is None:
        peak = max(peak, tree_pss_mb(ps))
        time.sleep(1.0)
    out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{label} failed (exit {proc.returncode}):\n{err[-3000:]}")
    res = json.loads(lines[-1][len("RESULT "):])
    res.update(peak_pss_mb=peak, process_s=time.perf_counter() - t0)
    return res


def lite0_weights_file(folder: Path) -> str:
    """The lite0 package's ImageNet weights mapped onto timm's tf_efficientnet_lite0 layout, as a .safetensors file
    (what fastai's model loads), cached under `folder`."""
    os.environ["QUICKLEARN_CACHE"] = str(folder)
    from quicklearn.tasks.vision.weights import _bundled_file, import_weights

    return str(import_weights(_bundled_file(ARCH), ARCH))
