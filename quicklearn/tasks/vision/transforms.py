"""Item transforms: per-image, on the CPU, on uint8 (C, H, W) tensors.

Deterministic ones (`Resize`, `CenterCrop`) run once, when the images are decoded and pre-sized into
the in-memory cache; the random parts of training augmentation happen later on whole batches
(`quicklearn.data.augment`, whose `min_scale` is the batch-level random-resized crop). `RandomResizedCrop`
is the per-item form, for code that decodes items itself; the default pipeline does not use it, so that
the decoded cache stays valid.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["Resize", "CenterCrop", "RandomResizedCrop", "ResizeMode"]

ResizeMode = Literal["crop", "pad", "squish"]


def _resize(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if img.shape[-2:] == (h, w):
        return img
    out = F.interpolate(img[None].float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Resize:
    """Resize to a `size` x `size` square. mode: 'crop' (fill, center crop), 'pad' (fit, zero-pad) or 'squish'."""

    size: int
    mode: ResizeMode = "crop"
    random: bool = False  # deterministic: safe to cache

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        s = self.size
        if self.mode == "squish":
            return _resize(img, s, s)
        if self.mode == "crop":
            scale = s / min(h, w)
            nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
            img = _resize(img, nh, nw)
            top, left = (nh - s) // 2, (nw - s) // 2
            return img[:, top : top + s, left : left + s].contiguous()
        if self.mode == "pad":
            scale = s / max(h, w)
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            img = _resize(img, nh, nw)
            out = torch.zeros((img.shape[0], s, s), dtype=torch.uint8)
            top, left = (s - nh) // 2, (s - nw) // 2
            out[:, top : top + nh, left : left + nw] = img
            return out
        raise ValueError(f"unknown resize mode {self.mode!r}; use 'crop', 'pad' or 'squish'")


@dataclass(frozen=True)
class CenterCrop:
    """Crop the central `size` x `size` square (resizing up first if the image is smaller)."""

    size: int
    random: bool = False

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        if min(h, w) < self.size:
            return Resize(self.size, "crop")(img)
        top, left = (h - self.size) // 2, (w - self.size) // 2
        return img[:, top : top + self.size, left : left + self.size].contiguous()


@dataclass(frozen=True)
class RandomResizedCrop:
    """Crop a random area fraction in `scale` with aspect ratio in `ratio`, resized to `size` (training only)."""

    size: int
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    random: bool = True

    def __call__(self, img: torch.Tensor, rng: random.Random | None = None) -> torch.Tensor:
        rng = rng or random.Random()
        h, w = img.shape[-2:]
        area = h * w
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
                return _resize(img[:, top : top + ch, left : left + cw], self.size, self.size)
        return Resize(self.size, "crop")(img)
