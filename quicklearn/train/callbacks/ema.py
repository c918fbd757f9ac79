"""EMA of weights: an exponential moving average of the model's parameters, updated after every optimizer step.

    learn = ql.vision_learner(data, ema=0.998)          # or cbs=[ql.EMA(0.998)]

Validation during training sees the averaged weights, and at the end of each fit the model keeps them, so
`export` writes them. Buffers (BatchNorm statistics) are not averaged: the live ones are used, as timm does.
It runs before every other callback (order -20): they all see the averaged weights from on_test_begin on, and
SaveBest keeps (and at fit end restores) the best of the averaged weights, which is what export then writes.

Not timm's `ModelEmaV3`, on purpose: that keeps a second copy of the module and warms up with
1 - (1 + step / gamma) ** -power, while this swaps the average into the model being trained (so DDP and
torch.compile wrappers see it unchanged), uses TensorFlow's (1 + n) / (10 + n) warm-up that
tests/test_training_options.py pins in closed form, and lives in the Learner's checkpoint as a callback state.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from quicklearn.core.errors import ConfigError
from quicklearn.train.callbacks.base import Callback

__all__ = ["EMA"]

log = logging.getLogger("quicklearn")


class EMA(Callback):
    """After each optimizer step (not each batch: grad_accum batches share one step), ema = d * ema + (1 - d) * w.

    warmup: d = min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's ExponentialMovingAverage rule), so a
    short fine-tune is not dominated by the starting weights; warmup=False uses `decay` from the first step.
    The average carries over from one fit to the next (fine_tune's frozen and unfrozen phases) and is saved in
    the Learner's checkpoint, so a resumed run continues it. Frozen parameters do not move, nor does their average.
    """

    order = -20  # first in every hook: see the module docstring and train/callbacks/base.py

    def __init__(self, decay: float = 0.998, warmup: bool = True):
        if not 0.0 < float(decay) < 1.0:
            raise ConfigError(f"ema={decay!r}: the decay must lie in (0, 1), e.g. 0.998 (closer to 1 = a longer average).")
        self.decay, self.warmup = float(decay), warmup
        self.shadow: list[torch.Tensor] | None = None
        self.updates = 0
        self._live: list[torch.Tensor] | None = None
        self._hook: Any = None

    def current_decay(self) -> float:
        """The decay the next update uses."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay

    def _params(self) -> list[torch.nn.Parameter]:
        return list(self.learner.model.parameters())

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current parameters into the average (called after every optimizer step)."""
        params = self._params()
        if self.shadow is None:
            self.shadow = [p.detach().clone() for p in params]
        d = self.current_decay()
        for s, p in zip(self.shadow, params):
            if p.is_floating_point():
                s.lerp_(p.detach(), 1.0 - d)  # s + (1 - d)(p - s) = d * s + (1 - d) * p
            else:
                s.copy_(p)
        self.updates += 1

    def on_fit_begin(self, logs: dict[str, Any]) -> None:
        params = self._params()
        if self.shadow is not None and len(self.shadow) != len(params):
            raise ConfigError(f"the EMA state has {len(self.shadow)} tensors but the model has {len(params)} parameters: "
                              "resume with the same architecture (or start again with --overwrite), and use one EMA per model.")
        if self.shadow is None:
            self.shadow = [p.detach().clone() for p in params]
        self._hook = self.learner.opt.register_step_post_hook(lambda opt, args, kwargs: self.update())  # type: ignore[union-attr]

    @torch.no_grad()
    def _swap(self) -> None:
        for s, p in zip(self.shadow or [], self._params()):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)

    def on_test_begin(self, logs: dict[str, Any]) -> None:
        if self.shadow is not None and self._live is None:
            self._swap()  # the model now holds the average, the shadow list the live weights
            self._live = self.shadow

    def on_test_end(self, logs: dict[str, Any]) -> None:
        if self._live is not None:
            self._swap()
            self._live = None

    @torch.no_grad()
    def on_fit_end(self, logs: dict[str, Any]) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.on_test_end(logs)  # in case validation was interrupted
        if self.shadow is not None and self.updates:
            for s, p in zip(self.shadow, self._params()):
                p.copy_(s)
            log.info("the model keeps the EMA weights (decay %.4g, %d updates)", self.decay, self.updates)

    # ---- checkpoint state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"shadow": list(self.shadow or []), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the average a checkpoint saved (its tensors are already on the Learner's device)."""
        self.shadow = [s.clone() for s in state.get("shadow") or []] or None
        self.updates = int(state.get("updates", 0))
