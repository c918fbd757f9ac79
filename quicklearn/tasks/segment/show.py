"""Pictures of segmentation: masks drawn over photos in the classes' colours (show_batch, predict's overlays,
show_results), the worst images as photo / truth / prediction triptychs, and the pixel confusion matrix. Figures
come from functions that return them, so tests read what they draw; analysis/plots.save_figure writes them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from quicklearn.analysis.plots import save_figure
from quicklearn.tasks.segment.masks import ClassTable
from quicklearn.tasks.segment.metrics import VOID

if TYPE_CHECKING:
    from quicklearn.tasks.segment.data import SegmentLoaders

__all__ = ["overlay", "color_mask", "mask_grid_figure", "triptych_figure", "pixel_confusion_figure", "show_batch",
           "show_results"]

ALPHA = 0.55  # how much of a pixel's colour is its class's in an overlay


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def color_mask(mask: torch.Tensor | np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """Class indices (H, W) -> uint8 RGB (H, W, 3) in the classes' colours; void black."""
    m = np.asarray(mask, dtype=np.int64)
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(colors)] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    table[VOID] = 0
    return table[m]


def overlay(photo: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray, colors: Sequence[Sequence[int]],
            alpha: float = ALPHA) -> np.ndarray:
    """A photo (float (3, H, W) in [0, 1], or uint8 (H, W, 3)) with its class map drawn over it: float (H, W, 3)
    in [0, 1]; void pixels show the photo alone."""
    p = photo.detach().float().cpu().permute(1, 2, 0).numpy() if isinstance(photo, torch.Tensor) else \
        np.asarray(photo, dtype=np.float32) / 255.0
    m = np.asarray(mask)
    color = color_mask(m, colors).astype(np.float32) / 255.0
    a = np.where((m != VOID)[..., None], alpha, 0.0)
    return np.clip(p * (1 - a) + color * a, 0, 1)


def _grid(rows: int, cols: int, width: float, height: float) -> tuple[Any, list[list[Any]], Any]:
    """A figure of rows x cols image axes and, under them, a strip for the classes' legend."""
    plt = _pyplot()
    fig = plt.figure(figsize=(width, height + 0.7))
    gs = fig.add_gridspec(rows + 1, cols, height_ratios=[1.0] * rows + [0.7 * rows / max(height, 0.1)])
    axes = [[fig.add_subplot(gs[r, c]) for c in range(cols)] for r in range(rows)]
    strip = fig.add_subplot(gs[rows, :])
    strip.axis("off")
    return fig, axes, strip


def _legend(strip: Any, table: ClassTable, present: set[int] | None = None) -> None:
    from matplotlib.patches import Patch

    shown = [k for k in range(len(table.names)) if present is None or k in present]
    handles = [Patch(color=np.asarray(table.colors[k]) / 255.0, label=table.names[k]) for k in shown]
    if handles:
        strip.legend(handles=handles, loc="center", ncol=min(len(handles), 6), fontsize=8, frameon=False)


def mask_grid_figure(photos: torch.Tensor, masks: torch.Tensor, table: ClassTable, titles: Sequence[str] | None = None,
                     suptitle: str = ""):  # noqa: ANN201 (a matplotlib Figure)
    """Photos (B, 3, H, W) in [0, 1] with their masks (B, H, W) over them, in a grid, and a legend of the classes seen."""
    n = len(photos)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    h, w = photos.shape[-2:]
    fig, axes, strip = _grid(rows, cols, 3.2 * cols, (3.2 * h / w + 0.3) * rows)
    for k, ax in enumerate(a for row in axes for a in row):
        ax.axis("off")
        if k < n:
            ax.imshow(overlay(photos[k], masks[k].cpu(), table.colors))
            if titles:
                ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    _legend(strip, table, {int(v) for v in torch.unique(masks.cpu()) if int(v) != VOID})
    return fig


def triptych_figure(photos: Sequence[torch.Tensor], truths: Sequence[Any], preds: Sequence[Any], titles: Sequence[str],
                    table: ClassTable, suptitle: str = ""):  # noqa: ANN201 (a matplotlib Figure)
    """One row per image: the photo, the true mask over it, the predicted mask over it."""
    n = max(len(photos), 1)
    h, w = photos[0].shape[-2:] if len(photos) else (1, 1)
    fig, axes, strip = _grid(n, 3, 9.6, (3.2 * h / w + 0.3) * n)
    seen: set[int] = set()
    for k in range(len(photos)):
        p = photos[k].detach().float().cpu()
        t, q = np.asarray(truths[k]), np.asarray(preds[k])
        seen |= {int(v) for v in np.unique(t) if v != VOID} | {int(v) for v in np.unique(q)}
        for j, (img, name) in enumerate(((p.permute(1, 2, 0).numpy(), "photo"), (overlay(p, t, table.colors), "truth"),
                                         (overlay(p, q, table.colors), "prediction"))):
            ax = axes[k][j]
            ax.imshow(np.clip(img, 0, 1))
            ax.axis("off")
            ax.set_title(f"{titles[k]}" if j == 0 else name, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    _legend(strip, table, seen)
    return fig


def pixel_confusion_figure(cm: torch.Tensor, classes: Sequence[str]):  # noqa: ANN201 (a matplotlib Figure)
    """The confusion matrix over pixels, each row as shares of its true class's pixels (void left out)."""
    plt = _pyplot()
    c = cm.double()
    shares = (c / c.sum(1, keepdim=True).clamp(min=1)).numpy()
    n = len(classes)
    side = min(max(4.0, 0.5 * n + 2.4), 16.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    size = 10 if n <= 8 else 8 if n <= 14 else 6
    for i in range(n):
        for j in range(n):
            v = shares[i, j]
            ax.text(j, i, f"{v:.2f}" if v >= 0.005 else "", ha="center", va="center", fontsize=size,
                    color="white" if v > 0.5 else "black")
    ax.set_xticks(range(n), list(classes), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), list(classes), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    total = int(c.sum())
    acc = float(c.diagonal().sum()) / max(total, 1)
    ax.set_title(f"Confusion matrix over pixels (share of each actual class)\n{total:,} pixels, pixel accuracy {acc:.3f}",
                 fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def show_batch(dls: "SegmentLoaders", path: str | Path, n: int = 8, seed: int = 0) -> Path:
    """Augment `n` training pairs exactly as training does and save the photos with their masks drawn over them."""
    dl = dls.train
    n = min(n, dl.n)
    idx = torch.randperm(dl.n, generator=torch.Generator().manual_seed(seed))[:n]
    x, y = dl.make_batch(idx, torch.Generator().manual_seed(seed))
    photos = dls.pipeline.normalize.denormalize(x.float()).clamp(0, 1).cpu()
    titles = [Path(dls.train_paths[int(i)]).name for i in idx]
    h, w = dls.pipeline.frame
    fig = mask_grid_figure(photos, y.cpu(), dls.table, titles,
                           f"{n} augmented training photos with their masks, {h}x{w} px")
    return save_figure(fig, path)


@torch.no_grad()
def show_results(learn: Any, path: str | Path = "results.png", n: int = 6) -> Path:
    """The first `n` validation photos as photo / truth / prediction rows."""
    dls = learn.dls
    idx = torch.arange(min(n, dls.valid.n))
    x, y = dls.valid.make_batch(idx)
    learn.model.eval()
    pred = learn.model(x).float().argmax(1).cpu()
    photos = dls.pipeline.normalize.denormalize(x.float()).clamp(0, 1).cpu()
    titles = [Path(dls.valid_paths[int(i)]).name for i in idx]
    return save_figure(triptych_figure(list(photos), list(y.cpu()), list(pred), titles, dls.table,
                                       "validation photos: photo / truth / prediction"), path)
