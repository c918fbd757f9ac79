"""Callbacks that watch one metric: early stopping and keeping the best weights."""

from __future__ import annotations

import math
from typing import Any

from quicklearn.train.callbacks.base import Callback

__all__ = ["EarlyStopping", "SaveBest"]


class _Monitor(Callback):
    """Watches one metric of the epoch logs. Its state (the best value and what depends on it) is saved in the
    checkpoint and taken back when a run resumes within the same fit; a new fit starts afresh."""

    def __init__(self, monitor: str | None = None, min_delta: float = 0.0):
        self.monitor, self.min_delta = monitor, min_delta
        self._resumed: dict[str, Any] | None = None

    def _setup(self, logs: dict[str, Any]) -> bool:
        """Reset for a new fit; True when a checkpoint's state of this very fit was taken back instead."""
        self.monitor = self.monitor or self.learner.monitor
        self.greater = self.learner.greater_is_better(self.monitor)
        self.best = -math.inf if self.greater else math.inf
        self.stage = logs.get("stage")
        state, self._resumed = self._resumed, None
        if state is not None and state.get("stage") == self.stage and state.get("monitor") == self.monitor:
            self.best = state["best"]
            return True
        return False

    def _improved(self, value: float) -> bool:
        return value > self.best + self.min_delta if self.greater else value < self.best - self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"stage": getattr(self, "stage", None), "monitor": self.monitor, "best": getattr(self, "best", None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resumed = dict(state)


class EarlyStopping(_Monitor):
    """Stop when the monitored metric has not improved for `patience` epochs."""

    def __init__(self, monitor: str | None = None, patience: int = 3, min_delta: float = 0.0):
        super().__init__(monitor, min_delta)
        self.patience = patience
        self.wait = 0

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        state = self._resumed
        self.wait = int(state.get("wait", 0)) if self._setup(logs) and state else 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = logs.get(self.monitor)
        if value is None:
            return
        if self._improved(value):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.learner.report(f"early stopping after epoch {epoch + 1}: {self.monitor} has not improved for "
                                    f"{self.patience} epochs")
                self.learner.stop_training = True

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait": self.wait}


class SaveBest(_Monitor):
    """Keep the weights of the best epoch by the monitored metric; restore them at the end of fit.

    The weights kept are the ones validation scored: with EMA (which runs first) the averaged weights, so the
    best averaged weights are what the model holds after fit and what `export` writes."""

    def __init__(self, monitor: str | None = None, min_delta: float = 0.0):
        super().__init__(monitor, min_delta)
        self.state: dict[str, Any] | None = None
        self.best_epoch: int | None = None  # 1-based, as the epoch lines count
        self._candidate: dict[str, Any] | None = None

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        state = self._resumed
        resumed = self._setup(logs) and state
        self.state = state.get("weights") if resumed else None
        self.best_epoch = state.get("epoch") if resumed else None
        self._candidate = None

    def on_test_begin(self, logs: dict[str, Any]) -> None:
        # what validation is about to score (EMA has swapped its average in by now): kept if it scores best
        self._candidate = {k: v.detach().clone() for k, v in self.learner.model.state_dict().items()}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = logs.get(self.monitor)
        if value is not None and self._improved(value):
            self.best, self.best_epoch = value, epoch + 1
            self.state = self._candidate
        self._candidate = None

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        if self.state is not None:
            self.learner.model.load_state_dict(self.state)
            which = f"epoch {self.best_epoch}" if self.best_epoch else "the best epoch"  # a checkpoint written before SaveBest kept it
            self.learner.report(f"kept the weights of {which}, the best by {self.monitor} ({self.best:.4f})")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "weights": self.state, "epoch": self.best_epoch}
