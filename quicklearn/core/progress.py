"""Progress display for long work: a rich bar on a terminal, silence (or one line at the end) when not a TTY."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["console", "is_interactive", "progress"]


def console() -> Console:
    """The console quicklearn reports to: stderr, so that stdout stays clean for tables and JSON."""
    return Console(stderr=True)


def is_interactive() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress(enabled: bool | None = None) -> Iterator[Progress | None]:
    """A rich Progress with bar, count, elapsed and remaining time, or None when not interactive."""
    if enabled is None:
        enabled = is_interactive()
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("<"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console(),
        transient=False,
    ) as bar:
        yield bar
