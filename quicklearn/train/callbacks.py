"""Training hooks: a callback is a class with no-op methods; the Learner's loop calls them in one place.

Hooks (Keras 3's small protocol): on_fit_begin/end, on_epoch_begin/end, on_batch_begin/end, and
on_test_begin/end around each epoch's validation.
`logs` is a plain dict: batch logs carry `loss`, epoch logs carry `train_loss`, `valid_loss` and the metrics.
A callback stops training by setting `learner.stop_training = True`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..distributed import is_main
from ..fileio import write_json, write_text
from ..progress import console, is_interactive

if TYPE_CHECKING:
    from .learner import Learner

__all__ = ["Callback", "ProgressCallback", "HistoryLogger", "EarlyStopping", "SaveBest", "Checkpoint"]

log = logging.getLogger("quicklearn")


class Callback:
    """Base class: override the hooks you need. `self.learner` is set before on_fit_begin."""

    learner: "Learner"

    def set_learner(self, learner: "Learner") -> None:
        self.learner = learner

    def on_fit_begin(self, logs: dict[str, Any]) -> None: ...
    def on_fit_end(self, logs: dict[str, Any]) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None: ...
    def on_batch_begin(self, batch: int, logs: dict[str, Any]) -> None: ...
    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None: ...
    def on_test_begin(self, logs: dict[str, Any]) -> None: ...
    def on_test_end(self, logs: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this callback; saved in the Learner's checkpoint when not empty."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned (called before on_fit_begin of the resumed fit)."""


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

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        self.console = console()
        self.epochs = logs["epochs"]
        self.label = "frozen epoch" if self.learner.frozen_to else "epoch"
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None


class HistoryLogger(Callback):
    """Writes `history.csv` and `history.json` in `folder` after every epoch (atomically)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if not is_main():  # data-parallel: rank 0 writes; every rank's history is the same
            return
        history = self.learner.history
        write_json(self.folder / "history.json", history)
        keys: list[str] = []
        for row in history:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        write_text(self.folder / "history.csv", buf.getvalue())


class _Monitor(Callback):
    def __init__(self, monitor: str | None = None, min_delta: float = 0.0):
        self.monitor, self.min_delta = monitor, min_delta

    def _setup(self) -> None:
        self.monitor = self.monitor or self.learner.monitor
        self.greater = self.learner.greater_is_better(self.monitor)
        self.best = -math.inf if self.greater else math.inf

    def _improved(self, value: float) -> bool:
        return value > self.best + self.min_delta if self.greater else value < self.best - self.min_delta


class EarlyStopping(_Monitor):
    """Stop when the monitored metric has not improved for `patience` epochs."""

    def __init__(self, monitor: str | None = None, patience: int = 3, min_delta: float = 0.0):
        super().__init__(monitor, min_delta)
        self.patience = patience

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        self._setup()
        self.wait = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = logs.get(self.monitor)
        if value is None:
            return
        if self._improved(value):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                log.info("early stopping: %s did not improve for %d epochs", self.monitor, self.patience)
                self.learner.stop_training = True


class SaveBest(_Monitor):
    """Keep the weights of the best epoch by the monitored metric; restore them at the end of fit."""

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        self._setup()
        self.state = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = logs.get(self.monitor)
        if value is not None and self._improved(value):
            self.best = value
            self.state = {k: v.detach().clone() for k, v in self.learner.model.state_dict().items()}

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        if self.state is not None:
            self.learner.model.load_state_dict(self.state)
            log.info("restored the best weights (%s = %.4f)", self.monitor, self.best)


class Checkpoint(Callback):
    """After every epoch, write a resumable checkpoint (model, optimizer, stage, epoch, history, RNG) atomically."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.learner.save_checkpoint(epoch)
