"""Metrics computed on the whole validation set at once (predictions and targets concatenated).

Each metric is a function `(preds, targets) -> float`; `preds` are raw model outputs (logits) except for
regression, where they are in the target's original units.
"""

from __future__ import annotations

import difflib
from typing import Callable

import torch

from quicklearn.core.errors import ConfigError
from quicklearn.data.kinds import KINDS, TargetKind, get_kind

__all__ = ["METRICS", "KIND_METRICS", "get_metric", "default_metrics", "GREATER_IS_BETTER", "greater_is_better", "accuracy", "error_rate", "top_k_accuracy", "f1_macro", "auroc", "accuracy_multi", "f1_multi", "rmse", "mae"]

Metric = Callable[[torch.Tensor, torch.Tensor], float]


def accuracy(preds: torch.Tensor, y: torch.Tensor) -> float:
    return (preds.argmax(1) == y).float().mean().item()


def error_rate(preds: torch.Tensor, y: torch.Tensor) -> float:
    return 1.0 - accuracy(preds, y)


def top_k_accuracy(preds: torch.Tensor, y: torch.Tensor, k: int = 5) -> float:
    k = min(k, preds.shape[1])
    return (preds.topk(k, dim=1).indices == y[:, None]).any(1).float().mean().item()


def _f1(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    denom = 2 * tp + fp + fn
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1e-12), torch.zeros_like(tp))


def f1_macro(preds: torch.Tensor, y: torch.Tensor) -> float:
    n = preds.shape[1]
    p = preds.argmax(1)
    onehot_p, onehot_y = torch.nn.functional.one_hot(p, n).float(), torch.nn.functional.one_hot(y, n).float()
    tp = (onehot_p * onehot_y).sum(0)
    return _f1(tp, onehot_p.sum(0) - tp, onehot_y.sum(0) - tp).mean().item()


def _binary_auroc(score: torch.Tensor, pos: torch.Tensor) -> float | None:
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = torch.empty(len(score), dtype=torch.float64)
    order = score.double().argsort()
    ranks[order] = torch.arange(1, len(score) + 1, dtype=torch.float64)
    # average ranks of ties
    s = score.double()[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        if j > i:
            ranks[order[i : j + 1]] = (i + j + 2) / 2
        i = j + 1
    return ((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def auroc(preds: torch.Tensor, y: torch.Tensor) -> float:
    """One-vs-rest ROC AUC averaged over classes present in both states (binary: the positive class)."""
    probs = preds.float().softmax(1)
    classes = [1] if preds.shape[1] == 2 else range(preds.shape[1])
    vals = [v for c in classes if (v := _binary_auroc(probs[:, c], y == c)) is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def accuracy_multi(preds: torch.Tensor, y: torch.Tensor, thresh: float = 0.5) -> float:
    return ((preds.sigmoid() > thresh) == (y > 0.5)).float().mean().item()


def f1_multi(preds: torch.Tensor, y: torch.Tensor, thresh: float = 0.5) -> float:
    """Sample-averaged F1 over labels."""
    p, t = (preds.sigmoid() > thresh).float(), (y > 0.5).float()
    tp = (p * t).sum(1)
    return _f1(tp, p.sum(1) - tp, t.sum(1) - tp).mean().item()


def rmse(preds: torch.Tensor, y: torch.Tensor) -> float:
    return (preds.flatten() - y.flatten()).pow(2).mean().sqrt().item()


def mae(preds: torch.Tensor, y: torch.Tensor) -> float:
    return (preds.flatten() - y.flatten()).abs().mean().item()


METRICS: dict[str, Metric] = {
    "accuracy": accuracy, "error_rate": error_rate, "top5_accuracy": top_k_accuracy, "f1_macro": f1_macro,
    "auroc": auroc, "accuracy_multi": accuracy_multi, "f1": f1_multi, "rmse": rmse, "mae": mae,
}
GREATER_IS_BETTER = {"accuracy", "top5_accuracy", "f1_macro", "auroc", "accuracy_multi", "f1"}


def get_metric(name: str, kind: "str | TargetKind | None" = None) -> Metric:
    """The metric called `name`: the target kind's own (a task's kind may define its metrics, see
    TargetKind.metric_functions), else the shared table's."""
    own = dict(get_kind(kind).metric_functions()) if kind is not None else {}
    if name in own:
        return own[name]
    if name in METRICS:
        return METRICS[name]
    known = sorted({*METRICS, *own})
    close = difflib.get_close_matches(name, known, n=1)
    raise ConfigError(f"unknown metric {name!r}.{' Did you mean ' + repr(close[0]) + '?' if close else ''} Known: {known}.")


def greater_is_better(name: str, kind: "str | TargetKind | None" = None) -> bool:
    """Whether metric `name` grows as the model improves (a kind's own metrics say so themselves)."""
    return name in GREATER_IS_BETTER or (kind is not None and name in get_kind(kind).greater_is_better)


# which metrics make sense for which kind of target
KIND_METRICS = {k.name: set(k.metrics) for k in KINDS.values()}  # the metrics each target kind allows


def default_metrics(kind: str) -> list[str]:
    """The metrics a target kind reports when none are asked for."""
    return list(get_kind(kind).default_metrics)
