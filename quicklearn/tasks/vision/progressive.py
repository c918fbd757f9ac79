"""Progressive resizing: train on smaller images first, then at full size (fastai's and EfficientNetV2's trick).

    learn = ql.vision_learner(data, size=224, progressive=0.5)     # 128 px early, 224 px at the end

Early epochs cost less (about start**2 of the pixels); the last ones adapt the model to the full size that
validation, export and prediction use. Validation always runs at full size.
"""

from __future__ import annotations

import logging
from typing import Any

from quicklearn.core.errors import ConfigError
from quicklearn.train.callbacks.base import Callback

__all__ = ["ProgressiveResize", "small_size"]

log = logging.getLogger("quicklearn")


def small_size(size: int, start: float) -> int:
    """`start` of `size`, rounded to a multiple of 32 (what CNN strides like), at least 32 and at most `size`."""
    return min(size, max(32, int(round(size * start / 32)) * 32))


class ProgressiveResize(Callback):
    """Train at `small_size(size, start)` during a frozen fit (fine_tune's head phase) and the first half of an
    unfrozen fit (epochs < epochs // 2), at full size after. Needs a model that takes any input size (CNNs do;
    ViTs with a fixed patch grid do not). Sets the train loader's `size`; the valid loader is never touched."""

    def __init__(self, start: float = 0.5):
        if not 0.0 < float(start) <= 1.0:
            raise ConfigError(f"progressive={start!r}: the starting fraction of the image size must lie in (0, 1], e.g. 0.5.")
        self.start = float(start)

    def _loader(self) -> Any:
        dl = self.learner.dls.train
        if not hasattr(dl, "size") or not hasattr(dl, "pipeline"):
            raise ConfigError("progressive resizing needs image data (a BatchLoader); turn it off for tables and texts.")
        return dl

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        self.epochs = logs["epochs"]
        self.frozen = bool(self.learner.frozen_to)

    def size_for(self, epoch: int) -> int | None:
        """The training size of `epoch` of this fit; None = the full size."""
        full = self._loader().pipeline.size
        small = small_size(full, self.start)
        if small >= full:
            return None
        return small if self.frozen or epoch < self.epochs // 2 else None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        dl = self._loader()
        size = self.size_for(epoch)
        if size != dl.size:
            log.info("progressive resizing: training at %s px", size or dl.pipeline.size)
        dl.size = size

    def on_fit_end(self, logs: dict[str, Any]) -> None:
        self._loader().size = None
