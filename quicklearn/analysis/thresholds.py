"""Fitting multi-label thresholds on the validation set: per label, the one that maximizes F1.

    learn.export("model", thresh=ql.fit_thresholds(learn))"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch

from quicklearn.core.errors import ConfigError
from quicklearn.data.thresholds import DEFAULT_THRESH

if TYPE_CHECKING:
    from quicklearn.train.learner import Learner

__all__ = ["best_thresholds", "fit_thresholds"]


def best_thresholds(probs: torch.Tensor, targets: torch.Tensor, classes: Sequence[str],
                    grid: Sequence[float] | None = None) -> dict[str, float]:
    """For each label, the threshold of `grid` (default 0.05, 0.06, ..., 0.95) with the best F1 of that label on
    (probs, targets); among equally good thresholds the median one, so it sits mid-way between the two scores it
    separates. A label with no positive example keeps 0.5: there is nothing to fit."""
    g = torch.tensor(list(grid) if grid is not None else [round(0.05 + 0.01 * i, 2) for i in range(91)], dtype=torch.float64)
    if len(g) == 0 or not bool(((g > 0) & (g < 1)).all()):
        raise ConfigError(f"fit_thresholds: grid values must lie strictly between 0 and 1, got {g.tolist()}.")
    if probs.ndim != 2 or probs.shape != targets.shape or probs.shape[1] != len(classes):
        raise ConfigError(f"fit_thresholds: probabilities {tuple(probs.shape)} and targets {tuple(targets.shape)} "
                          f"must both be (n, {len(classes)}), one column per label.")
    out: dict[str, float] = {}
    for j, label in enumerate(classes):
        pos = targets[:, j] > 0.5
        if not pos.any():
            out[str(label)] = DEFAULT_THRESH
            continue
        pred = probs[:, j].double()[None, :] > g[:, None]  # (grid, n)
        tp = (pred & pos).sum(1).double()
        f1 = 2 * tp / (pred.sum(1) + pos.sum())  # 2tp / (2tp + fp + fn); the denominator is > 0 (there are positives)
        best = g[f1 >= f1.max() - 1e-12]
        out[str(label)] = round(float(best[(len(best) - 1) // 2]), 4)
    return out


def fit_thresholds(learn: "Learner", dl: Any = None, *, tta: bool = False,
                   grid: Sequence[float] | None = None) -> dict[str, float]:
    """Per-label thresholds that maximize each label's F1 on the validation set (or `dl`), from the learner's
    predictions (`tta=True`: its TTA predictions). Pass the result to `learn.export(path, thresh=...)`."""
    if learn.kind != "multi":
        raise ConfigError(f"fit_thresholds is for multi-label models; this learner's target is {learn.kind}.")
    preds, targets = learn.tta(dl) if tta else learn.get_preds(dl)
    return best_thresholds(preds.float().sigmoid(), targets.float(), list(learn.dls.vocab.classes), grid)
