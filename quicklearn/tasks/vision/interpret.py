"""Interpreting image models: the validation images (or labelled images) as the Interpretation shows them, and
the predicted/actual grid of `learn.show_results()`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from quicklearn.analysis.interpretation import Interpretation
from quicklearn.analysis.labelled import encode_targets, trained_data
from quicklearn.analysis.plots import image_grid
from quicklearn.core.errors import DataError
from quicklearn.tasks.vision.evaluate import image_labels

if TYPE_CHECKING:
    from quicklearn.tasks.vision.predictor import ImagePredictor
    from quicklearn.train.learner import Learner

__all__ = ["interpret_learner", "interpret_model", "show_results"]


def interpret_learner(learn: "Learner") -> Interpretation:
    """The validation images of a trained Learner: their paths, and the images as validation saw them."""
    dls, dl = learn.dls, learn.dls.valid
    interp = Interpretation.from_learner(learn)
    interp.items = list(dls.valid_paths)
    interp.images = lambda idx: dls.pipeline.normalize.denormalize(dl.make_batch(torch.tensor(idx))[0]).float().cpu()
    interp.target_name = str(((learn.config.get("recipe") or {}).get("data") or {}).get("y") or "label")
    return interp


def interpret_model(predictor: "ImagePredictor", data: Any, y: str | None) -> Interpretation:
    """A loaded image model on labelled images (a folder per class, or a CSV of paths and labels)."""
    paths, raw = image_labels(data, y, trained_data(predictor).get("y"))
    if not paths:
        raise DataError(f"{data}: no images found to interpret.")
    targets = encode_targets(predictor, paths, raw)
    preds = predictor.raw(paths)  # shows its own progress bar
    interp = Interpretation.from_preds(preds, targets, predictor.classes, predictor.kind, paths,
                                       predictor.config.get("thresh", 0.5))
    pipe = predictor.pipeline
    interp.images = lambda idx: pipe.normalize.denormalize(pipe.valid_batch(torch.stack([pipe.load(paths[i]) for i in idx])))
    interp.target_name = str(y or trained_data(predictor).get("y") or "label")
    return interp


@torch.no_grad()
def show_results(learn: "Learner", path: str | Path = "results.png", n: int = 12) -> Path:
    """Save a grid of the first `n` validation images titled 'pred / actual' (green when right, red when wrong)."""
    dls = learn.dls
    dl = dls.valid
    idx = torch.arange(min(n, dl.n))
    x, y = dl.make_batch(idx)
    learn.model.eval()
    out = learn.model(x).float().cpu()
    if learn.target_kind.standardized:
        out = out.flatten() * learn.y_std + learn.y_mean
    classes = dls.vocab.classes if dls.vocab else None
    preds, actual = dls.decode_target(learn.target_kind.decide(out, classes)), dls.decode_target(y.cpu())
    titles = [f"{p} / {a}" for p, a in zip(preds, actual)]
    colors = ["green" if p == a else "red" for p, a in zip(preds, actual)]
    images = dls.pipeline.normalize.denormalize(x)
    return image_grid(images, titles, path, suptitle="predicted / actual", colors=colors)
