"""The target kind of segmentation: a class per pixel. Registered in data/kinds.KINDS on import (as "mask"), so the
Learner, the Predictor base and config.json's "kind" know it; it brings its own metrics (pixel accuracy, mIoU).

Targets are uint8 masks (N, H, W) of class indices with VOID (255) where nothing counts; outputs are logits
(N, C, H, W). The loss is cross-entropy that ignores void (optionally plus Dice, see `mask_loss`).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from quicklearn.core.errors import ConfigError
from quicklearn.data.kinds import Prediction, TargetKind, register_kind
from quicklearn.data.thresholds import DEFAULT_THRESH, Thresh
from quicklearn.tasks.segment.metrics import VOID, miou, pixel_accuracy

__all__ = ["MaskKind", "MASK", "MaskLoss", "mask_loss", "class_shares"]


class MaskLoss(nn.Module):
    """Cross-entropy over the pixels that are not void (class weights and label smoothing as for classifiers),
    plus `dice` x the multi-class Dice loss (segmentation-models-pytorch's, void ignored) when dice > 0."""

    def __init__(self, weight: Sequence[float] | None = None, label_smoothing: float = 0.0, dice: float = 0.0,
                 device: torch.device | str = "cpu"):
        super().__init__()
        w = torch.tensor(list(weight), dtype=torch.float32, device=device) if weight is not None else None
        self.ce = nn.CrossEntropyLoss(weight=w, ignore_index=VOID, label_smoothing=label_smoothing)
        self.dice_weight = float(dice)
        self.dice = None
        if self.dice_weight > 0:
            from segmentation_models_pytorch.losses import DiceLoss

            self.dice = DiceLoss("multiclass", from_logits=True, ignore_index=VOID)

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = y.long()
        loss = self.ce(out, y)
        if self.dice is not None:
            loss = loss + self.dice_weight * self.dice(out, y)
        return loss


def mask_loss(weight: Sequence[float] | None = None, label_smoothing: float = 0.0, dice: float = 0.0,
              device: torch.device | str = "cpu") -> MaskLoss:
    """The segmentation loss: cross-entropy ignoring void, + dice x Dice when dice > 0."""
    return MaskLoss(weight, label_smoothing, dice, device)


def class_shares(classes: torch.Tensor, n: int) -> torch.Tensor:
    """The share of pixels of each class in a class map (any shape)."""
    counts = torch.bincount(classes.reshape(-1).long(), minlength=n)[:n].double()
    return counts / counts.sum().clamp(min=1)


class MaskKind(TargetKind):
    """A class per pixel: logits (N, C, H, W), masks (N, H, W) with VOID where nothing counts."""

    name, title = "mask", "semantic segmentation (a class per pixel)"
    default_metrics = ("miou", "pixel_accuracy")  # the first is the default monitor
    metrics = frozenset({"miou", "pixel_accuracy"})
    greater_is_better = frozenset({"miou", "pixel_accuracy"})
    output_names = ("logits", "classes")

    def metric_functions(self) -> Mapping[str, Callable[[torch.Tensor, torch.Tensor], float]]:
        return {"miou": miou, "pixel_accuracy": pixel_accuracy}

    def loss(self, weight=None, label_smoothing=0.0, device="cpu"):  # noqa: ANN001, ANN201 (the base's signature)
        return mask_loss(weight, label_smoothing, 0.0, device)

    def item_losses(self, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each image's mean cross-entropy over its scored pixels (0 for an image that is all void)."""
        y = targets.long().reshape(len(preds), *preds.shape[2:])
        per_pixel = nn.functional.cross_entropy(preds.float(), y, ignore_index=VOID, reduction="none")
        counted = (y != VOID).flatten(1).sum(1).clamp(min=1)
        return per_pixel.flatten(1).sum(1) / counted

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        return out.softmax(1)

    def average_views(self, outs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack([o.double() for o in outs]).softmax(2).mean(0).clamp_min(1e-30).log().float()

    def decode(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> Prediction:
        """One output (C, H, W) -> Prediction(label = the class map (H, W) as a uint8 array, probability = the mean
        confidence of its pixels, probs = each class's share of the pixels)."""
        classes = list(classes or [])
        p = out.float().softmax(0)
        conf, best = p.max(0)
        shares = class_shares(best, len(classes))
        return Prediction(best.to(torch.uint8).numpy(), float(conf.mean()), {c: float(s) for c, s in zip(classes, shares)})

    def decide(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> torch.Tensor:
        return out.argmax(1)

    def readable(self, targets: torch.Tensor, classes: Sequence[str] | None) -> list[str]:
        """Each mask as its three largest classes and their shares of the pixels ("Road 41%, Sky 20%, ...")."""
        classes = list(classes or [])
        out = []
        for m in targets:
            shares = class_shares(m[m != VOID], len(classes))
            top = shares.argsort(descending=True)[:3]
            out.append(", ".join(f"{classes[int(i)]} {100 * float(shares[i]):.0f}%" for i in top if shares[i] > 0))
        return out

    def columns(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> dict[str, list]:
        """`prediction` (the class with most pixels) and `share_<class>` for every class."""
        classes = list(classes or [])
        best = out.argmax(1) if len(out) else torch.empty(0, 1, 1, dtype=torch.int64)
        shares = torch.stack([class_shares(b, len(classes)) for b in best]) if len(out) else torch.empty(0, len(classes))
        cols: dict[str, list] = {"prediction": [classes[int(s.argmax())] for s in shares]}
        for j, c in enumerate(classes):
            cols[f"share_{c}"] = shares[:, j].tolist()
        return cols

    def balanced_weights(self, targets: torch.Tensor, n_classes: int) -> list[float]:
        """Median-frequency balancing (SegNet's): each class's weight is the median class frequency over its own,
        over the training pixels that are not void; a class without pixels gets 1."""
        counts = torch.bincount(targets.reshape(-1).long(), minlength=256)[:n_classes].double()
        if counts.sum() == 0:
            raise ConfigError("class_weights='balanced': the training masks hold no pixel of any class.")
        freq = counts / counts.sum()
        median = freq[counts > 0].median()
        return [float(median / f) if f > 0 else 1.0 for f in freq]

    def graph_outputs(self, out: torch.Tensor, stats: tuple[float, float] | None) -> tuple[torch.Tensor, ...]:
        """The ONNX graph's outputs: the logits and each pixel's class (int64)."""
        return out, out.argmax(1)


MASK = register_kind(MaskKind())
