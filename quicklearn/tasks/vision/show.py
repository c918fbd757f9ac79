"""show_batch: a PNG grid of augmented training images with their labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from quicklearn.analysis.plots import image_grid

if TYPE_CHECKING:
    from quicklearn.tasks.vision.data import DataLoaders

__all__ = ["show_batch"]


def show_batch(dls: "DataLoaders", path: str | Path, n: int = 16, seed: int = 0) -> Path:
    """Augment `n` training images exactly as training does and save them with their labels."""
    dl = dls.train
    n = min(n, dl.n)
    idx = torch.randperm(dl.n, generator=torch.Generator().manual_seed(seed))[:n]
    x, y = dl.make_batch(idx, torch.Generator().manual_seed(seed))
    x = dls.pipeline.normalize.denormalize(x)
    titles = [str(t) if not isinstance(t, float) else f"{t:.3g}" for t in dls.decode_target(y.cpu())]
    return image_grid(x, titles, path, suptitle=f"{n} augmented training images at {dls.pipeline.size}px")
