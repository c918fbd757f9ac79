"""Labelled images for evaluate and interpret: a folder by sub-folder names, a CSV by a label column."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from quicklearn.analysis.labelled import encode_targets, score, trained_data
from quicklearn.core.errors import DataError
from quicklearn.data.labels import raw_labels
from quicklearn.tasks.vision.sources import image_source

if TYPE_CHECKING:
    from quicklearn.tasks.vision.predictor import ImagePredictor

__all__ = ["image_labels", "evaluate_images"]


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


def evaluate_images(predictor: "ImagePredictor", data: str | Path, y: str | None = None, tta: bool = False) -> dict[str, Any]:
    """Loss and metrics on labelled images: a folder (one sub-folder per class, searched recursively, so a
    train/valid tree works too) or a CSV of image paths with label column `y`; tta: test-time augmentation."""
    paths, raw = image_labels(data, y, trained_data(predictor).get("y"))
    return score(predictor, predictor.raw(paths, tta=tta), encode_targets(predictor, paths, raw))
