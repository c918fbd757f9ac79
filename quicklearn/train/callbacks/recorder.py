"""The learning rate of every step, for the training-curves plot (the per-epoch history only samples it once)."""

from __future__ import annotations

import math
from typing import Any

from quicklearn.train.callbacks.base import Callback

__all__ = ["LRRecorder"]


class LRRecorder(Callback):
    """Records, at every batch, the head's rate and the lowest rate among the groups that train.

    `trace` holds (x, head_lr, lowest_lr) with x in epochs across all fits (2.5 = half-way through the third
    epoch), on the same axis as the history rows (epoch k ends at x = k). Lowest is NaN while only the head trains.
    """

    def __init__(self) -> None:
        self.trace: list[tuple[float, float, float]] = []

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        if not self.learner.history:  # a fresh run (a resumed one keeps what it had, if anything)
            self.trace = []

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        learn = self.learner
        n = max(1, len(learn.dls.train))
        x = len(learn.history) + (batch + 1) / n
        groups = learn.opt.param_groups  # type: ignore[union-attr]
        head = groups[-1]["lr"]
        frozen = learn.frozen_to
        trainable = [pg["lr"] for pg in groups if pg["group_idx"] >= frozen and pg["group_idx"] < learn.n_groups - 1]
        self.trace.append((x, head, min(trainable) if trainable else math.nan))
