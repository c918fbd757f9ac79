"""Test-time augmentation (TTA): the fixed views each image is predicted on, and how their predictions combine.

The views come from the pre-sized uint8 image (the one validation and `Predictor` already use), so they are
deterministic and reproducible:
  1. the validation view (the whole pre-sized image resized to `size`),  2. its horizontal mirror,
  3. a centre crop zoomed in by presize/size (a `size`-pixel window of the pre-sized image), 4. its mirror.
Predictions are averaged as probabilities (softmax for single-label, sigmoid for multi-label, the values for
regression) and returned in the space the rest of the code decodes: log of the mean probabilities for
single-label (softmax(log p) = p), logit of the mean probabilities for multi-label, the mean for regression.
So metrics, losses and `decode_prediction` take TTA outputs unchanged.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from quicklearn.core.progress import progress
from quicklearn.data.kinds import TargetKind, get_kind
from quicklearn.tasks.vision.augment import resize_batch
from quicklearn.tasks.vision.pipeline import ImagePipeline

__all__ = ["N_VIEWS", "tta_zoom", "zoom_crop", "tta_views", "average_views", "tta_outputs"]

N_VIEWS = 4
DEFAULT_ZOOM = 1 / 0.875  # when presize == size there is no margin to crop into: zoom as a 224-of-256 crop would


def tta_zoom(pipeline: ImagePipeline) -> float:
    """How much the crop views zoom in: presize/size (the crop is the `size` window of the pre-sized image)."""
    return pipeline.presize / pipeline.size if pipeline.presize > pipeline.size else DEFAULT_ZOOM


def zoom_crop(x: Tensor, zoom: float) -> Tensor:
    """The centre 1/zoom of each image of (B,C,H,W); margins equal on both sides, so the crop of a mirrored
    image is the mirror of the crop (what makes TTA flip-invariant)."""
    H, W = x.shape[-2:]
    mh = max(0, min((H - 1) // 2, round((H - H / zoom) / 2)))
    mw = max(0, min((W - 1) // 2, round((W - W / zoom) / 2)))
    return x[..., mh : H - mh, mw : W - mw]


def tta_views(x: Tensor, pipeline: ImagePipeline) -> list[Tensor]:
    """uint8 pre-sized batch (B,C,P,P) -> the N_VIEWS normalized float batches (B,C,size,size), in the order above."""
    base = resize_batch(x, pipeline.size)
    crop = resize_batch(zoom_crop(x, tta_zoom(pipeline)), pipeline.size)
    return [pipeline.normalize(v) for v in (base, base.flip(-1), crop, crop.flip(-1))]


def average_views(outs: Sequence[Tensor], kind: "str | TargetKind") -> Tensor:
    """Per-view model outputs -> one output in the decodable space (see the module docstring), float32: the
    target kind's own averaging (data/kinds.py)."""
    return get_kind(kind).average_views(outs)


def tta_outputs(
    model: Callable[[Tensor], Tensor],
    images: Tensor,
    pipeline: ImagePipeline,
    kind: "str | TargetKind",
    *,
    bs: int = 64,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> Tensor:
    """TTA outputs of `model` (in eval mode; regression still standardized) for pre-sized uint8 images (N,C,P,P)."""
    device = torch.device(device)
    chunks: list[Tensor] = []
    n = len(images)
    with progress(None if n > bs else False) as bar:
        task = bar.add_task(f"TTA ({N_VIEWS} views)", total=n, info="") if bar else None
        for k in range(0, n, bs):
            x = images[k : k + bs].to(device)
            outs = []
            for view in tta_views(x, pipeline):
                if channels_last:
                    view = view.contiguous(memory_format=torch.channels_last)
                outs.append(model(view).float().cpu())
            chunks.append(average_views(outs, kind))
            if bar:
                bar.advance(task, len(x))
    return torch.cat(chunks) if chunks else torch.empty(0)
