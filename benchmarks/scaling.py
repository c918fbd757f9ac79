"""Does quicklearn's data pipeline scale? Images/s and peak memory at 250, 1,000 and 4,000 images (issue 6).

Data sets are made by resampling the real hymenoptera photos (with replacement, hard links under new names, so
every file is a distinct cache entry and decodes at full cost). Each measurement is a fresh subprocess, so its
peak memory is its own.

pipeline alone, per size, with the default RAM limit and with a 64 MiB limit (which forces the memory-mapped spill):
  decode      decode + pre-size every image into the cache (empty cache: what a first run does)
  reread      the same again: read from the cache an earlier run left
  augment     one pass over the cached uint8 images in training batches of 32: gather, one-homography augment,
              normalize (what every epoch costs besides the model)
  peak RSS / peak anon: the process's peak resident memory, and its peak of private (anonymous) memory, which
              excludes the file-backed pages of a memory-mapped cache that the OS can drop at will
full training at 250 and 1,000 images: tf_efficientnet_lite0, ImageNet weights, 224 px, bs 32, fine_tune(1)
  (1 frozen + 1 unfrozen epoch), random 20% validation split: wall time per image per epoch.

    .venv/bin/python benchmarks/scaling.py [--sizes 250 1000 4000] [--train-sizes 250 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "hymenoptera"


class MemorySampler:
    """Peak VmRSS and RssAnon of this process, sampled every 50 ms from /proc/self/status."""

    def __init__(self) -> None:
        self.rss = self.anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    self.rss = max(self.rss, int(line.split()[1]) * 1024)
                elif line.startswith("RssAnon:"):
                    self.anon = max(self.anon, int(line.split()[1]) * 1024)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._read()
            time.sleep(0.05)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        self._read()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(self.rss, peak) / 2**20, self.anon / 2**20


def make_dataset(src: Path, n: int, dest: Path, seed: int = 0) -> Path:
    photos = sorted(p for p in src.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    rng = random.Random(seed)
    for i in range(n):
        p = rng.choice(photos)
        out = dest / p.parent.name / f"{i:05d}{p.suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, out)
        except OSError:
            out.write_bytes(p.read_bytes())
    return dest


def pipeline_worker(folder: Path) -> dict:
    import torch

    from quicklearn.tasks.vision.augment import AugmentConfig, Normalize
    from quicklearn.tasks.vision.cache import cached_images
    from quicklearn.tasks.vision.loaders import BatchLoader
    from quicklearn.tasks.vision.pipeline import ImagePipeline, default_presize

    mem = MemorySampler()
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    pipe = ImagePipeline(224, default_presize(224), "crop", 3, Normalize.for_arch("tf_efficientnet_lite0", 3))
    t0 = time.perf_counter()
    first = cached_images(paths, pipe)
    t1 = time.perf_counter()
    first_origin = first.origin
    del first  # a second run would not hold the first one's copy
    again = cached_images(paths, pipe)
    t2 = time.perf_counter()
    targets = torch.zeros(len(again.ok), dtype=torch.long)
    dl = BatchLoader(again.images, targets, pipe, bs=32, shuffle=True, drop_last=True, augment=AugmentConfig())
    n_aug = 0
    for x, _ in dl:
        n_aug += len(x)
    t3 = time.perf_counter()
    rss, anon = mem.stop()
    n = len(paths)
    return {"n": n, "decode": n / (t1 - t0), "reread": n / (t2 - t1), "augment": n_aug / (t3 - t2),
            "origin": f"{first_origin}/{again.origin}", "rss": rss, "anon": anon}


def train_worker(folder: Path) -> dict:
    import quicklearn as ql

    mem = MemorySampler()
    t0 = time.perf_counter()
    learn = ql.vision_learner(folder, arch="tf_efficientnet_lite0", size=224, bs=32, seed=0, progress=False,
                              splitter="random")
    learn.fine_tune(1)
    wall = time.perf_counter() - t0
    rss, anon = mem.stop()
    n = len(learn.dls.train_paths) + len(learn.dls.valid_paths)
    return {"n": n, "wall": wall, "ms_per_image_epoch": 1000 * wall / (2 * n), "acc": learn.history[-1]["accuracy"],
            "rss": rss, "anon": anon}


def launch(kind: str, folder: Path, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--folder", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{kind} on {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 4000])
    p.add_argument("--train-sizes", type=int, nargs="*", default=[250, 1000])
    p.add_argument("--worker", choices=["pipeline", "train"], help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        out = pipeline_worker(args.folder) if args.worker == "pipeline" else train_worker(args.folder)
        print("RESULT " + json.dumps(out), flush=True)
        return

    tmp = Path(tempfile.mkdtemp(prefix="ql-scaling-"))
    folders = {n: make_dataset(args.data, n, tmp / f"data-{n}") for n in sorted(set(args.sizes + args.train_sizes))}
    print(f"scaling: resampled from {args.data}; 224 px, pre-size 256 (192 KiB per cached image), {os.cpu_count()} cores")
    print(f"\n{'images':>7} {'RAM limit':>10} {'cache':>16} {'decode/s':>9} {'reread/s':>9} {'augment/s':>10} "
          f"{'peak RSS':>9} {'peak anon':>10}")
    rows = []
    for n in args.sizes:
        for limit in (None, 64):
            env = {"QUICKLEARN_CACHE": str(tmp / f"cache-{n}-{limit}"), "QUICKLEARN_OFFLINE": "1"}
            if limit:
                env["QUICKLEARN_CACHE_RAM_MB"] = str(limit)
            r = launch("pipeline", folders[n], env)
            rows.append((limit, r))
            print(f"{r['n']:>7} {('%d MiB' % limit) if limit else 'default':>10} {r['origin']:>16} {r['decode']:>9.0f} "
                  f"{r['reread']:>9.0f} {r['augment']:>10.0f} {r['rss']:>7.0f}Mi {r['anon']:>8.0f}Mi", flush=True)
    for limit in (None, 64):
        sel = [r for lim, r in rows if lim == limit]
        if len(sel) > 1:
            lo, hi = sel[0], sel[-1]
            print(f"RAM limit {('%d MiB' % limit) if limit else 'default'}: {hi['n']} vs {lo['n']} images: decode/s "
                  f"{hi['decode'] / lo['decode']:.2f}x, augment/s {hi['augment'] / lo['augment']:.2f}x, "
                  f"peak anon {hi['anon'] / lo['anon']:.2f}x for {hi['n'] / lo['n']:.0f}x the images")
    if args.train_sizes:
        print(f"\n{'images':>7} {'wall':>8} {'ms/image/epoch':>15} {'valid acc':>10} {'peak RSS':>9} {'peak anon':>10}")
        tr = []
        for n in args.train_sizes:
            r = launch("train", folders[n], {"QUICKLEARN_CACHE": str(tmp / f"train-{n}"), "QUICKLEARN_OFFLINE": "1"})
            tr.append(r)
            print(f"{r['n']:>7} {r['wall']:>7.1f}s {r['ms_per_image_epoch']:>15.1f} {r['acc']:>10.4f} {r['rss']:>7.0f}Mi "
                  f"{r['anon']:>8.0f}Mi", flush=True)
        if len(tr) > 1:
            print(f"time per image per epoch, {tr[-1]['n']} vs {tr[0]['n']} images: "
                  f"{tr[-1]['ms_per_image_epoch'] / tr[0]['ms_per_image_epoch']:.2f}x (1.00x = flat)")


if __name__ == "__main__":
    main()
