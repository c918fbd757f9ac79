"""Targets: how each item gets its label, and the vocabulary that fixes which index means which class.

One name for the target everywhere: `y=` in Python, `--target` on the CLI. `y` may be a column name
(single label, delimiter-separated multi-label, or float regression), a regex with one group applied to the
file name, a callable of the path, or None (the parent folder's name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import pandas as pd
import torch

from quicklearn.core.errors import DataError
from quicklearn.data.kinds import MAX_CLASSES, MULTI, REGRESSION, SINGLE, get_kind
from quicklearn.data.sources import ItemSource

__all__ = ["Vocab", "Targets", "KindName", "infer_kind", "parent_label", "RegexLabel", "get_targets", "numeric_values", "raw_labels", "is_missing", "target_stats", "detect_delim", "split_labels"]

KindName = Literal["single", "multi", "regression"]  # a target kind's name (the objects: data/kinds.py)


@dataclass(frozen=True)
class Vocab:
    """Sorted class names: the same index always means the same class."""

    classes: tuple[str, ...]

    @classmethod
    def from_labels(cls, labels: Sequence[Any]) -> "Vocab":
        return cls(tuple(sorted({str(x) for x in labels})))

    def index(self, label: Any) -> int:
        return self.classes.index(str(label))

    def __len__(self) -> int:
        return len(self.classes)


@dataclass
class Targets:
    """Encoded targets: int64 class indices, float multi-hot rows, or float values, plus their vocab (none for regression)."""

    kind: KindName
    values: torch.Tensor
    vocab: Vocab | None

    @property
    def n_out(self) -> int:
        return get_kind(self.kind).n_out(len(self.vocab) if self.vocab else 0)


def parent_label(path: Path) -> str:
    """The name of the folder that holds the file: folder-per-class data."""
    return Path(path).parent.name


@dataclass(frozen=True)
class RegexLabel:
    """The first group of `pattern` searched in the file name, e.g. RegexLabel(r'^([a-z_]+)_\\d+\\.jpg$')."""

    pattern: str

    def __call__(self, path: Path) -> str:
        m = re.search(self.pattern, Path(path).name)
        if not m or not m.groups():
            raise DataError(f"{path}: file name does not match the label pattern {self.pattern!r} (it needs one (group)).")
        return m.group(1)


def get_targets(
    source: ItemSource,
    y: str | Callable[[Path], Any] | None = None,
    *,
    kind: KindName | None = None,
    label_delim: str | None = None,
) -> Targets:
    """Label every item of `source` and encode the labels; `kind` is inferred when None."""
    raw = raw_labels(source, y)
    if kind is None:
        # Multi-label is only inferred from a CSV column: folder names with spaces are single labels.
        kind = infer_kind(raw, allow_multi=isinstance(y, str) and source.frame is not None, label_delim=label_delim).name
    if kind == "regression":
        return Targets("regression", numeric_values(raw, source.paths, f"{source.where}: target {y!r}"), None)
    if kind == "multi":
        sets = split_labels(raw, label_delim)
        vocab = Vocab.from_labels([c for s in sets for c in s])
        values = torch.zeros((len(sets), len(vocab)), dtype=torch.float32)
        for i, s in enumerate(sets):
            for c in s:
                values[i, vocab.index(c)] = 1.0
        return Targets("multi", values, vocab)
    missing = [p for p, v in zip(source.paths, raw) if is_missing(v)]
    if missing:
        raise DataError(f"{source.where}: {len(missing)} item(s) have no label, first {missing[0]}: fill in target {y!r} or drop them.")
    vocab = Vocab.from_labels(raw)
    if len(vocab) < 2:
        where = source.where
        raise DataError(
            f"{where}: only one class ({vocab.classes[0]!r}) found. A classifier needs at least two: "
            "put each class's images in its own sub-folder (DATA/ants/*.jpg, DATA/bees/*.jpg) or give a label column with y=/--target."
        )
    lookup = {c: i for i, c in enumerate(vocab.classes)}
    return Targets("single", torch.tensor([lookup[str(v)] for v in raw], dtype=torch.int64), vocab)


def target_stats(values: torch.Tensor) -> tuple[float, float]:
    """(mean, std) of regression targets for standardization; std 1 when it is zero or undefined (one value)."""
    std = float(values.std()) if len(values) > 1 else 1.0
    return float(values.mean()), std if std > 0 else 1.0


def numeric_values(raw: Sequence[Any], paths: Sequence[Path], what: str) -> torch.Tensor:
    """Regression targets as float32; a DataError names `what` and the first item that is empty or not a number."""
    try:
        values = torch.tensor(pd.to_numeric(pd.Series(list(raw))).to_numpy(), dtype=torch.float32)
    except (ValueError, TypeError) as e:
        raise DataError(f"{what}: regression needs numbers ({e}).") from None
    if torch.isnan(values).any():
        bad = paths[int(torch.isnan(values).nonzero()[0])]
        raise DataError(f"{what} is empty for {bad}: fill it in or drop that row.")
    if torch.isinf(values).any():  # an inf target makes every loss inf: training would learn nothing
        i = int(torch.isinf(values).nonzero()[0])
        raise DataError(f"{what} is {float(values[i])} for {paths[i]}: give a finite number or drop that row.")
    return values


def is_missing(value: Any) -> bool:
    """An empty label: None, or NaN as pandas reads an empty CSV cell."""
    return value is None or (isinstance(value, float) and pd.isna(value))


def raw_labels(source: ItemSource, y: str | Callable[[Path], Any] | None) -> list[Any]:
    """Each item's label before encoding: parent folder name, column value (with "did you mean"), regex group, or y(path)."""
    if y is None:
        return [parent_label(p) for p in source.paths]
    if callable(y):
        return [y(p) for p in source.paths]
    if source.frame is not None and y in source.frame.columns:
        return source.frame[y].tolist()
    if source.frame is not None:
        import difflib

        close = difflib.get_close_matches(str(y), [str(c) for c in source.frame.columns], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"{source.where}: target column {y!r} not found; columns are {list(source.frame.columns)}.{hint}")
    if isinstance(y, str) and "(" in y:
        return [RegexLabel(y)(p) for p in source.paths]
    raise DataError(
        f"target {y!r}: a folder of images has no columns. Leave the target out to label by folder name, "
        "give a regex with one (group) over the file name, or use a CSV with that column."
    )


_DELIMS = (",", ";", "|")  # tried in this order; whitespace when a column has none of them


def detect_delim(raw: Sequence[Any]) -> str | None:
    """The one separator of a multi-label column: the first of , ; | that any label holds, else None (whitespace).

    One separator per column, so "traffic light, person" gives two labels, not three, and "3 7" / "3,7" both work."""
    text = [str(v) for v in raw if not is_missing(v)]
    return next((d for d in _DELIMS if any(d in t for t in text)), None)


def split_labels(raw: Sequence[Any], delim: str | None = None) -> list[list[str]]:
    """Each row's labels (empty for a missing cell), split on `delim` or on the column's detected separator."""
    delim = delim if delim is not None else detect_delim(raw)
    return [_split_multi(v, delim) for v in raw]


def _split_multi(value: Any, delim: str | None) -> list[str]:
    """One cell's labels: split on `delim` (stripped), or on whitespace when `delim` is None."""
    if is_missing(value):
        return []
    text = str(value)
    parts = text.split(delim) if delim else text.split()
    return [p.strip() for p in parts if p.strip()]


def infer_kind(raw: Sequence[Any], *, allow_multi: bool = False, label_delim: str | None = None) -> KindName:
    """The one rule, for every task: numbers that are not all whole, or whole numbers with more than MAX_CLASSES
    (20) distinct values, are a regression; anything else is classes (strings, booleans, few whole numbers), and
    a column whose cells hold several labels is multi-label where that is allowed (a CSV label column)."""
    values = pd.Series(list(raw)).dropna()
    numeric = bool(len(values)) and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and (not bool((values == values.round()).all()) or values.nunique() > MAX_CLASSES):
        return REGRESSION
    if label_delim is not None:
        if not allow_multi:
            raise DataError(f"label_delim={label_delim!r}: multi-label targets are not supported here; use one label per item.")
        return MULTI
    if allow_multi and not numeric:
        text = values.astype(str).tolist()
        delim = detect_delim(text)
        sets = split_labels(text, delim)
        if text and sum(len(s) > 1 for s in sets) > 0.05 * len(text) and (delim is not None or _labels_combine(sets)):
            return MULTI  # "café au lait": words that never appear apart are one label with spaces
    return SINGLE


def _labels_combine(sets: list[list[str]]) -> bool:
    """True when some label appears in two different label sets ("3" in "3" and "3 7"): a multi-label column.
    When none does, each set is one fixed name, and splitting it on spaces would only invent labels."""
    seen: dict[str, frozenset] = {}
    for s in {frozenset(s) for s in sets}:
        for label in s:
            if seen.setdefault(label, s) != s:
                return True
    return False
