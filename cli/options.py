"""The `quicklearn train` options every task shares, as the recipe keys they set. A task's own options are in its
Task (`options`); the CLI builds the train command from both and refuses an option the chosen task lacks."""

from __future__ import annotations

from typing import Any

from quicklearn.core.errors import ConfigError
from quicklearn.tasks.base import Option

__all__ = ["COMMON", "batch_size"]


def batch_size(value: Any) -> int | str:
    """--bs N or --bs auto."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--bs {value!r}: expected a whole number (or 'auto').") from None


COMMON: tuple[Option, ...] = (
    Option("--data", "data.path", "Folder of images (one sub-folder per class) or a CSV.", short="-d"),
    Option("--target", "data.y", "Target: a CSV column or a regex on the file name.", short="-y"),
    Option("--kind", "data.kind", "single | multi | regression [default: inferred from the target]."),
    Option("--epochs", "fit.epochs", "Unfrozen epochs, after the frozen ones [default: 3].", int),
    Option("--freeze-epochs", "fit.freeze_epochs", "Epochs with the backbone frozen [default: 1].", int),
    Option("--lr", "fit.base_lr", "Base learning rate [default: 2e-3].", float),
    Option("--bs", "training.bs", "Batch size, or 'auto' [default: 32].", parse=batch_size),
    Option("--seed", "training.seed", "Random seed [default: 42].", int),
    Option("--device", "training.device", "auto | cpu | cuda | cuda:1 | mps."),
    Option("--valid-pct", "data.valid_pct", "Validation share when the data has no split [default: 0.2].", float),
    Option("--split", "data.splitter", "auto | random | stratified; tables also column:NAME | time:NAME."),
    Option("--out", "output.out", "Output folder [default: runs/<data>-<time>].", short="-o"),
    Option("--tensorboard", "output.tensorboard",
           'Also log to TensorBoard in <out>/tensorboard (pip install "quicklearn\\[tensorboard]").', bool),
)
