"""Measuring a trained model on labelled data it has not seen (`quicklearn evaluate`): the model's task reads the
labelled data, the scores are the same for every task (analysis/labelled.score).

    model = quicklearn.load("model_dir")
    evaluate_model(model, "data/test")            # {"n": 120, "metrics": {"loss": 0.21, "accuracy": 0.94}}
    evaluate_model(model, "test.csv", y="label")  # a CSV: image paths (or a table's / texts' rows) + the label column
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quicklearn.serving.predictor import Predictor
from quicklearn.tasks.registry import get_task

__all__ = ["evaluate_model"]


def evaluate_model(predictor: Predictor, data: str | Path | Any, y: str | None = None, tta: bool = False) -> dict[str, Any]:
    """{"n": items, "metrics": {"loss", the default metrics}}, the same shape for every task (`quicklearn evaluate
    --format json` prints it), of the model on labelled `data` its task can read: images (a
    folder per class, or a CSV of paths with label column `y`), or the labelled rows of a table or of texts.
    tta: predict with test-time augmentation, where the task has views to average (images)."""
    return get_task(predictor.task).evaluate(predictor, data, y, tta)
