"""The three-line API for images:

    import quicklearn as ql
    learn = ql.vision_learner("path/to/folder")
    learn.fine_tune(3)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from quicklearn.core.distributed import device_for_rank, init_from_env, world_size
from quicklearn.data.labels import KindName
from quicklearn.data.split import Splitter
from quicklearn.tasks.vision.augment import AugmentConfig
from quicklearn.tasks.vision.backbones import DEFAULT_ARCH, check_arch
from quicklearn.tasks.vision.data import image_dataloaders
from quicklearn.tasks.vision.heads import HeadConfig
from quicklearn.tasks.vision.model import build_model
from quicklearn.tasks.vision.transforms import ResizeMode
from quicklearn.tasks.vision.weights import is_random_init
from quicklearn.train.callbacks.base import Callback
from quicklearn.train.learner import Learner, Precision, amp_dtype, resolve_device
from quicklearn.train.mix import BatchMixer

__all__ = ["vision_learner"]

log = logging.getLogger("quicklearn")


def vision_learner(
    data: str | Path | pd.DataFrame,
    *,
    # data
    y: str | Callable[[Path], Any] | None = None,
    path_col: str | None = None,
    kind: KindName | None = None,
    label_delim: str | None = None,
    splitter: Splitter | str = "auto",
    valid_pct: float = 0.2,
    # transforms
    size: int = 224,
    presize: int | None = None,
    resize_mode: ResizeMode = "crop",
    augment: AugmentConfig | bool = True,
    channels: int = 3,
    # model
    arch: str = DEFAULT_ARCH,
    weights: str | Path | None = "imagenet",
    head: HeadConfig | None = None,
    # training
    bs: int | str = 32,
    metrics: Sequence[str] | None = None,
    monitor: str | None = None,
    opt: str = "adamw",
    wd: float = 0.01,
    train_bn: bool = True,
    freeze_bn_stats: bool | None = None,
    label_smoothing: float = 0.0,
    class_weights: Sequence[float] | str | None = None,
    mixup: float = 0.0,
    cutmix: float = 0.0,
    ema: float | None = None,
    reduce_lr_on_plateau: bool = False,
    progressive: float | None = None,
    grad_clip: float | None = None,
    grad_accum: int = 1,
    precision: Precision = "auto",
    channels_last: bool | None = None,
    compile: bool = False,
    device: str | torch.device | None = "auto",
    num_workers: int | None = None,
    seed: int = 42,
    path: str | Path | None = None,
    cbs: Sequence[Callback] = (),
    progress: bool | None = None,
    recipe: dict | None = None,
    distributed: bool | None = None,
    sync_bn: bool = False,
) -> Learner:
    """Images -> DataBlock -> pretrained timm backbone with a new head -> a Learner ready to `fine_tune`.

    data: a folder (one sub-folder per class, optionally under train/ and valid/), a CSV of image paths, or a DataFrame.
    Every DataBlock and Learner option is a keyword here; `path` (a folder) turns on checkpoints and history files.
    freeze_bn_stats: None = keep the pretrained BatchNorm statistics when the body is pretrained (measured on
    hymenoptera: +4 points of final accuracy and a falling instead of rising valid loss), train them for random init.
    Stronger training, all off by default: mixup/cutmix (Beta alphas, e.g. 0.4 / 1.0), ema (decay of an average of
    the weights, e.g. 0.998), reduce_lr_on_plateau (halve the lr after an epoch without improvement), progressive
    (start at this fraction of `size`, e.g. 0.5, full size for the second half of the unfrozen epochs).
    """
    check_arch(arch)  # fail on a typo before decoding any image
    BatchMixer(mixup, cutmix)  # and on a bad option
    training_cbs = _training_callbacks(ema, reduce_lr_on_plateau, progressive)
    torch.manual_seed(seed)
    dev = resolve_device(device_for_rank(device))  # under torchrun: this rank's GPU
    head = head or HeadConfig()
    dls = image_dataloaders(
        data, y=y, path_col=path_col, kind=kind, label_delim=label_delim, splitter=splitter, valid_pct=valid_pct,
        seed=seed, size=size, presize=presize, resize_mode=resize_mode, augment=augment, arch=arch, channels=channels,
        bs=32 if bs == "auto" else int(bs), num_workers=num_workers,
    )
    torch.manual_seed(seed)  # the head's initialisation does not depend on how many images were decoded
    model, weights_desc = build_model(arch, dls.n_out, weights=weights, in_chans=channels, head=head)
    if bs == "auto":
        from quicklearn.tasks.vision.batch_size import global_batch_size

        if distributed is not False:
            init_from_env()  # under torchrun the ranks must agree on one batch size
        world = world_size() if distributed is not False else 1
        dls.train.bs = global_batch_size(model, dls, dev, amp_dtype(precision, dev), world)
    if freeze_bn_stats is None:
        freeze_bn_stats = not is_random_init(weights)
    config = {
        "model": {"arch": arch, "n_out": dls.n_out, "in_chans": channels, "head": head.to_dict(), "weights": weights_desc},
        "recipe": recipe,
    }
    cbs = [*cbs, *training_cbs]
    return Learner(
        dls, model, metrics=metrics, monitor=monitor, opt=opt, wd=wd, train_bn=train_bn, freeze_bn_stats=freeze_bn_stats, device=dev, precision=precision,
        channels_last=channels_last, compile=compile, grad_clip=grad_clip, grad_accum=grad_accum,
        label_smoothing=label_smoothing, class_weights=class_weights, mixup=mixup, cutmix=cutmix, path=path, cbs=cbs, seed=seed, progress=progress,
        config=config, distributed=distributed, sync_bn=sync_bn,
    )


def _training_callbacks(ema: float | None, reduce_lr_on_plateau: bool, progressive: float | None) -> list[Callback]:
    """The callbacks that vision_learner's stronger-training keywords stand for (mixup/cutmix live in the Learner)."""
    from quicklearn.tasks.vision.progressive import ProgressiveResize
    from quicklearn.train.callbacks.ema import EMA
    from quicklearn.train.callbacks.plateau import ReduceLROnPlateau

    cbs: list[Callback] = []
    if progressive is not None:
        cbs.append(ProgressiveResize(progressive))
    if reduce_lr_on_plateau:
        cbs.append(ReduceLROnPlateau())
    if ema is not None:
        cbs.append(EMA(ema))
    return cbs
