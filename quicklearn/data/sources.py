"""Where the items come from: an ItemSource (the items, the folder or file they are named relative to, the rows of
a table), and reading CSVs whatever their delimiter, BOM or encoding. Image files are found by tasks/vision/sources.py."""

from __future__ import annotations

import csv
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from quicklearn.core.errors import DataError

__all__ = ["ItemSource", "read_table", "peek_table", "table_source"]

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


def read_table(path: str | Path, nrows: int | None = None) -> pd.DataFrame:
    """Read a CSV (its first `nrows` rows, or all), sniffing the delimiter and coping with a BOM or latin-1;
    errors name the file and the fix."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "not a regular file" if path.exists() else "no such file"  # e.g. a FIFO: reading it would block
        raise DataError(f"{path}: {what}. Check the path given as --data / the first argument.")
    sep = _sniff_delimiter(path)
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            return pd.read_csv(path, sep=sep, engine="python", encoding=encoding, nrows=nrows)
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


def peek_table(path: str | Path, nrows: int = 2000) -> pd.DataFrame:
    """The first rows of a CSV: enough to tell what its columns hold (task inference reads no more)."""
    return read_table(path, nrows=nrows)


def table_source(frame: pd.DataFrame, where: str) -> ItemSource:
    """The rows of a table as items (named "row i" in messages), so the splitters and labellers serve tables too."""
    return ItemSource([Path(f"row {i}") for i in range(len(frame))], Path(where), frame)


