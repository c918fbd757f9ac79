"""Measuring a segmentation model on labelled photos (`quicklearn evaluate`): every photo predicted at its own size
and scored against its mask at full resolution, over one confusion matrix of all pixels (void left out)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.nn.functional as F

from quicklearn.core.errors import ConfigError, DataError
from quicklearn.tasks.segment.metrics import VOID, confusion, scores
from quicklearn.tasks.segment.pairs import Pairs, find_pairs

if TYPE_CHECKING:
    from quicklearn.tasks.segment.predictor import SegmentPredictor

__all__ = ["labelled_pairs", "scored_images", "evaluate_masks"]


def labelled_pairs(data: Any, y: str | None) -> Pairs:
    """The photo/mask pairs of labelled data (a folder with its mask folder, or a CSV); --target does not apply."""
    if y is not None:
        raise ConfigError("--target names a label column; segmentation data is photos with their masks (a mask folder "
                          "beside the photos, or a CSV with a photo and a mask column).")
    if not isinstance(data, (str, Path)):
        raise DataError(f"segmentation data is a folder or a CSV of photo and mask paths, not a {type(data).__name__}.")
    return find_pairs(data)


def scored_images(predictor: "SegmentPredictor", pairs: Pairs) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, int]]:
    """Per pair: (photo uint8, true classes, predicted classes, summed cross-entropy, scored pixels), at the photo's size."""
    for (photo, logits), mask_path, photo_path in zip(predictor.logits(pairs.photos), pairs.masks, pairs.photos):
        truth = predictor.table.read(mask_path)
        if tuple(truth.shape) != tuple(logits.shape[-2:]):
            raise DataError(f"{mask_path} is {truth.shape[1]}x{truth.shape[0]} but its photo {photo_path} is "
                            f"{logits.shape[-1]}x{logits.shape[-2]}: a mask must be the size of its photo.")
        loss = float(F.cross_entropy(logits[None], truth[None].long(), ignore_index=VOID, reduction="sum"))
        yield photo, truth, logits.argmax(0), loss, int((truth != VOID).sum())


def evaluate_masks(predictor: "SegmentPredictor", data: Any, y: str | None = None, tta: bool = False) -> dict[str, Any]:
    """{"n": photos, "metrics": {"loss", "miou", "pixel_accuracy", "iou_<class>" for every class that occurs}}: the
    cross-entropy per scored pixel, and the scores of one confusion matrix over all of them."""
    if tta:
        raise ConfigError("--tta is for image classifiers; segmentation has no test-time augmentation yet.")
    pairs = labelled_pairs(data, y)
    classes = list(predictor.classes or [])
    cm = torch.zeros(len(classes), len(classes), dtype=torch.int64)
    loss, pixels = 0.0, 0
    for _, truth, pred, image_loss, n in scored_images(predictor, pairs):
        cm += confusion(pred, truth, len(classes))
        loss, pixels = loss + image_loss, pixels + n
    s = scores(cm)
    metrics: dict[str, float] = {"loss": loss / max(pixels, 1), "miou": s["miou"], "pixel_accuracy": s["pixel_accuracy"]}
    metrics.update({f"iou_{c}": v for c, v in zip(classes, s["iou"]) if v is not None})
    return {"n": len(pairs), "metrics": metrics}
