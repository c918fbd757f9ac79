"""Schedules as small functions of training progress `pos` in [0, 1] (fastai's idea), composed per phase.

    one_cycle(pct_start=0.25, div=25, final_div=1e5)(pos) -> fraction of max_lr
    momentum_cycle(0.95, 0.85, 0.95, pct_start=0.25)(pos) -> beta1
"""

from __future__ import annotations

import math
from typing import Callable

__all__ = ["Schedule", "cos_anneal", "one_cycle", "momentum_cycle", "flat_cos", "constant"]

Schedule = Callable[[float], float]


def cos_anneal(start: float, end: float, pos: float) -> float:
    """Cosine from `start` (pos=0) to `end` (pos=1)."""
    return end + (start - end) / 2 * (1 + math.cos(math.pi * min(max(pos, 0.0), 1.0)))


def _two_phase(start: float, middle: float, end: float, pct_start: float) -> Schedule:
    def f(pos: float) -> float:
        if pos < pct_start:
            return cos_anneal(start, middle, pos / pct_start)
        return cos_anneal(middle, end, (pos - pct_start) / max(1e-12, 1 - pct_start))

    return f


def one_cycle(pct_start: float = 0.25, div: float = 25.0, final_div: float = 1e5) -> Schedule:
    """Warm up from max/div to max over `pct_start` of training, then anneal to max/final_div (as multipliers of max)."""
    return _two_phase(1 / div, 1.0, 1 / final_div, pct_start)


def momentum_cycle(high: float = 0.95, low: float = 0.85, end: float = 0.95, pct_start: float = 0.25) -> Schedule:
    """Momentum (Adam's beta1) moves opposite to the lr: high -> low at the lr peak -> back up."""
    return _two_phase(high, low, end, pct_start)


def flat_cos(pct_start: float = 0.75) -> Schedule:
    """Flat at max for `pct_start` of training, then cosine to zero."""
    return lambda pos: 1.0 if pos < pct_start else cos_anneal(1.0, 0.0, (pos - pct_start) / max(1e-12, 1 - pct_start))


def constant(value: float = 1.0) -> Schedule:
    return lambda pos: value
