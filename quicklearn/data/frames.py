"""Tables as the data layer reads them: a CSV (delimiter, BOM, latin-1 handled) or a DataFrame, its columns
checked by name with a 'did you mean', and rows without a target left out. Used by every task that reads rows."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from quicklearn.core.errors import DataError
from quicklearn.data.sources import read_table

__all__ = ["read_frame", "read_head", "check_column", "check_columns", "drop_rows_without"]

log = logging.getLogger("quicklearn")


def read_frame(data: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(a copy of the frame, how to name it in messages): a CSV path (delimiter, BOM, latin-1 handled) or a DataFrame."""
    if isinstance(data, pd.DataFrame):
        twice = data.columns[data.columns.duplicated()]
        if len(twice):  # frame[name] would be a table, not a column: every later step would misread it
            raise DataError(f"the DataFrame: column {twice[0]!r} appears more than once. Rename or drop the copies.")
        return data.reset_index(drop=True).copy(), "the DataFrame"
    path = Path(data).expanduser()
    if path.is_dir():
        raise DataError(f"{path}: is a folder; tabular data is a CSV file (or a DataFrame).")
    frame = read_table(path)
    if frame.empty:
        raise DataError(f"{path}: has a header but no rows. Add data rows.")
    return frame, str(path)


def check_column(frame: pd.DataFrame, name: str, what: str, where: str) -> None:
    """A DataError naming the missing column, the columns that exist and the closest match."""
    if name in frame.columns:
        return
    close = difflib.get_close_matches(str(name), [str(c) for c in frame.columns], n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DataError(f"{where}: {what} column {name!r} not found; columns are {list(frame.columns)}.{hint}")


def drop_rows_without(frame: pd.DataFrame, y: str, where: str) -> pd.DataFrame:
    """The rows that have a value in `y`; the others are left out with a warning that counts them."""
    has = frame[y].notna()
    if has.all():
        return frame
    rows = [int(i) for i in (~has).to_numpy().nonzero()[0][:3]]
    log.warning("%s: %d row(s) have no %r (first rows %s); they are left out.", where, int((~has).sum()), y, rows)
    return frame[has.to_numpy()].reset_index(drop=True)


def read_head(data: str | Path | pd.DataFrame, nrows: int = 100) -> tuple[pd.DataFrame, str]:
    """The first rows of a CSV (or the DataFrame itself) and how to name it: enough to check its columns before a
    run is announced, without reading a large file twice."""
    if isinstance(data, pd.DataFrame):
        return data, "the DataFrame"
    path = Path(data).expanduser()
    if path.is_dir():
        raise DataError(f"{path}: is a folder; this task reads a CSV file (or a DataFrame).")
    return read_table(path, nrows=nrows), str(path)


def check_columns(frame: pd.DataFrame, where: str, **named: Any) -> None:
    """Every column named, by what it is for: check_columns(frame, where, target="y", feature=["a", "b"])."""
    for what, names in named.items():
        for name in ([names] if isinstance(names, str) else names or []):
            check_column(frame, name, what, where)
