"""Data-parallel scaling on this machine: `quicklearn train` with 1 process vs N processes (torchrun, gloo on the
CPU or NCCL on GPUs), the same data, model, seed and GLOBAL batch size, alternating over `--repeats`.

    python benchmarks/distributed.py [--data ../shared/data/mnist-tiny] [--procs 2] [--device cpu] [--repeats 2]

Each run is the real CLI in a fresh process group; the script reads the epochs' `time_s` from the run's
history.json (training + validation of each epoch, without start-up) and prints images/s, the ratio to 1 process
and whether the validation metrics agree. On CPU every process gets cores/N threads (OMP_NUM_THREADS), so both
sides use every core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quicklearn.core.launch import torchrun_command


def run(n: int, data: Path, args: argparse.Namespace, out: Path) -> dict:
    """One `quicklearn train` with `n` processes; its epochs' times, metrics and wall time."""
    argv = ["--data", str(data), "--weights", "none", "--arch", args.arch, "--size", str(args.size), "--bs", str(args.bs),
            "--epochs", str(args.epochs), "--freeze-epochs", "0", "--device", args.device, "--out", str(out), "--overwrite"]
    threads = max(1, (os.cpu_count() or 1) // n) if args.device == "cpu" else 1
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    exe = str(Path(sys.executable).parent / "quicklearn")
    cmd = torchrun_command(n, argv, program=["--no-python", exe]) if n > 1 else [exe, "train", *argv]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    history = json.loads((out / "history.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())["valid"]
    return {"epoch_s": [h["time_s"] for h in history], "metrics": metrics, "wall": wall}


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=here.parent / "shared" / "data" / "mnist-tiny")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--bs", type=int, default=32, help="the global batch size, split across the processes")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    n_train = sum(1 for f in (args.data / "train").rglob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
    print(f"data-parallel scaling: {args.data} ({n_train} training images), {args.arch}, {args.size}px, global bs {args.bs}, "
          f"{args.epochs} epochs, device {args.device}, {os.cpu_count()} CPUs; 1 vs {args.procs} processes", flush=True)
    results: dict[int, list[dict]] = {1: [], args.procs: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for n in (1, args.procs):  # alternate so machine noise hits both alike
                res = run(n, args.data, args, Path(tmp) / f"run-{n}-{r}")
                results[n].append(res)
                print(f"  repeat {r}  {n} process(es): epochs {res['epoch_s']} s, wall {res['wall']:.1f} s, "
                      f"valid {json.dumps({k: round(v, 4) for k, v in res['metrics'].items()})}", flush=True)
    best = {n: min(min(r["epoch_s"]) for r in rs) for n, rs in results.items()}
    one, many = best[1], best[args.procs]
    same = all(abs(a["metrics"][k] - b["metrics"][k]) < 1e-3 for a, b in zip(results[1], results[args.procs])
               for k in a["metrics"])
    print(f"\nfastest epoch (train + validate): 1 process {one:.2f} s ({n_train / one:.0f} img/s), "
          f"{args.procs} processes {many:.2f} s ({n_train / many:.0f} img/s): {one / many:.2f}x")
    print(f"validation metrics of the two agree to 1e-3: {same}")


if __name__ == "__main__":
    main()
