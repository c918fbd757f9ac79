"""How many decode workers are fastest: decode + pre-size every hymenoptera image once (what `decode_all` does
before training), with 0..3 worker processes, alternating, best of `--repeats`; prints times and ratios to 0 workers.

    python benchmarks/workers.py [--data ../shared/data/hymenoptera] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from quicklearn.tasks.vision.augment import Normalize
from quicklearn.tasks.vision.loaders import decode_all
from quicklearn.tasks.vision.pipeline import ImagePipeline
from quicklearn.tasks.vision.sources import folder_source


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=here.parent / "shared" / "data" / "hymenoptera")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--times", type=int, nargs="+", default=[1, 4], help="also measure the list repeated N times (a bigger set)")
    args = p.parse_args()
    for times in args.times:
        measure(folder_source(args.data).paths * times, args.workers, args.repeats)


def measure(paths: list[Path], workers: list[int], repeats: int) -> None:
    pipe = ImagePipeline(224, 256, "crop", 3, Normalize((0.5,) * 3, (0.5,) * 3))
    print(f"decode + pre-size {len(paths)} images to 256 px; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    best = {w: float("inf") for w in workers}
    for _ in range(repeats):
        for w in workers:  # alternate so machine noise hits every setting alike
            t0 = time.perf_counter()
            imgs, ok, _ = decode_all(paths, [pipe.item], 3, num_workers=w)
            best[w] = min(best[w], time.perf_counter() - t0)
    base = best[workers[0]]
    print(f"{'workers':>8} {'best s':>8} {'speed-up':>9}")
    for w in workers:
        print(f"{w:>8} {best[w]:>8.2f} {base / best[w]:>8.2f}x")


if __name__ == "__main__":
    main()
