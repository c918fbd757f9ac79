"""The resumable checkpoint, written after every epoch."""

from __future__ import annotations

from typing import Any

from quicklearn.train.callbacks.base import Callback

__all__ = ["Checkpoint"]


class Checkpoint(Callback):
    """After every epoch, write a resumable checkpoint (model, optimizer, stage, epoch, history, RNG) atomically."""

    order = 100

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.learner.save_checkpoint(epoch)
