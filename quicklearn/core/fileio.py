"""Atomic file writes: write to a temporary name in the same folder, then rename into place.

A kill at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from quicklearn.core.faults import kill_point

__all__ = ["atomic_path", "write_json", "write_text", "is_temp_file", "remove_temp_files", "sha256_file"]

TEMP_SUFFIX = ".tmp"  # atomic_path's temporary files are ".<name>.<random>.tmp" beside the target


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the permissions open() would
        kill_point(f"rename:{path.name}")  # test hook (quicklearn/core/faults.py): a crash between write and rename
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def is_temp_file(path: str | Path) -> bool:
    """True for a temporary file of `atomic_path`: what a killed process leaves behind instead of a half-written file."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and name.count(".") >= 3


def remove_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed run left in `folder` (not in sub-folders); returns what was removed."""
    removed = [p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file() and is_temp_file(p)]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks (weights provenance, model-folder checksums)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
