"""Training hooks: a callback is a class with no-op methods; the Learner calls them through one `CallbackList`.

Hooks (Keras 3's small protocol): on_fit_begin/end, on_epoch_begin/end, on_batch_begin/end, and
on_test_begin/end around each epoch's validation.
`logs` is a plain dict: batch logs carry `loss`, epoch logs carry `train_loss`, `valid_loss` and the metrics.
A callback stops training by setting `learner.stop_training = True`.

Order (fastai's `order`): every hook runs the callbacks by ascending `order`, and in the order given where two
are equal. Where a built-in runs, and why:

    EMA           -20  swaps the averaged weights in before any other callback sees the model validation sees, and
                       at the end of a fit puts them in the model before SaveBest restores the best of them
    (default)       0  user callbacks, ProgressCallback, LRRecorder, EarlyStopping, SaveBest, ReduceLROnPlateau,
                       ProgressiveResize, TensorBoardLogger
    HistoryLogger  90  writes the epoch's row once every callback before it has seen it
    Checkpoint    100  last: saves the state every other callback has updated for this epoch
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..distributed import is_main
from ..fileio import write_json, write_text
from ..progress import console, is_interactive

if TYPE_CHECKING:
    from .learner import Learner

__all__ = ["Callback", "CallbackList", "ProgressCallback", "HistoryLogger", "EarlyStopping", "SaveBest", "Checkpoint"]

log = logging.getLogger("quicklearn")


class Callback:
    """Base class: override the hooks you need. `self.learner` is set before on_fit_begin.
    `order`: where this callback runs in every hook, lower first (see the table above)."""

    learner: "Learner"
    order: int = 0

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


class CallbackList:
    """The Learner's callbacks, called by ascending `order` (stable for equal orders) from one place per hook.

        cbs = CallbackList([SaveBest(), EMA(0.998)])   # EMA (order -20) runs first in every hook
        cbs.append(EarlyStopping())
    """

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self._callbacks: list[Callback] = []
        self.extend(callbacks)

    def append(self, cb: Callback) -> None:
        if not isinstance(cb, Callback):
            from ..errors import ConfigError

            raise ConfigError(f"callbacks must be quicklearn Callback objects; got {type(cb).__name__}.")
        self._callbacks.append(cb)

    def extend(self, cbs: Iterable[Callback]) -> None:
        for cb in cbs:
            self.append(cb)

    def remove(self, cb: Callback) -> None:
        self._callbacks.remove(cb)

    def __iter__(self) -> Iterator[Callback]:
        return iter(sorted(self._callbacks, key=lambda cb: cb.order))  # sorted() is stable

    def __len__(self) -> int:
        return len(self._callbacks)

    def set_learner(self, learner: "Learner") -> None:
        for cb in self:
            cb.set_learner(learner)

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        for cb in self:
            cb.on_fit_begin(logs)

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        for cb in self:
            cb.on_fit_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        for cb in self:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        for cb in self:
            cb.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch: int, logs: dict[str, Any]) -> None:
        for cb in self:
            cb.on_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        for cb in self:
            cb.on_batch_end(batch, logs)

    def on_test_begin(self, logs: dict[str, Any]) -> None:
        for cb in self:
            cb.on_test_begin(logs)

    def on_test_end(self, logs: dict[str, Any]) -> None:
        for cb in self:
            cb.on_test_end(logs)

    def keyed(self) -> dict[str, Callback]:
        """Callbacks by class name (with #2, #3 for repeats): how their checkpoint state is found again."""
        keyed: dict[str, Callback] = {}
        for cb in self:
            name = type(cb).__name__
            key, k = name, 1
            while key in keyed:
                k += 1
                key = f"{name}#{k}"
            keyed[key] = cb
        return keyed


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

    order = 90

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
                log.info("early stopping: %s did not improve for %d epochs", self.monitor, self.patience)
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
        self._candidate: dict[str, Any] | None = None

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        state = self._resumed
        self.state = state.get("weights") if self._setup(logs) and state else None
        self._candidate = None

    def on_test_begin(self, logs: dict[str, Any]) -> None:
        # what validation is about to score (EMA has swapped its average in by now): kept if it scores best
        self._candidate = {k: v.detach().clone() for k, v in self.learner.model.state_dict().items()}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = logs.get(self.monitor)
        if value is not None and self._improved(value):
            self.best = value
            self.state = self._candidate
        self._candidate = None

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        if self.state is not None:
            self.learner.model.load_state_dict(self.state)
            log.info("restored the best weights (%s = %.4f)", self.monitor, self.best)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "weights": self.state}


class Checkpoint(Callback):
    """After every epoch, write a resumable checkpoint (model, optimizer, stage, epoch, history, RNG) atomically."""

    order = 100

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.learner.save_checkpoint(epoch)
