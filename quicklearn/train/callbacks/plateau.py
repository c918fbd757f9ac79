"""ReduceLROnPlateau: scale the learning rate down when the monitored metric stops improving (Keras' callback).

    learn = ql.vision_learner(data, reduce_lr_on_plateau=True)     # or cbs=[ql.ReduceLROnPlateau(patience=2)]

It multiplies `learner.lr_scale`, which scales whatever schedule runs (one-cycle, flat-cos, constant); the
Learner resets the scale to 1 at the start of every fit.
"""

from __future__ import annotations

import logging
from typing import Any

from quicklearn.core.errors import ConfigError
from quicklearn.train.callbacks.monitor import _Monitor

__all__ = ["ReduceLROnPlateau"]

log = logging.getLogger("quicklearn")


class ReduceLROnPlateau(_Monitor):
    """After `patience` epochs in a row without improvement of `monitor` (default: the Learner's), multiply the
    learning rate by `factor`, never below `min_scale` times the schedule's rate."""

    def __init__(self, monitor: str | None = None, factor: float = 0.5, patience: int = 1, min_scale: float = 0.01,
                 min_delta: float = 0.0):
        super().__init__(monitor, min_delta)
        if not 0.0 < factor < 1.0:
            raise ConfigError(f"ReduceLROnPlateau factor={factor!r}: must lie in (0, 1), e.g. 0.5.")
        if int(patience) < 1:
            raise ConfigError(f"ReduceLROnPlateau patience={patience!r}: must be >= 1 epoch.")
        if not 0.0 <= min_scale <= 1.0:
            raise ConfigError(f"ReduceLROnPlateau min_scale={min_scale!r}: must lie in [0, 1].")
        self.factor, self.patience, self.min_scale = factor, int(patience), min_scale

    def state_dict(self) -> dict[str, Any]:
        return {}  # rebuilt from the history instead (on_fit_begin), which the checkpoint already holds

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        self._setup(logs)
        self.wait = 0
        # A resumed fit replays its finished epochs from the history, so it continues with the same scale.
        stage = logs.get("stage")
        for row in self.learner.history:
            if stage is not None and row.get("stage") == stage:
                self._observe(row, quiet=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self._observe(logs)

    def _observe(self, logs: dict[str, Any], quiet: bool = False) -> None:
        value = logs.get(self.monitor)
        if value is None:
            return
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            old = self.learner.lr_scale
            self.learner.lr_scale = max(old * self.factor, self.min_scale)
            self.wait = 0
            if not quiet and self.learner.lr_scale < old:
                log.info("%s did not improve for %d epoch(s): learning rate x%.3g", self.monitor, self.patience, self.learner.lr_scale)
