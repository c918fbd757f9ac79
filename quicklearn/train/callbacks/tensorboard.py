"""TensorBoard logging as a callback (`--tensorboard`): the same numbers as history.csv, live, as event files.

    learn = ql.vision_learner("data/", cbs=[TensorBoardLogger("runs/tb")])
    # tensorboard --logdir runs/tb
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quicklearn.core.errors import ConfigError
from quicklearn.train.callbacks.base import Callback

__all__ = ["TensorBoardLogger"]

_NOT_SCALARS = {"stage", "phase", "epoch", "lr"}  # lr: logged every `every` steps instead


class TensorBoardLogger(Callback):
    """Writes the smoothed training loss and the learning rate every `every` steps, and every epoch's losses and
    metrics, under `log_dir`. Steps count across the frozen and unfrozen phases, so the curves join up."""

    def __init__(self, log_dir: str | Path, every: int = 10):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package
            raise ConfigError('TensorBoard logging needs the tensorboard package: pip install "quicklearn[tensorboard]".') from None
        self.log_dir, self.every = Path(log_dir), max(1, int(every))
        self._writer_cls = SummaryWriter
        self.writer = None
        self.step = 0

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        if self.writer is None:
            self.writer = self._writer_cls(log_dir=str(self.log_dir))
        if not self.learner.history:
            self.step = 0
        else:  # resumed or a second fit: continue after the steps already taken
            self.step = max(self.step, len(self.learner.history) * len(self.learner.dls.train))

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        self.step += 1
        if self.step % self.every == 0:
            self.writer.add_scalar("train/smooth_loss", logs["smooth_loss"], self.step)  # type: ignore[union-attr]
            self.writer.add_scalar("train/lr", self.learner.opt.param_groups[-1]["lr"], self.step)  # type: ignore[union-attr]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        n = len(self.learner.history)  # epochs so far, across phases
        for key, value in logs.items():
            if key in _NOT_SCALARS or not isinstance(value, (int, float)):
                continue
            section = "time" if key == "time_s" else "train" if key == "train_loss" else "valid"
            self.writer.add_scalar(f"{section}/{key}", value, n)  # type: ignore[union-attr]
        self.writer.flush()  # type: ignore[union-attr]

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Close the event file (the Learner's run calls it at the end of training)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
