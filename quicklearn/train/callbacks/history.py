"""history.csv and history.json, written atomically after every epoch."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from quicklearn.core.distributed import is_main
from quicklearn.core.fileio import write_json, write_text
from quicklearn.train.callbacks.base import Callback

__all__ = ["HistoryLogger"]


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
