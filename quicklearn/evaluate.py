"""Measuring a trained model on labelled data it has not seen (`quicklearn evaluate`).

    model = quicklearn.load("model_dir")
    evaluate_model(model, "data/test")            # {"n": 120, "loss": 0.21, "accuracy": 0.94}
    evaluate_model(model, "test.csv", y="label")  # a CSV: image-path column + label column
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from .data.block import image_source
from .data.labels import is_missing, numeric_values, raw_labels, split_labels
from .errors import DataError
from .thresholds import thresh_vector
from .train.metrics import default_metrics, get_metric

if TYPE_CHECKING:
    from .export import Predictor

__all__ = ["evaluate_model", "image_labels", "trained_data", "encode_targets"]


def image_labels(data: str | Path, y: str | None, trained_y: Any) -> tuple[list[Path], list[Any]]:
    """Image paths and their raw labels: a folder is labelled by parent folder names, a CSV by column `y`
    (default: the column the model was trained on, when the CSV has it)."""
    src = image_source(data)
    if src.frame is None:
        if y is not None:
            raise DataError(f"{data}: a folder is labelled by its sub-folder names; --target only applies to a CSV.")
        return src.paths, raw_labels(src, None)
    if y is None and isinstance(trained_y, str) and trained_y in src.frame.columns:
        y = trained_y
    if y is None:
        raise DataError(f"{data}: which column holds the labels? Name it with --target (columns: {list(src.frame.columns)}).")
    return src.paths, raw_labels(src, y)


def trained_data(predictor: "Predictor") -> dict:
    """The data section of the recipe the model was trained with (empty when trained from Python)."""
    return (predictor.config.get("recipe") or {}).get("data") or {}


def encode_targets(predictor: "Predictor", paths: list[Path], raw: list[Any]) -> torch.Tensor:
    """Raw labels -> the targets the model was trained on (class indices, multi-hot rows or floats); `paths` name
    the items in messages (any predictor: images, rows or texts)."""
    kind, classes = predictor.kind, list(predictor.classes or [])
    if kind == "regression":
        return numeric_values(raw, paths, "the labels (this model predicts numbers)")
    delim = trained_data(predictor).get("label_delim")
    sets = split_labels(raw, delim) if kind == "multi" else [[] if is_missing(v) else [str(v)] for v in raw]
    for path, labels in zip(paths, sets):
        if kind == "single" and not labels:
            raise DataError(f"{path}: has no label. Fill it in or drop that row.")
        unknown = [c for c in labels if c not in classes]
        if unknown:
            raise DataError(f"label {unknown[0]!r} (of {path}) is not one of the model's classes: {', '.join(classes)}.")
    if kind == "single":
        return torch.tensor([classes.index(s[0]) for s in sets], dtype=torch.int64)
    multi = torch.zeros((len(sets), len(classes)))
    for i, labels in enumerate(sets):
        for c in labels:
            multi[i, classes.index(c)] = 1.0
    return multi


def evaluate_model(predictor: "Predictor", data: str | Path, y: str | None = None, tta: bool = False) -> dict[str, float]:
    """The model's loss (classification) and default metrics on labelled images: a folder (one sub-folder per
    class, searched recursively, so a train/valid tree works too) or a CSV of image paths with label column `y`.
    tta: predict with test-time augmentation; multi-label metrics use the model's thresholds."""
    paths, raw = image_labels(data, y, trained_data(predictor).get("y"))
    targets = encode_targets(predictor, paths, raw)
    out = predictor.raw(paths, tta=tta)
    result: dict[str, float] = {"n": len(paths)}
    if predictor.kind == "single":
        result["loss"] = float(F.cross_entropy(out, targets))
    elif predictor.kind == "multi":
        result["loss"] = float(F.binary_cross_entropy_with_logits(out, targets))
    for name in default_metrics(predictor.kind):
        if predictor.kind == "multi":
            result[name] = float(get_metric(name)(out, targets, thresh_vector(predictor.thresh, predictor.classes or [])))
        else:
            result[name] = float(get_metric(name)(out, targets))
    return result
