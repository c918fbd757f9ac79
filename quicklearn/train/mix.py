"""Mixup and CutMix: blend pairs of training images and their targets, as pure functions plus a seeded sampler.

    x, soft = mixup(x, y, lam, perm, n_classes=2)          # lam * x + (1 - lam) * x[perm]
    x, soft = cutmix(x, y, perm, box, n_classes=2)         # x[perm]'s pixels inside box pasted into x

Targets come back SOFT: single-label class indices become mixed one-hot rows (each sums to 1), multi-label rows
mixed multi-hot, regression values mixed values. CrossEntropyLoss and BCEWithLogitsLoss accept such targets.
The Learner applies a `BatchMixer` to training batches only; validation never mixes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from quicklearn.core.errors import ConfigError

__all__ = ["soft_targets", "mixup", "cutmix", "cutmix_box", "box_area", "BatchMixer"]

Box = tuple[int, int, int, int]  # (top, bottom, left, right): rows top..bottom-1, columns left..right-1


def soft_targets(y: Tensor, n_classes: int | None = None) -> Tensor:
    """Float targets to mix: int class indices -> one-hot rows of `n_classes`; float targets (multi-hot, values) as they are."""
    if y.is_floating_point():
        return y
    if n_classes is None:
        raise ConfigError("mixup/cutmix of class indices needs n_classes (the number of classes) to build one-hot targets.")
    return torch.nn.functional.one_hot(y.long(), n_classes).to(torch.float32)


def _mix_targets(y: Tensor, lam: float, perm: Tensor, n_classes: int | None) -> Tensor:
    t = soft_targets(y, n_classes)
    return t * lam + t[perm.to(t.device)] * (1.0 - lam)


def mixup(x: Tensor, y: Tensor, lam: float, perm: Tensor, n_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """Mixup (Zhang et al. 2018): lam * x + (1 - lam) * x[perm], and the same mix of the (soft) targets."""
    p = perm.to(x.device)
    mixed = x.mul(lam).add_(x[p], alpha=1.0 - lam)  # mul keeps x's memory format (channels_last)
    return mixed, _mix_targets(y, lam, perm, n_classes)


def box_area(box: Box) -> int:
    top, bottom, left, right = box
    return max(0, bottom - top) * max(0, right - left)


def cutmix(x: Tensor, y: Tensor, perm: Tensor, box: Box, n_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """CutMix (Yun et al. 2019): paste x[perm] inside `box` into x. The targets mix with the area actually kept
    from each image's own pixels, lam = 1 - box area / image area (the box as given, already clipped)."""
    H, W = x.shape[-2:]
    top, bottom, left, right = box
    if not (0 <= top <= bottom <= H and 0 <= left <= right <= W):
        raise ConfigError(f"cutmix box {box} does not lie inside the {H}x{W} image; use cutmix_box() to draw one.")
    p = perm.to(x.device)
    mixed = x.clone()  # clone keeps x's memory format
    mixed[..., top:bottom, left:right] = x[p, :, top:bottom, left:right]
    lam = 1.0 - box_area(box) / float(H * W)
    return mixed, _mix_targets(y, lam, perm, n_classes)


def cutmix_box(lam: float, height: int, width: int, rng: np.random.Generator) -> Box:
    """A box of area (1 - lam) of the image around a uniformly drawn center, clipped to the image (so the area kept
    can be larger than lam: `cutmix` uses the clipped box's area)."""
    cut = math.sqrt(max(0.0, 1.0 - lam))
    ch, cw = int(round(height * cut)), int(round(width * cut))
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = max(0, cy - ch // 2), min(height, cy + ch - ch // 2)
    left, right = max(0, cx - cw // 2), min(width, cx + cw - cw // 2)
    return top, bottom, left, right


@dataclass
class BatchMixer:
    """Mixes training batches: mixup with Beta(mixup, mixup) weights, cutmix with Beta(cutmix, cutmix) areas; when
    both alphas are > 0 each batch gets one of them with p=0.5. `rng(seed, key)` gives the per-epoch stream, seeded
    like augmentation, so the same seed mixes the same batches the same way (also after a resume)."""

    mixup: float = 0.0
    cutmix: float = 0.0
    n_classes: int | None = None

    def __post_init__(self) -> None:
        for name in ("mixup", "cutmix"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{name}={value!r}: expected the Beta distribution's alpha, a number >= 0 (0 = off; 0.2-1.0 are usual).")

    @property
    def enabled(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    @staticmethod
    def rng(seed: int, key: int) -> np.random.Generator:
        return np.random.default_rng([int(seed), int(key), 0x4D4958])  # 'MIX': a stream apart from shuffling's

    def __call__(self, x: Tensor, y: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """One training batch -> (mixed images, soft targets)."""
        if not x.is_floating_point() or x.ndim != 4:
            raise ConfigError(f"mixup/cutmix mix image batches (B, C, H, W) of floats; this batch is {tuple(x.shape)} {x.dtype}. "
                              "Turn mixup and cutmix off for tables and texts.")
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or rng.random() < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = float(rng.beta(alpha, alpha))
        perm = torch.from_numpy(rng.permutation(len(x)))
        if use_cutmix:
            box = cutmix_box(lam, x.shape[-2], x.shape[-1], rng)
            return cutmix(x, y, perm, box, self.n_classes)
        return mixup(x, y, lam, perm, self.n_classes)
