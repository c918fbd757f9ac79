"""The deterministic part of segmentation's image handling, shared by training, validation, prediction and export.

Photos keep their aspect ratio: the model sees a `frame` (height, width), both multiples of 32 (the encoder's
stride), whose short side is the size asked for and whose shape follows the training photos' usual aspect ratio.
Every photo is resized to it whole ("squish": a photo of another aspect ratio is stretched a little, and every
pixel gets a class); predictions are resized back to each photo's own size. Training photos and masks are cached
at `preframe` (1/0.875 of the frame) so that random crops keep detail; validation ones at the frame itself.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from quicklearn.core.errors import ConfigError
from quicklearn.tasks.segment.masks import resize_masks
from quicklearn.tasks.vision.augment import Normalize
from quicklearn.tasks.vision.images import decode_image

__all__ = ["SegmentPipeline", "PhotoItems", "frame_for", "photo_aspect", "resize_photo", "STRIDE"]

STRIDE = 32  # frames are multiples of it: the encoder halves the size five times, the decoder doubles it back


def _round(v: float) -> int:
    return max(STRIDE, int(round(v / STRIDE)) * STRIDE)


def frame_for(size: int | Sequence[int], aspect: float) -> tuple[int, int]:
    """The model's input (height, width): `size` as [height, width], or as the short side with the long side
    following `aspect` (width / height); both rounded to a multiple of 32."""
    if not isinstance(size, int):
        if len(size) != 2:
            raise ConfigError(f"size={list(size)}: give one number (the short side) or [height, width].")
        return _round(size[0]), _round(size[1])
    if size < 8:
        raise ConfigError(f"size={size}: photos must be at least 8 px.")
    return (_round(size), _round(size * aspect)) if aspect >= 1 else (_round(size / aspect), _round(size))


def photo_aspect(paths: Sequence[Path], sample: int = 200) -> float:
    """The median width / height of (up to `sample` of) the photos, read from their headers."""
    ratios = []
    step = max(1, len(paths) // sample)
    for p in paths[::step]:
        try:
            with Image.open(p) as im:
                w, h = im.size
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF says: turned a quarter
                    w, h = h, w
            ratios.append(w / h)
        except (OSError, SyntaxError, ValueError, ZeroDivisionError):
            continue
    return statistics.median(ratios) if ratios else 1.0


def resize_photo(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (C, H, W) -> uint8 (C, h, w), bilinear with antialiasing, the whole photo (its aspect ratio may change)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    out = F.interpolate(img[None].float(), size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class PhotoItems:
    """How the image cache decodes and pre-sizes segmentation photos: RGB, resized whole to `size` (height, width)."""

    size: tuple[int, int]
    channels: int = 3

    @property
    def item_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def cache_id(self) -> dict:
        return {"presize": list(self.size), "mode": "squish", "channels": self.channels}

    def decode(self, path: Path) -> torch.Tensor:
        return decode_image(path, self.channels)

    def item(self, img: torch.Tensor) -> torch.Tensor:
        return resize_photo(img, self.size).contiguous()


@dataclass(frozen=True)
class SegmentPipeline:
    """frame: the model's input (height, width); preframe: the cached size of training photos; the backbone's
    normalization. JSON round-trip for the model folder."""

    frame: tuple[int, int]
    preframe: tuple[int, int]
    normalize: Normalize
    channels: int = 3

    @classmethod
    def for_frame(cls, frame: tuple[int, int], normalize: Normalize) -> "SegmentPipeline":
        pre = (int(round(frame[0] / 0.875)), int(round(frame[1] / 0.875)))
        return cls(frame, pre, normalize)

    def photo(self, img: torch.Tensor) -> torch.Tensor:
        """uint8 (C, H, W) of any size -> uint8 (C, h, w) at the frame."""
        return resize_photo(img, self.frame)

    def valid_batch(self, x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
        """uint8 (B, C, H, W) on any device -> normalized float (B, C, h, w) at the frame (resized whole, as masks are),
        channels-last unless told otherwise (what convolutions run fastest on, as training's batches are)."""
        out = x.to(torch.float32) / 255.0
        if tuple(out.shape[-2:]) != tuple(self.frame):
            out = F.interpolate(out, size=tuple(self.frame), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
        out = self.normalize(out)
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out

    def valid_masks(self, m: torch.Tensor) -> torch.Tensor:
        return resize_masks(m, self.frame)

    def to_dict(self) -> dict:
        return {"frame": list(self.frame), "preframe": list(self.preframe), "channels": self.channels,
                "normalize": self.normalize.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "SegmentPipeline":
        return cls(tuple(int(v) for v in d["frame"]), tuple(int(v) for v in d["preframe"]),  # type: ignore[arg-type]
                   Normalize.from_dict(d["normalize"]), int(d.get("channels", 3)))
