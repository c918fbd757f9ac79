"""Epoch and batch progress bars with the running loss (one line per epoch off a terminal)."""

from __future__ import annotations

import time
from typing import Any

from quicklearn.core.progress import console, is_interactive
from quicklearn.train.callbacks.base import Callback

__all__ = ["ProgressCallback"]


def _fmt(key: str, v: Any) -> str:
    if key == "lr":
        return f"{v:.1e}"
    if key == "time_s":
        return f"{v:.1f}"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


class ProgressCallback(Callback):
    """Epoch and batch bars with the running loss on a terminal; one line per epoch otherwise.

    enabled: None = bars on a terminal, epoch lines elsewhere (logs, CI); True = bars; False = silent.
    """

    def __init__(self, enabled: bool | None = None):
        self.silent = enabled is False
        self.enabled = is_interactive() if enabled is None else enabled
        self.bar = None
        self.console = console()

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        self.console = console()
        self.epochs = logs["epochs"]
        self.label = "frozen epoch" if self.learner.frozen_to else "epoch"
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("<"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console)
            self.bar.start()
            title = "training the head (body frozen)" if self.learner.frozen_to else "fine-tuning"
            self.epoch_task = self.bar.add_task(title, total=logs["epochs"], completed=logs.get("start_epoch", 0), info="")
            self.batch_task = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        self.t0 = time.perf_counter()
        if self.bar:
            if self.batch_task is not None:
                self.bar.remove_task(self.batch_task)
            self.batch_task = self.bar.add_task(f"  {self.label} {epoch + 1}/{self.epochs}", total=len(self.learner.dls.train), info="")

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        if self.bar:
            self.bar.update(self.batch_task, advance=1, info=f"loss {logs['smooth_loss']:.4f}")

    def on_test_begin(self, logs: dict[str, Any]) -> None:
        if self.bar:  # a large validation set takes a while: say what is happening after the last batch
            self.bar.update(self.batch_task, info="validating ...")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.silent:
            return
        keys = [k for k in logs if k not in ("epoch", "stage", "phase")]
        line = f"{self.label} {epoch + 1}/{self.epochs}: " + "  ".join(f"{k} {_fmt(k, logs[k])}" for k in keys)
        if self.bar:
            self.bar.update(self.epoch_task, advance=1)
            self.bar.update(self.batch_task, info=f"loss {logs['train_loss']:.4f}")  # validation is over
            self.bar.console.print(line)
        else:
            self.console.print(line, highlight=False)

    def note(self, text: str) -> None:
        """A line for the user between the epoch lines (why training stopped, which weights were kept)."""
        if self.silent:
            return
        (self.bar.console if self.bar else self.console).print(text, highlight=False, markup=False)

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None
