"""The three-line API for segmentation:

    import quicklearn as ql
    learn = ql.segmentation_learner("camvid/")      # photos + a mask folder beside them (+ codes.txt)
    learn.fine_tune(4)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from quicklearn.core.distributed import device_for_rank
from quicklearn.core.errors import ConfigError
from quicklearn.tasks.segment.data import segmentation_dataloaders
from quicklearn.tasks.segment.kind import MASK, mask_loss
from quicklearn.tasks.segment.model import build_segmentation_model, check_decoder, require_smp
from quicklearn.tasks.vision.augment import AugmentConfig
from quicklearn.tasks.vision.backbones import DEFAULT_ARCH, check_arch
from quicklearn.tasks.vision.weights import is_random_init
from quicklearn.train.callbacks.base import Callback
from quicklearn.train.learner import Learner, Precision, resolve_device

__all__ = ["segmentation_learner"]


def segmentation_learner(
    data: str | Path,
    *,
    # data
    masks: str | Path | None = None,
    codes: str | Path | None = None,
    void: int | str | None = None,
    splitter: str = "auto",
    valid_pct: float = 0.2,
    # transforms
    size: int | tuple[int, int] = 192,
    augment: AugmentConfig | bool = True,
    # model
    arch: str = DEFAULT_ARCH,
    weights: str | Path | None = "imagenet",
    decoder: str = "unet",
    # training
    bs: int = 8,
    dice: float = 0.0,
    metrics: Sequence[str] | None = None,
    monitor: str | None = None,
    opt: str = "adamw",
    wd: float = 0.01,
    label_smoothing: float = 0.0,
    class_weights: Sequence[float] | str | None = None,
    freeze_bn_stats: bool | None = None,
    grad_clip: float | None = None,
    precision: Precision = "auto",
    device: str | torch.device | None = "auto",
    num_workers: int | None = None,
    sync_bn: bool = False,
    distributed: bool | None = None,
    seed: int = 42,
    path: str | Path | None = None,
    cbs: Sequence[Callback] = (),
    progress: bool | None = None,
    recipe: dict | None = None,
) -> Learner:
    """Photos and their masks -> a pretrained timm encoder with a U-Net (or FPN, DeepLabV3+) decoder -> a Learner
    ready to `fine_tune` (freeze: the decoder and head train, the encoder waits; then everything at discriminative
    rates). The default monitor is mIoU.

    data: a folder of photos with a mask folder beside it, or a CSV of photo and mask paths (tasks/segment/pairs.py);
    masks/codes/void: see `segmentation_dataloaders`. size: the model input's short side (the long side follows the
    photos' aspect ratio) or [height, width]. dice: add this x the Dice loss to the cross-entropy, which ignores
    void. class_weights: one per class, or 'balanced' (median-frequency balancing)."""
    require_smp()
    check_arch(arch)
    check_decoder(decoder)
    torch.manual_seed(seed)
    dev = resolve_device(device_for_rank(device))
    dls = segmentation_dataloaders(data, masks=masks, codes=codes, void=void, splitter=splitter, valid_pct=valid_pct,
                                   seed=seed, size=size, augment=augment, arch=arch, bs=bs, num_workers=num_workers)
    n = len(dls.table.names)
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ConfigError(f"class_weights={class_weights!r}: use 'balanced' or one number per class.")
        class_weights = MASK.balanced_weights(dls.train.targets, n)
    if class_weights is not None and len(class_weights) != n:
        raise ConfigError(f"class_weights has {len(class_weights)} values but there are {n} classes {list(dls.table.names)}.")
    torch.manual_seed(seed)  # the decoder's initialisation does not depend on the data
    model, weights_desc = build_segmentation_model(arch, n, decoder=decoder, weights=weights)
    if freeze_bn_stats is None:
        freeze_bn_stats = not is_random_init(weights)
    config = {"model": {"arch": arch, "decoder": decoder, "n_out": n, "in_chans": 3, "weights": weights_desc},
              "recipe": recipe}
    return Learner(dls, model, loss_func=mask_loss(class_weights, label_smoothing, dice, dev), metrics=metrics,
                   monitor=monitor, opt=opt, wd=wd, freeze_bn_stats=freeze_bn_stats, device=dev, precision=precision,
                   grad_clip=grad_clip, path=path, cbs=cbs, seed=seed, progress=progress, config=config,
                   distributed=distributed, sync_bn=sync_bn)
