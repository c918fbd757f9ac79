"""Labelled data as a loaded model reads it: raw labels -> the targets it was trained on; the labelled rows of a
CSV or DataFrame for models that read rows (tables, texts). Shared by evaluate and interpret of every task."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd
import torch

from quicklearn.core.errors import DataError
from quicklearn.data.frames import check_column, drop_rows_without, read_frame
from quicklearn.data.labels import is_missing, numeric_values, split_labels

if TYPE_CHECKING:
    from quicklearn.serving.predictor import Predictor

__all__ = ["trained_data", "encode_targets", "labelled_rows", "score"]


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


def labelled_rows(predictor: "Predictor", data: Any, y: str | None,
                  label_key: Callable[[Any], Any] | None = None) -> tuple[pd.DataFrame, str, str, torch.Tensor]:
    """(frame, how to name it, target column, encoded targets) of a CSV path or DataFrame of labelled rows; the
    target column defaults to the one the model was trained on (`predictor.target`). label_key: how a raw label
    reads as a class name (a table's 1.0 is class "1")."""
    frame, where = read_frame(data)
    col = y or predictor.target  # type: ignore[attr-defined]
    check_column(frame, col, "target", where)
    frame = drop_rows_without(frame, col, where)
    names = [f"{where} row {i + 1}" for i in range(len(frame))]
    raw = frame[col].tolist()
    if label_key is not None and predictor.kind == "single":
        raw = [label_key(v) for v in raw]
    return frame, where, col, encode_targets(predictor, names, raw)


def score(predictor: "Predictor", out: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    """{"n": items, "metrics": {"loss", the target kind's default metrics}} of outputs `out`
    (logits; regression values) against encoded `targets`, the same shape for every task; multi-label metrics
    use the model's thresholds. The loss and metrics are the ones training reports in metrics.json's "valid"."""
    from quicklearn.data.thresholds import thresh_vector
    from quicklearn.train.metrics import get_metric

    kind = predictor.target_kind
    metrics: dict[str, float] = {}
    if kind.standardized:  # the loss training reports: on the standardized target
        mean, std = predictor.config.get("target_stats") or (0.0, 1.0)
        metrics["loss"] = float(kind.loss()((out - mean) / std, (targets - mean) / std))
    else:
        metrics["loss"] = float(kind.loss()(out, targets))
    for name in kind.default_metrics:
        if kind.thresholded:
            metrics[name] = float(get_metric(name, kind)(out, targets, thresh_vector(predictor.thresh, predictor.classes or [])))
        else:
            metrics[name] = float(get_metric(name, kind)(out, targets))
    return {"n": len(targets), "metrics": metrics}
