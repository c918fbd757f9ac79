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

import logging
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    from quicklearn.train.learner import Learner

__all__ = ["Callback", "CallbackList"]

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
            from quicklearn.core.errors import ConfigError

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


