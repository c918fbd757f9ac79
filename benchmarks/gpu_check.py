"""Training throughput on a GPU: quicklearn vs fastai 2.8.12 vs the compute floor, in one run (issue 6).

Random-init backbone (only speed is measured), images resampled from hymenoptera, random 20% validation split,
fit_one_cycle(epochs). Throughput = training images (full batches) per second of an epoch (its validation pass included), the
median over the epochs after the first (the first pays for cuDNN autotuning and, with --compile, compilation).
- quicklearn: vision_learner(weights=None) at its defaults (bf16 autocast and channels_last on CUDA), --compile optional
- fastai: from_folder(valid_pct=0.2) + Resize + aug_transforms, vision_learner(pretrained=False), to_bf16() on CUDA
- floor: the same quicklearn model, bf16 autocast, channels_last, on normalized tensors already on the GPU

Targets (GPU): quicklearn >= 0.85x the floor's images/s and >= 1.5x fastai's. Without CUDA it runs a small CPU
configuration (resnet18, 128 px, 160 images) so the script itself stays tested; those figures say nothing
about the GPU targets.

    benchmarks/.venv/bin/python benchmarks/gpu_check.py [--arch resnet50] [--images 4000] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scaling import DEFAULT_DATA, make_dataset  # noqa: E402  (a sibling script, not a package)


def steady(epoch_s: list[float]) -> float:
    return statistics.median(epoch_s[1:] if len(epoch_s) > 1 else epoch_s)


def run_quicklearn(a: argparse.Namespace) -> dict:
    import quicklearn as ql

    learn = ql.vision_learner(a.folder, arch=a.arch, weights=None, size=a.size, bs=a.bs, seed=0, splitter="random",
                              progress=False, compile=a.compile)
    learn.fit_one_cycle(a.epochs, 1e-3)
    return {"epoch_s": [h["time_s"] for h in learn.history], "n_train": len(learn.dls.train) * learn.dls.train.bs,
            "setting": f"{learn.device.type}, amp={learn.amp_dtype}, channels_last={learn.channels_last}, compile={a.compile}"}


def run_fastai(a: argparse.Namespace) -> dict:
    from fastai.vision.all import Callback, ImageDataLoaders, Resize, accuracy, aug_transforms, vision_learner
    import torch

    class EpochTimer(Callback):
        order = 0

        def before_epoch(self):
            self.t0 = time.perf_counter()

        def after_epoch(self):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t0)

    timer = EpochTimer()
    timer.times = []
    dls = ImageDataLoaders.from_folder(a.folder, valid_pct=0.2, seed=0, bs=a.bs, item_tfms=Resize(int(a.size / 0.875)),
                                       batch_tfms=aug_transforms(size=a.size))
    learn = vision_learner(dls, a.arch, pretrained=False, metrics=accuracy, cbs=[timer])
    if torch.cuda.is_available():
        learn = learn.to_bf16()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(a.epochs, 1e-3)
    return {"epoch_s": timer.times, "n_train": len(dls.train) * a.bs,
            "setting": f"{dls.device}, bf16={torch.cuda.is_available()}, {dls.train.num_workers} workers"}


def run_floor(a: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    import quicklearn as ql

    learn = ql.vision_learner(a.folder, arch=a.arch, weights=None, size=a.size, bs=a.bs, seed=0, splitter="random",
                              progress=False)
    dev, amp = learn.device, learn.amp_dtype
    fmt = torch.channels_last
    xt = learn.dls.train.pipeline.valid_batch(learn.dls.train.images.to(dev)).contiguous(memory_format=fmt)
    xv = learn.dls.valid.pipeline.valid_batch(learn.dls.valid.images.to(dev)).contiguous(memory_format=fmt)
    yt = learn.dls.train.targets.to(dev)
    model = learn.model
    fwd = torch.compile(model) if a.compile else model
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    times = []
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        model.train()
        for b in range(len(learn.dls.train)):
            with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss = F.cross_entropy(fwd(xt[b * a.bs:(b + 1) * a.bs]).float(), yt[b * a.bs:(b + 1) * a.bs])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        with torch.inference_mode(), torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            for b in range(0, len(xv), 2 * a.bs):
                fwd(xv[b:b + 2 * a.bs])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"epoch_s": times, "n_train": len(learn.dls.train) * a.bs,
            "setting": f"{dev.type}, amp={amp}, channels_last, compile={a.compile}"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--arch")
    p.add_argument("--images", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--bs", type=int)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--only", nargs="+", choices=["fastai", "quicklearn", "floor"], default=["fastai", "quicklearn", "floor"])
    p.add_argument("--worker", choices=["fastai", "quicklearn", "floor"], help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    a.arch = a.arch or ("resnet50" if cuda else "resnet18")
    a.images = a.images or (4000 if cuda else 160)
    a.size = a.size or (224 if cuda else 128)
    a.bs = a.bs or (128 if cuda else 32)
    if a.worker:
        out = {"fastai": run_fastai, "quicklearn": run_quicklearn, "floor": run_floor}[a.worker](a)
        print("RESULT " + json.dumps(out), flush=True)
        return
    device = torch.cuda.get_device_name(0) if cuda else f"no CUDA device: the CPU path ({os.cpu_count()} cores)"
    print(f"gpu_check on {device}: {a.arch} (random init), {a.images} images at {a.size} px, bs {a.bs}, "
          f"fit_one_cycle({a.epochs}), compile={a.compile}, torch {torch.__version__}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="ql-gpu-check-"))
    folder = make_dataset(a.data, a.images, tmp / "data")
    rate: dict[str, float] = {}
    for run in a.only:
        cmd = [sys.executable, __file__, "--worker", run, "--folder", str(folder), "--arch", a.arch, "--images",
               str(a.images), "--size", str(a.size), "--bs", str(a.bs), "--epochs", str(a.epochs)] + (["--compile"] if a.compile else [])
        env = dict(os.environ, QUICKLEARN_CACHE=str(tmp / f"cache-{run}"), QUICKLEARN_OFFLINE="1")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            raise SystemExit(f"{run} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(lines[-1][7:])
        rate[run] = r["n_train"] / steady(r["epoch_s"])
        print(f"  {run:<10} {rate[run]:8.1f} images/s   epochs {', '.join(f'{t:.1f}' for t in r['epoch_s'])} s   ({r['setting']})",
              flush=True)
    if "quicklearn" in rate:
        if "floor" in rate:
            print(f"quicklearn / floor  {rate['quicklearn'] / rate['floor']:.2f}x  (target >= 0.85 on a GPU)")
        if "fastai" in rate:
            print(f"quicklearn / fastai {rate['quicklearn'] / rate['fastai']:.2f}x  (target >= 1.5 on a GPU)")
    if not cuda:
        print("no GPU here: these are CPU figures from the small configuration; the GPU targets were not measured")


if __name__ == "__main__":
    main()
