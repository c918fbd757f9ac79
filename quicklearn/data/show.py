"""show_batch: a PNG grid of augmented training images with their labels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..plots import save_figure

if TYPE_CHECKING:
    from .block import DataLoaders

__all__ = ["show_batch", "image_grid"]


def image_grid(images: torch.Tensor, titles: list[str], path: str | Path, suptitle: str = "",
               colors: list[str] | None = None) -> Path:
    """Save float (B,C,H,W) images in [0,1] as a titled grid PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    cols = min(4, n) if n <= 8 else min(6, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    lines = max((str(t).count("\n") + 1 for t in titles), default=1)  # room for multi-line titles (top losses)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, (2.6 + 0.2 * lines) * rows + (0.5 if suptitle else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k].detach().float().cpu().clamp(0, 1)
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img.permute(1, 2, 0).numpy())
        ax.set_title(titles[k], fontsize=9, color=(colors[k] if colors else "black"))
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return save_figure(fig, path)


def show_batch(dls: "DataLoaders", path: str | Path, n: int = 16, seed: int = 0) -> Path:
    """Augment `n` training images exactly as training does and save them with their labels."""
    dl = dls.train
    n = min(n, dl.n)
    idx = torch.randperm(dl.n, generator=torch.Generator().manual_seed(seed))[:n]
    x, y = dl.make_batch(idx, torch.Generator().manual_seed(seed))
    x = dls.pipeline.normalize.denormalize(x)
    titles = [str(t) if not isinstance(t, float) else f"{t:.3g}" for t in dls.decode_target(y.cpu())]
    return image_grid(x, titles, path, suptitle=f"{n} augmented training images at {dls.pipeline.size}px")
