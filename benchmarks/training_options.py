"""Stronger-training options on hymenoptera (issue 9): baseline vs mixup vs cutmix vs progressive resizing vs EMA,
each with the vision recipe's defaults otherwise (tf_efficientnet_lite0, ImageNet weights, 224 px, bs 32,
fine_tune(3) after 1 frozen epoch), side by side in one run, alternating per seed so machine noise hits all alike.
Each run is a fresh subprocess (it pays its own start-up, as a user's run does: the first epochs of a process are
slower); the images are decoded once beforehand into the quicklearn cache, which every run then reads.

    python benchmarks/training_options.py [--data ../shared/data/hymenoptera] [--seeds 0 1 2] [--configs baseline ema]
    python benchmarks/training_options.py --quick      # 64 px, 1 seed, 1 frozen + 1 epoch: checks that it runs

Prints valid accuracy and loss (mean over seeds; min and max accuracy), wall time per run, and the difference /
ratio to the baseline. An option earns a default only if it beats the baseline's accuracy beyond the seed spread
without costing much more time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import quicklearn as ql

# name -> vision_learner keywords (the values we would ship as defaults, picked for a few-epoch fine-tune)
CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "mixup 0.4": {"mixup": 0.4},
    "cutmix 1.0": {"cutmix": 1.0},
    "progressive 0.5": {"progressive": 0.5},
    "ema 0.998": {"ema": 0.998},  # with the warm-up (1+n)/(10+n): a plain 0.998 would barely move in 32 steps
    "plateau": {"reduce_lr_on_plateau": True},  # not run by default: one-cycle over 3 epochs rarely plateaus
}
DEFAULT = ["baseline", "mixup 0.4", "cutmix 1.0", "progressive 0.5", "ema 0.998"]


def worker(spec: dict[str, Any]) -> None:
    """One fine-tune in this process; prints RESULT {accuracy, loss, wall} (wall includes building the learner)."""
    t0 = time.perf_counter()
    learn = ql.vision_learner(spec["data"], size=spec["size"], bs=spec["bs"], seed=spec["seed"], progress=False, **spec["opts"])
    learn.fine_tune(spec["epochs"], freeze_epochs=spec["freeze"])
    m = learn.validate()
    print("RESULT " + json.dumps({"accuracy": m["accuracy"], "loss": m["loss"], "wall": time.perf_counter() - t0}), flush=True)


def run(data: Path, seed: int, opts: dict[str, Any], epochs: int, freeze: int, size: int, bs: int) -> tuple[float, float, float]:
    """One fine-tune in a fresh subprocess; (valid accuracy, valid loss, wall seconds)."""
    spec = {"data": str(data), "seed": seed, "opts": opts, "epochs": epochs, "freeze": freeze, "size": size, "bs": bs}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"run {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(lines[-1][len("RESULT "):])
    return res["accuracy"], res["loss"], res["wall"]


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=here.parent / "shared" / "data" / "hymenoptera")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=3, help="unfrozen epochs of fine_tune")
    p.add_argument("--freeze-epochs", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--bs", type=int, default=32)
    p.add_argument("--configs", nargs="+", default=DEFAULT, metavar="NAME",
                   help=f"which to run, from: {', '.join(repr(c) for c in CONFIGS)} (quote names with spaces)")
    p.add_argument("--quick", action="store_true", help="64 px, seed 0, 1 frozen + 1 unfrozen epoch: a check that it runs")
    p.add_argument("--worker", metavar="JSON", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.quick:
        args.size, args.seeds, args.epochs, args.freeze_epochs = 64, [0], 1, 1
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown config {unknown[0]!r}; choose from {list(CONFIGS)}")
    if "baseline" not in args.configs:
        args.configs = ["baseline", *args.configs]
    print(f"training options benchmark: {args.data}, tf_efficientnet_lite0, {args.size}px, bs {args.bs}, "
          f"fine_tune({args.epochs}, freeze_epochs={args.freeze_epochs}), seeds {args.seeds}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    ql.vision_learner(args.data, size=args.size, bs=args.bs, progress=False)  # decode + cache once, untimed: every run reads it
    results: dict[str, list[tuple[float, float, float]]] = {c: [] for c in args.configs}
    for seed in args.seeds:
        for name in args.configs:  # alternate, so machine noise hits every option alike
            acc, loss, wall = run(args.data, seed, CONFIGS[name], args.epochs, args.freeze_epochs, args.size, args.bs)
            results[name].append((acc, loss, wall))
            print(f"  seed {seed}  {name:<16} valid accuracy {acc:.4f}  valid loss {loss:.4f}  wall {wall:6.1f} s", flush=True)
    base_acc = statistics.mean(r[0] for r in results["baseline"])
    base_wall = statistics.mean(r[2] for r in results["baseline"])
    print()
    print(f"{'option':<16} {'mean acc':>9} {'min':>7} {'max':>7} {'vs base':>8} {'valid loss':>10} {'wall s':>7} {'x base':>7}")
    for name, rows in results.items():
        accs, losses, walls = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
        acc, wall = statistics.mean(accs), statistics.mean(walls)
        print(f"{name:<16} {acc:>9.4f} {min(accs):>7.4f} {max(accs):>7.4f} {100 * (acc - base_acc):>+7.1f}p "
              f"{statistics.mean(losses):>10.4f} {wall:>7.1f} {wall / base_wall:>7.2f}")
    print("vs base: accuracy difference in points; x base: wall time ratio to the baseline.")


if __name__ == "__main__":
    main()
