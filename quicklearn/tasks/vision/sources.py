"""Image items: the image files under a folder, or the rows of a CSV/DataFrame with an image-path column."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from quicklearn.core.errors import DataError
from quicklearn.core.progress import progress
from quicklearn.data.sources import ItemSource, read_table
from quicklearn.tasks.vision.images import IMAGE_EXTENSIONS, image_problem, looks_like_image

__all__ = ["folder_source", "find_image_column", "csv_source", "image_source"]

log = logging.getLogger("quicklearn")


def folder_source(folder: str | Path) -> ItemSource:
    """Every image file under `folder`, recursively, sorted; files that only pretend to be images are skipped."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder. Check the path given as --data / the first argument.")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, not a folder of images. Pass a folder, or a CSV with an image-path column.")
    paths: list[Path] = []
    skipped: dict[str, list[Path]] = {}  # why -> files: one warning per reason (not an image, cannot be opened, ...)
    with progress() as bar:  # a folder of 100k images takes a while to list and sniff: say so
        task = bar.add_task(f"scanning {root.name or root}", total=None, info="") if bar else None
        # os.walk does not follow symlinked folders by default, so a symlink loop cannot trap it.
        for dirpath, dirnames, filenames in os.walk(root, onerror=None):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                p = Path(dirpath) / name
                if p.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                why = image_problem(p)
                if why is None:
                    paths.append(p)
                else:
                    skipped.setdefault(why, []).append(p)
            if bar:
                bar.update(task, completed=len(paths), info=f"{len(paths)} images")
        if bar:
            bar.update(task, total=len(paths), completed=len(paths))
    for why, files in skipped.items():
        _warn_skipped(files, why)
    if not paths:
        raise DataError(
            f"{root}: no image files found ({', '.join(sorted(IMAGE_EXTENSIONS))}). "
            "Put images in one sub-folder per class, e.g. DATA/cats/*.jpg and DATA/dogs/*.jpg."
        )
    return ItemSource(paths=paths, root=root, skipped=[p for files in skipped.values() for p in files])


def find_image_column(frame: pd.DataFrame) -> str | None:
    """The first column whose values mostly end in an image extension, or None."""
    for col in frame.columns:
        values = frame[col].dropna().astype(str)
        if len(values) and values.str.lower().str.endswith(tuple(IMAGE_EXTENSIONS)).mean() > 0.9:
            return str(col)
    return None


def csv_source(data: str | Path | pd.DataFrame, path_col: str | None = None, root: str | Path | None = None) -> ItemSource:
    """Rows of a CSV (or DataFrame) whose `path_col` holds image paths relative to the CSV's folder (or `root`)."""
    if isinstance(data, pd.DataFrame):
        frame, base = data.reset_index(drop=True), Path(root or ".")
        where = "the DataFrame"
    else:
        frame, base = read_table(data), Path(root) if root else Path(data).expanduser().parent
        where = str(data)
    col = path_col or find_image_column(frame)
    if col is None:
        raise DataError(f"{where}: no column of image paths found among {list(frame.columns)}. Name it with path_col=.")
    if col not in frame.columns:
        raise DataError(f"{where}: no column {col!r}; columns are {list(frame.columns)}.")
    keep, paths, skipped = [], [], []
    for i, rel in enumerate(frame[col].astype(str)):
        p = Path(rel) if Path(rel).is_absolute() else base / rel
        if looks_like_image(p):
            keep.append(i)
            paths.append(p)
        else:
            skipped.append(p)
    if skipped:
        _warn_skipped(skipped, "missing or not an image")
    if not paths:
        raise DataError(f"{where}: none of the paths in column {col!r} is a readable image (relative to {base}).")
    return ItemSource(paths=paths, root=base, frame=frame.iloc[keep].reset_index(drop=True), skipped=skipped, name=where)


def _warn_skipped(skipped: list[Path], why: str) -> None:
    first = ", ".join(str(p) for p in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    log.warning("skipped %d file(s) (%s): %s%s", len(skipped), why, first, more)


def image_source(data: str | Path | pd.DataFrame, path_col: str | None = None) -> ItemSource:
    """A folder -> its image files; a CSV file or DataFrame -> its rows with an image-path column."""
    if isinstance(data, pd.DataFrame):
        return csv_source(data, path_col)
    p = Path(data).expanduser()
    if not p.is_dir() and p.suffix.lower() in (".csv", ".tsv", ".txt"):  # a missing CSV: "no such file", not "no such folder"
        return csv_source(p, path_col)
    return folder_source(p)
