"""Splitters: which items train and which validate. Each is a small callable `(source, targets) -> (train_idx, valid_idx)`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, Sequence

import pandas as pd
import torch

from quicklearn.core.errors import ConfigError, DataError
from quicklearn.data.frames import check_column
from quicklearn.data.labels import KindName, Targets
from quicklearn.data.sources import ItemSource

__all__ = ["Splitter", "RandomSplitter", "StratifiedSplitter", "FolderSplitter", "ColumnSplitter", "IndexSplitter", "TimeSplitter", "auto_splitter", "check_split", "resolve_tabular_splitter"]

log = logging.getLogger("quicklearn")

TRAIN_NAMES = ("train", "training")
VALID_NAMES = ("valid", "val", "validation")


class Splitter(Protocol):
    def __call__(self, source: ItemSource, targets: Targets) -> tuple[list[int], list[int]]: ...


def _n_valid(n: int, valid_pct: float) -> int:
    if not 0.0 < valid_pct < 1.0:
        raise DataError(f"valid_pct={valid_pct}: must be between 0 and 1 (e.g. 0.2 for 20%).")
    return max(1, round(n * valid_pct))


@dataclass(frozen=True)
class RandomSplitter:
    """A seeded random `valid_pct` of the items validate."""

    valid_pct: float = 0.2
    seed: int = 42

    def __call__(self, source: ItemSource, targets: Targets) -> tuple[list[int], list[int]]:
        n = len(source)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        k = _n_valid(n, self.valid_pct)
        return sorted(perm[k:]), sorted(perm[:k])


@dataclass(frozen=True)
class StratifiedSplitter:
    """Like RandomSplitter, but each class keeps its share in both sets (falls back to random for regression)."""

    valid_pct: float = 0.2
    seed: int = 42

    def __call__(self, source: ItemSource, targets: Targets) -> tuple[list[int], list[int]]:
        if targets.kind != "single":
            return RandomSplitter(self.valid_pct, self.seed)(source, targets)
        g = torch.Generator().manual_seed(self.seed)
        train, valid = [], []
        for c in range(len(targets.vocab)):  # type: ignore[arg-type]
            idx = (targets.values == c).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=g)].tolist()
            k = round(len(idx) * self.valid_pct) if len(idx) > 1 else 0
            valid += idx[:k]
            train += idx[k:]
        _n_valid(len(source), self.valid_pct)
        return sorted(train), sorted(valid)


@dataclass(frozen=True)
class FolderSplitter:
    """Split by a folder name in the path: `train/...` trains, `valid/...` or `val/...` validates (fastai's GrandparentSplitter)."""

    train_name: str | Sequence[str] = TRAIN_NAMES
    valid_name: str | Sequence[str] = VALID_NAMES

    def __call__(self, source: ItemSource, targets: Targets) -> tuple[list[int], list[int]]:
        tn = {self.train_name} if isinstance(self.train_name, str) else set(self.train_name)
        vn = {self.valid_name} if isinstance(self.valid_name, str) else set(self.valid_name)
        train, valid = [], []
        for i, p in enumerate(source.paths):
            parts = set(p.relative_to(source.root).parts[:-1]) if p.is_relative_to(source.root) else set(p.parts)
            if parts & vn:
                valid.append(i)
            elif parts & tn:
                train.append(i)
        return train, valid


@dataclass(frozen=True)
class ColumnSplitter:
    """A boolean CSV column marks the validation rows (e.g. `is_valid`)."""

    column: str = "is_valid"

    def __call__(self, source: ItemSource, targets: Targets) -> tuple[list[int], list[int]]:
        if source.frame is None or self.column not in source.frame.columns:
            cols = [] if source.frame is None else list(source.frame.columns)
            raise DataError(f"{source.where}: split column {self.column!r} not found; columns are {cols}.")
        flags = source.frame[self.column].map(_truthy)
        if flags.isna().any():
            row = int(flags.isna().to_numpy().nonzero()[0][0])
            raise DataError(
                f"{source.where}: split column {self.column!r}: row {row} has {source.frame[self.column].tolist()[row]!r}; "
                "use true/false or 1/0."
            )
        valid = [i for i, f in enumerate(flags) if f]
        return [i for i, f in enumerate(flags) if not f], valid


@dataclass(frozen=True)
class IndexSplitter:
    """The given item indices validate; the rest train."""

    valid_idx: Sequence[int]

    def __call__(self, source: ItemSource, targets: Targets) -> tuple[list[int], list[int]]:
        v = set(int(i) for i in self.valid_idx)
        bad = sorted(i for i in v if not 0 <= i < len(source))
        if bad:  # a negative index would validate an item that also trains; a large one would fail later as an IndexError
            n = len(source)
            raise DataError(f"IndexSplitter: valid index {bad[0]} is out of range; the data has {n} items (0..{n - 1}).")
        return [i for i in range(len(source)) if i not in v], sorted(v)


@dataclass(frozen=True)
class TimeSplitter:
    """The latest `valid_pct` of the rows by `column` (a date or a number) validate: no peeking into the future."""

    column: str
    valid_pct: float = 0.2

    def __call__(self, source: ItemSource, targets: Targets) -> tuple[list[int], list[int]]:
        if source.frame is None or self.column not in source.frame.columns:
            cols = [] if source.frame is None else list(source.frame.columns)
            raise DataError(f"{source.where}: time split column {self.column!r} not found; columns are {cols}.")
        col = source.frame[self.column]
        if not pd.api.types.is_numeric_dtype(col):
            parsed = pd.to_datetime(col, errors="coerce", format="mixed")
            if parsed.isna().mean() > 0.5:
                raise DataError(f"{source.where}: time split column {self.column!r}: most values are neither dates nor "
                                f"numbers (e.g. {col.tolist()[0]!r}). Choose a date or timestamp column.")
            col = parsed
        order = col.reset_index(drop=True).sort_values(kind="stable", na_position="first").index.tolist()
        k = _n_valid(len(order), self.valid_pct)
        return sorted(order[:-k]), sorted(order[-k:])


def _truthy(x: object) -> bool | None:
    s = str(x).strip().lower()
    if s in ("true", "1", "yes", "y", "t", "1.0", "valid", "val"):
        return True
    if s in ("false", "0", "no", "n", "f", "0.0", "train", ""):
        return False
    return None


def auto_splitter(source: ItemSource, valid_pct: float = 0.2, seed: int = 42) -> Splitter:
    """Folder split when the data has train/ and valid/ (or val/) folders, a column split for an `is_valid` column, else stratified random."""
    if source.frame is not None:
        if "is_valid" in source.frame.columns:
            return ColumnSplitter("is_valid")
        return StratifiedSplitter(valid_pct, seed)
    top = {p.relative_to(source.root).parts[0] for p in source.paths if len(p.relative_to(source.root).parts) > 1}
    if top & set(VALID_NAMES) and top & set(TRAIN_NAMES):
        return FolderSplitter()
    return StratifiedSplitter(valid_pct, seed)


def check_split(train: list[int], valid: list[int], targets: Targets, where: object, warn: bool = True) -> None:
    """Refuse a split that cannot train or validate; warn (if `warn`) when validation misses a class."""
    if not train:
        raise DataError(f"{where}: the split leaves no training items. Check the split (folder names, valid column, valid_pct).")
    if not valid:
        raise DataError(
            f"{where}: the validation set is empty. Add a valid/ folder, mark rows in an is_valid column, or set valid_pct (e.g. 0.2)."
        )
    if targets.kind == "regression":
        return
    classes = targets.vocab.classes  # type: ignore[union-attr]
    what = "class" if targets.kind == "single" else "label"
    in_train, in_valid = _present(targets, train), _present(targets, valid)
    absent = [classes[c] for c in range(len(classes)) if c not in in_train]
    if absent:  # its output would never train, yet validation would score it (the vocab covers every item)
        raise DataError(
            f"{where}: {what} {absent[0]!r} has no training items{' (and ' + str(len(absent) - 1) + ' more)' if len(absent) > 1 else ''}. "
            f"Add items of it to the training set or remove that {what}."
        )
    if not warn:
        return
    missing = [classes[c] for c in range(len(classes)) if c not in in_valid]
    if missing:
        log.warning("%s: %s %r has no validation items; its accuracy will not be measured.", where, what, missing[0])


def _present(targets: Targets, idx: list[int]) -> set[int]:
    """The class indices that occur among the items `idx`: their class (single-label), or any label they carry."""
    values = targets.values[idx]
    if targets.kind == "multi":
        return set((values > 0.5).any(0).nonzero().flatten().tolist())
    return set(values.tolist())


def resolve_tabular_splitter(splitter: Splitter | str, frame: pd.DataFrame, kind: KindName, valid_pct: float,
                             seed: int, where: str) -> Splitter:
    """'auto' (an is_valid column, else stratified for classes, random for numbers), 'random', 'stratified',
    'column:NAME' (a boolean column marks validation rows), 'time:NAME' (the latest rows by NAME validate),
    or a Splitter such as IndexSplitter([...])."""
    if not isinstance(splitter, str):
        return splitter
    if splitter == "auto":
        if "is_valid" in frame.columns:
            return ColumnSplitter("is_valid")
        return StratifiedSplitter(valid_pct, seed) if kind == "single" else RandomSplitter(valid_pct, seed)
    if splitter == "random":
        return RandomSplitter(valid_pct, seed)
    if splitter == "stratified":
        return StratifiedSplitter(valid_pct, seed)
    for prefix, cls in (("column:", ColumnSplitter), ("time:", TimeSplitter)):
        if splitter.startswith(prefix):
            name = splitter[len(prefix):]
            check_column(frame, name, "split", where)
            return cls(name) if cls is ColumnSplitter else TimeSplitter(name, valid_pct)
    raise ConfigError(f"splitter={splitter!r}: use 'auto', 'random', 'stratified', 'column:NAME', 'time:NAME' or a Splitter.")
