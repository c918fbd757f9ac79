"""Looking at results: validation images with predicted and actual labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .data.show import image_grid

if TYPE_CHECKING:
    from .train.learner import Learner

__all__ = ["show_results"]


@torch.no_grad()
def show_results(learn: "Learner", path: str | Path = "results.png", n: int = 12) -> Path:
    """Save a grid of the first `n` validation images titled 'pred / actual' (green when right, red when wrong)."""
    dls = learn.dls
    dl = dls.valid
    idx = torch.arange(min(n, dl.n))
    x, y = dl.make_batch(idx)
    learn.model.eval()
    out = learn.model(x).float().cpu()
    if learn.kind == "regression":
        out = out.flatten() * learn.y_std + learn.y_mean
        preds, actual = [f"{v:.3g}" for v in out], [f"{v:.3g}" for v in y.cpu()]
    elif learn.kind == "multi":
        preds, actual = dls.decode_target((out.sigmoid() > 0.5).float()), dls.decode_target(y.cpu())
    else:
        preds, actual = dls.decode_target(out.argmax(1)), dls.decode_target(y.cpu())
    titles = [f"{p} / {a}" for p, a in zip(preds, actual)]
    colors = ["green" if p == a else "red" for p, a in zip(preds, actual)]
    images = dls.pipeline.normalize.denormalize(x)
    return image_grid(images, titles, path, suptitle="predicted / actual", colors=colors)
