"""One family of user-facing errors.

Every error a user can fix is a `QuicklearnError`: its message names the file, key or column at fault
and says what to do. The CLI catches this family once and prints it as one line (no traceback unless
``--debug``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["QuicklearnError", "DataError", "ConfigError", "WeightsError", "TrainingError"]


class QuicklearnError(Exception):
    """Base class of every error quicklearn raises for something the user can fix."""


class DataError(QuicklearnError):
    """The data (folder, file, CSV, labels, split) cannot be used as given."""


class ConfigError(QuicklearnError):
    """A recipe, option or argument is invalid."""


class WeightsError(QuicklearnError):
    """Pretrained weights cannot be found, read or mapped onto the architecture."""


class TrainingError(QuicklearnError):
    """Training cannot go on (e.g. the loss became NaN); the message says why and what to try."""
