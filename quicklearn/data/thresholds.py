"""Decision thresholds of multi-label models: checking them, reading them from the command line, fitting them.

A threshold is one float for every label, or a {label: float} dict (labels left out keep the model's value,
0.5 unless set). A label is predicted when its sigmoid probability is above its threshold.

    learn.export("model", thresh=ql.fit_thresholds(learn))   # per-label thresholds that maximize validation F1
    ql.load("model").predict("img.png", thresh={"cat": 0.3})
"""

from __future__ import annotations

import difflib
import numbers
from typing import Any, Mapping, Sequence, Union

import torch

from quicklearn.core.errors import ConfigError

__all__ = ["Thresh", "DEFAULT_THRESH", "check_thresh", "label_thresh", "merge_thresh", "thresh_vector", "parse_thresh"]

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


