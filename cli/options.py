"""The `quicklearn train` options every task shares, as the recipe keys they set. A task's own options are in its
Task (`options`); the CLI builds the train command from both and refuses an option the chosen task lacks."""

from __future__ import annotations

from typing import Any

from quicklearn.core.errors import ConfigError
from quicklearn.tasks.base import Option

__all__ = ["COMMON", "batch_size", "class_weights"]


def batch_size(value: Any) -> int | str:
    """--bs N or --bs auto."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--bs {value!r}: expected a whole number (or 'auto').") from None


def class_weights(value: Any) -> list[float] | str:
    """--class-weights balanced, or one weight per class: --class-weights 1,3.5."""
    text = str(value).strip()
    if text.lower() == "balanced":
        return "balanced"
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--class-weights {value!r}: use balanced, or one number per class in the order of the "
                          "classes (sorted), e.g. 1,3.5.") from None


COMMON: tuple[Option, ...] = (
    Option("--data", "data.path", "Folder of images (one sub-folder per class) or a CSV.", short="-d"),
    Option("--target", "data.y", "Target: a CSV column or a regex on the file name.", short="-y"),
    Option("--kind", "data.kind", "single | multi | regression (inferred from the target: numbers that are not all "
           "whole, or more than 20 whole values, are a regression)."),
    Option("--epochs", "fit.epochs", "Unfrozen epochs, after the frozen ones.", int),
    Option("--freeze-epochs", "fit.freeze_epochs", "Epochs with the body frozen (the head alone trains).", int),
    Option("--lr", "fit.base_lr", "Base learning rate.", float),
    Option("--bs", "training.bs", "Batch size, or 'auto'.", parse=batch_size),
    Option("--class-weights", "training.class_weights", "Classifiers: balanced, or one weight per class (1,3.5).",
           parse=class_weights),
    Option("--seed", "training.seed", "Random seed.", int),
    Option("--device", "training.device", "auto | cpu | cuda | cuda:1 | mps."),
    Option("--valid-pct", "data.valid_pct", "Validation share when the data has no split.", float),
    Option("--split", "data.splitter", "auto | random | stratified; tables and texts also column:NAME | time:NAME."),
    Option("--out", "output.out", "Output folder (runs/<data>-<time> when left out).", short="-o"),
    Option("--tensorboard", "output.tensorboard",
           'Also log to TensorBoard in <out>/tensorboard (pip install "quicklearn[tensorboard]").', bool),
)
