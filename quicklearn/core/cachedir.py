"""Where quicklearn keeps what it can rebuild: imported weights (`weights/`) and decoded images (`images/`)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """quicklearn's cache: $QUICKLEARN_CACHE, else $XDG_CACHE_HOME/quicklearn, else ~/.cache/quicklearn."""
    if os.environ.get("QUICKLEARN_CACHE"):
        return Path(os.environ["QUICKLEARN_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "quicklearn"
    return Path.home() / ".cache" / "quicklearn"
