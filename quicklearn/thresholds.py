"""Decision thresholds of multi-label models: checking them, reading them from the command line, fitting them.

A threshold is one float for every label, or a {label: float} dict (labels left out keep the model's value,
0.5 unless set). A label is predicted when its sigmoid probability is above its threshold.

    learn.export("model", thresh=ql.fit_thresholds(learn))   # per-label thresholds that maximize validation F1
    ql.load("model").predict("img.png", thresh={"cat": 0.3})
"""

from __future__ import annotations

import difflib
import numbers
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

import torch

from .errors import ConfigError

if TYPE_CHECKING:
    from .train.learner import Learner

__all__ = ["Thresh", "DEFAULT_THRESH", "check_thresh", "label_thresh", "merge_thresh", "thresh_vector", "parse_thresh",
           "best_thresholds", "fit_thresholds"]

Thresh = Union[float, Mapping[str, float]]
DEFAULT_THRESH = 0.5


def _check_value(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < 1:
        raise ConfigError(f"{what} = {value!r}: a threshold must be a number strictly between 0 and 1, e.g. 0.3.")
    return float(value)


def check_thresh(thresh: Any, classes: Sequence[str], where: str = "thresh") -> float | dict[str, float]:
    """A valid threshold (float, or dict of known labels to floats) for a model with labels `classes`; a
    ConfigError names `where`, the bad value or unknown label, and lists the known labels."""
    if not isinstance(thresh, Mapping):
        return _check_value(thresh, where)
    known = [str(c) for c in classes]
    out: dict[str, float] = {}
    for label, value in thresh.items():
        if str(label) not in known:
            close = difflib.get_close_matches(str(label), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: label {label!r} is not one of the model's labels: {', '.join(known)}.{hint}")
        out[str(label)] = _check_value(value, f"{where}[{label!r}]")
    return out


def label_thresh(thresh: Thresh, label: str) -> float:
    """The threshold of one label: the float, or the dict's value (DEFAULT_THRESH for a label it leaves out)."""
    return float(thresh.get(str(label), DEFAULT_THRESH)) if isinstance(thresh, Mapping) else float(thresh)


def merge_thresh(base: Thresh, override: Thresh | None, classes: Sequence[str]) -> Thresh:
    """`override` on top of `base`: a float replaces every label's, a dict only those of the labels it names."""
    if override is None:
        return base
    if not isinstance(override, Mapping):
        return float(override)
    return {**{str(c): label_thresh(base, c) for c in classes}, **override}


def thresh_vector(thresh: Thresh, classes: Sequence[str]) -> torch.Tensor:
    """Per-label thresholds as a float tensor in the order of `classes` (for metrics on whole batches)."""
    return torch.tensor([label_thresh(thresh, c) for c in classes])


def parse_thresh(text: str, where: str = "--thresh") -> float | dict[str, float]:
    """Command-line thresholds: "0.3" (every label) or "cat=0.3,dog=0.6" (per label; labels may hold spaces)."""
    text = text.strip()
    if "=" not in text:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{where} {text!r}: give a number (0.3) or label=number pairs (cat=0.3,dog=0.6).") from None
    out: dict[str, float] = {}
    for part in (p for p in text.split(",") if p.strip()):
        label, sep, value = part.rpartition("=")
        try:
            if not sep or not label.strip():
                raise ValueError
            out[label.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"{where} {text!r}: {part.strip()!r} is not label=number; write e.g. cat=0.3,dog=0.6.") from None
    return out


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
