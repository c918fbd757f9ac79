"""Scoring segmentation: one confusion matrix over every scored pixel (void left out), and everything read from it:
pixel accuracy, per-class IoU and their mean. The one scoring function of quicklearn's validation, `evaluate`,
`interpret` and benchmarks/segment.py (which scores fastai's and the floor's predictions with it too).

    cm = confusion(pred_classes, masks, n_classes)        # (n, n) int64: rows are the truth, columns the prediction
    scores(cm)   # {"pixel_accuracy": ..., "miou": ..., "iou": [per class, None where the class occurs nowhere]}

mIoU averages the classes that occur in the truth or the prediction (union > 0); a class predicted where it is
not (and absent from the truth) counts with IoU 0.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ["VOID", "confusion", "confusion_of_logits", "scores", "iou_table", "pixel_accuracy", "miou"]

VOID = 255  # the class index of pixels that count in neither the loss nor the metrics (tasks/segment/masks.py)


def confusion(pred: torch.Tensor, target: torch.Tensor, n_classes: int, void: int = VOID) -> torch.Tensor:
    """(n, n) pixel counts, rows = true class, columns = predicted class, over pixels whose target is not `void`.
    pred: class indices of any shape; target: the same shape."""
    pred, target = pred.reshape(-1), target.reshape(-1)
    keep = target != void
    t, p = target[keep].long(), pred[keep].long()
    if len(t) and (int(t.max()) >= n_classes or int(p.max()) >= n_classes):
        raise ValueError(f"class index {max(int(t.max()), int(p.max()))} outside the {n_classes} classes")
    return torch.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes).cpu()


def confusion_of_logits(logits: torch.Tensor, target: torch.Tensor, void: int = VOID, chunk: int = 8) -> torch.Tensor:
    """`confusion` of logits (N, C, H, W) against targets (N, H, W), a few images at a time (argmax is the big part)."""
    n = logits.shape[1]
    cm = torch.zeros(n, n, dtype=torch.int64)
    for k in range(0, len(logits), chunk):
        cm += confusion(logits[k:k + chunk].argmax(1), target[k:k + chunk].reshape(-1, *logits.shape[2:]), n, void)
    return cm


def scores(cm: torch.Tensor) -> dict[str, Any]:
    """pixel_accuracy (right pixels / scored pixels), iou (per class: TP / (TP + FP + FN), None where the class is in
    neither the truth nor the prediction) and miou (the mean of the classes that have an IoU)."""
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    total = float(cm.sum())
    iou = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
    present = [v for v in iou if v is not None]
    return {"pixel_accuracy": float(tp.sum()) / total if total else float("nan"),
            "miou": sum(present) / len(present) if present else float("nan"), "iou": iou}


def iou_table(cm: torch.Tensor, classes: Sequence[str]) -> "Any":
    """Per class: IoU, pixels in the truth (support), pixels predicted, and the share of its pixels found (recall),
    as a DataFrame indexed by class name, plus a 'mean' row (the mIoU, over the classes that occur)."""
    import pandas as pd

    s = scores(cm)
    c = cm.double()
    support, predicted = c.sum(1), c.sum(0)
    recall = [float(t / n) if n > 0 else None for t, n in zip(c.diagonal(), support)]
    frame = pd.DataFrame({"iou": s["iou"], "recall": recall, "pixels": support.long().tolist(),
                          "predicted": predicted.long().tolist()}, index=pd.Index(list(classes), name="class"))
    frame.loc["mean"] = [s["miou"], None, int(support.sum()), int(predicted.sum())]
    frame[["pixels", "predicted"]] = frame[["pixels", "predicted"]].astype(int)
    return frame


def pixel_accuracy(preds: torch.Tensor, targets: torch.Tensor) -> float:
    """Metric of the Learner: logits (N, C, H, W) against masks (N, H, W); void pixels left out."""
    return scores(confusion_of_logits(preds, targets))["pixel_accuracy"]


def miou(preds: torch.Tensor, targets: torch.Tensor) -> float:
    """Metric of the Learner (the default monitor): mean IoU over the classes that occur, from one confusion matrix."""
    return scores(confusion_of_logits(preds, targets))["miou"]
