"""Accuracy benchmark: hymenoptera (ants vs bees), tf_efficientnet_lite0, 224 px, bs 32, fine_tune(3), 3 seeds,
with the offline ImageNet weights and with random init (weights=None) side by side.

    python benchmarks/hymenoptera.py [--data ../shared/data/hymenoptera] [--seeds 0 1 2] [--epochs 3]

Target (issue 4): mean valid accuracy >= 0.93 pretrained; random init at least 10 points lower.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import quicklearn as ql


def run(data: Path, seed: int, weights: str | None, epochs: int, size: int, bs: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    learn = ql.vision_learner(data, arch="tf_efficientnet_lite0", weights=weights, size=size, bs=bs, seed=seed, progress=False)
    learn.fine_tune(epochs)
    acc = learn.validate()["accuracy"]
    return acc, time.perf_counter() - t0


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=here.parent / "shared" / "data" / "hymenoptera")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--bs", type=int, default=32)
    p.add_argument("--skip-random", action="store_true", help="only the pretrained runs")
    args = p.parse_args()
    print(f"hymenoptera benchmark: {args.data}, tf_efficientnet_lite0, {args.size}px, bs {args.bs}, "
          f"fine_tune({args.epochs}), seeds {args.seeds}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    results: dict[str, list[float]] = {"imagenet": [], "none": []}
    kinds = ["imagenet"] if args.skip_random else ["imagenet", "none"]
    for seed in args.seeds:
        for kind in kinds:  # alternate, so machine noise hits both alike
            acc, wall = run(args.data, seed, None if kind == "none" else kind, args.epochs, args.size, args.bs)
            results[kind].append(acc)
            print(f"  seed {seed}  weights={kind:<8}  valid accuracy {acc:.4f}  wall {wall:6.1f} s", flush=True)
    print()
    print(f"{'weights':<10} {'mean acc':>9} {'min':>7} {'max':>7}")
    for kind in kinds:
        r = results[kind]
        print(f"{kind:<10} {statistics.mean(r):>9.4f} {min(r):>7.4f} {max(r):>7.4f}")
    if not args.skip_random:
        gap = statistics.mean(results["imagenet"]) - statistics.mean(results["none"])
        print(f"pretrained - random init: {100 * gap:.1f} points")
    mean = statistics.mean(results["imagenet"])
    print(f"target mean >= 0.93: {'PASS' if mean >= 0.93 else 'FAIL'} ({mean:.4f})")


if __name__ == "__main__":
    main()
