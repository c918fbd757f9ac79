"""Where the items come from: image files under a folder, or rows of a CSV/DataFrame with an image-path column."""

from __future__ import annotations

import csv
import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..progress import progress
from .images import IMAGE_EXTENSIONS, image_problem, looks_like_image

__all__ = ["ItemSource", "folder_source", "csv_source", "find_image_column", "read_table", "table_source"]

log = logging.getLogger("quicklearn")


@dataclass
class ItemSource:
    """The items of a data set: absolute image paths, the folder they are relative to, and (for a CSV) the rows."""

    paths: list[Path]
    root: Path
    frame: pd.DataFrame | None = None
    skipped: list[Path] = field(default_factory=list)  # files with an image extension that are not readable images
    name: str | None = None  # how messages name the data: the CSV's path, "the DataFrame"; None: the root folder

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def where(self) -> str:
        """The data as error messages name it: the CSV file (not its folder) or the image folder."""
        return self.name or str(self.root)


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


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, sniffing the delimiter and coping with a BOM or latin-1; errors name the file and the fix."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "not a regular file" if path.exists() else "no such file"  # e.g. a FIFO: reading it would block
        raise DataError(f"{path}: {what}. Check the path given as --data.")
    sep = _sniff_delimiter(path)
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            return pd.read_csv(path, sep=sep, engine="python", encoding=encoding)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as e:
            raise DataError(f"{path}: cannot be read as CSV ({e}). Save it as a comma-separated file with a header row.") from e
    raise DataError(f"{path}: unknown text encoding. Re-save it as UTF-8.")


def _sniff_delimiter(path: Path) -> str:
    """The delimiter among , ; tab | seen in the first lines; ',' when there is none (one column, empty file).

    pandas' own sniffing (sep=None) looks at the first line only and accepts any character, so the header
    `name` of a one-column file splits on 'n', and an empty file raises csv.Error instead of EmptyDataError."""
    try:
        with open(path, encoding="latin-1", newline="") as f:  # the delimiters are ASCII: any encoding reads them alike
            sample = "".join(itertools.islice(f, 50)).removeprefix("\xef\xbb\xbf")  # a UTF-8 BOM read as latin-1
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except (csv.Error, OSError):
        return ","


def table_source(frame: pd.DataFrame, where: str) -> ItemSource:
    """The rows of a table as items (named "row i" in messages), so the splitters and labellers serve tables too."""
    return ItemSource([Path(f"row {i}") for i in range(len(frame))], Path(where), frame)


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
