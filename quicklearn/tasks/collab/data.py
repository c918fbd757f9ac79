"""Ratings as the model reads them: (user, item, rating) rows -> cleaned -> split -> integer codes -> batches.

- Reading: a CSV or DataFrame; rows without a user, item or rating are left out (counted, with a warning); a rating
  that is not a number is refused naming its row; duplicate (user, item) pairs keep the latest rating (by the time
  column when there is one, else the last row), their mean, or are refused (`duplicates=`), and are counted.
- Codes: the users and items of the *training* rows get codes 1..n in sorted order; 0 means "not seen in training"
  (a validation or prediction row's unknown user or item), so nothing is ever an index error. The model gives an
  unknown side no embedding and no bias (see model.py).
- Splits: `random` (seeded share of the rows), `users` (a seeded share of the users, all their ratings: cold
  start), `user-time:COL` (each user's latest `valid_pct` of ratings by COL: no validation rating is older than
  that user's training ratings). A validation user or item never seen in training is counted and reported.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from quicklearn.core.errors import ConfigError, DataError
from quicklearn.data.loaders import LoaderPair, TensorLoader, tensor_keys
from quicklearn.tasks.collab.columns import CollabColumns

__all__ = ["id_keys", "clean_ratings", "CollabIndex", "split_ratings", "CollabLoader", "CollabDataLoaders",
           "INDEX_FILE", "SEEN_FILE"]

log = logging.getLogger("quicklearn")

INDEX_FILE, SEEN_FILE = "collab.json", "seen.safetensors"


def id_keys(values: pd.Series | Sequence[Any]) -> pd.Series:
    """IDs as strings, so that 3, 3.0 (an integer column read with gaps) and '3' are one user or item."""
    s = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_integer_dtype(s):
        return s.astype(str)
    if pd.api.types.is_float_dtype(s):
        out = s.astype(str)
        whole = np.isfinite(s) & (s == s.round())
        out[whole] = s[whole].astype("int64").astype(str)
        return out
    return s.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))


def clean_ratings(frame: pd.DataFrame, cols: CollabColumns, where: str, duplicates: str = "latest") -> pd.DataFrame:
    """The rows as (user, item, rating[, time]): IDs as strings, ratings as floats, rows without one of them left
    out, duplicate pairs resolved as `duplicates` says; DataErrors for non-numeric ratings and for too little data."""
    if frame.empty:
        raise DataError(f"{where}: has no rows. Give a CSV with one row per rating.")
    keep = [cols.user, cols.item, cols.rating] + ([cols.time] if cols.time else [])
    df = frame[keep].copy()
    missing = df[[cols.user, cols.item, cols.rating]].isna().any(axis=1)
    if missing.any():
        rows = [int(i) for i in np.flatnonzero(missing.to_numpy())[:3]]
        log.warning("%s: %d row(s) lack a user, item or rating (first rows %s); they are left out.", where,
                    int(missing.sum()), rows)
        df = df[~missing.to_numpy()]
    values = pd.to_numeric(df[cols.rating], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.astype("float64"))
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where}: rating column {cols.rating!r} must hold numbers, but row {int(df.index[pos])} has "
                        f"{df[cols.rating].tolist()[pos]!r}. Fix the value, drop the row, or name another column with "
                        "--target.")
    out = pd.DataFrame({"user": id_keys(df[cols.user]).to_numpy(), "item": id_keys(df[cols.item]).to_numpy(),
                        "rating": values.astype("float64").to_numpy()})
    if cols.time:
        out["time"] = _time_values(df[cols.time], cols.time, where).to_numpy()
    out = _resolve_duplicates(out, where, duplicates)
    if out.empty:
        raise DataError(f"{where}: no row has a user, an item and a rating. Check the columns "
                        "(--user/--item/--target).")
    for side in ("user", "item"):
        n = out[side].nunique()
        if n < 2:
            raise DataError(f"{where}: all {len(out)} ratings are by one {side} ({out[side].iloc[0]!r}); collaborative "
                            f"filtering learns from several {side}s' ratings. Add ratings of other {side}s.")
    return out.reset_index(drop=True)


def _time_values(s: pd.Series, name: str, where: str) -> pd.Series:
    """A time column as numbers that sort like the times (numbers as they are, dates as nanoseconds)."""
    if pd.api.types.is_numeric_dtype(s):
        return s.astype("float64")
    parsed = pd.to_datetime(s, errors="coerce", format="mixed")
    if parsed.isna().mean() > 0.5:
        raise DataError(f"{where}: time column {name!r} holds neither numbers nor dates (e.g. {s.tolist()[0]!r}). "
                        "Choose a timestamp or date column.")
    return pd.Series(parsed.astype("int64").where(parsed.notna()), index=s.index).astype("float64")


def _resolve_duplicates(df: pd.DataFrame, where: str, how: str) -> pd.DataFrame:
    dup = df.duplicated(["user", "item"], keep=False)
    if not dup.any():
        return df
    pairs = int(df[dup].drop_duplicates(["user", "item"]).shape[0])
    first = df[dup].iloc[0]
    if how == "error":
        raise DataError(f"{where}: {pairs} (user, item) pair(s) are rated more than once (first: user "
                        f"{first['user']!r}, item {first['item']!r}). Remove the repeats, or pass duplicates='latest' "
                        "or 'mean'.")
    if how == "mean":
        agg = {"rating": "mean", **({"time": "max"} if "time" in df.columns else {})}
        out = df.groupby(["user", "item"], sort=False, as_index=False).agg(agg)
        what = "their mean rating is used"
    elif how == "latest":
        order = df.sort_values("time", kind="stable") if "time" in df.columns else df
        out = order.drop_duplicates(["user", "item"], keep="last").sort_index()
        what = "the latest rating is kept" + ("" if "time" in df.columns else " (the last row: no time column)")
    else:
        raise ConfigError(f"duplicates={how!r}: use 'latest', 'mean' or 'error'.")
    log.warning("%s: %d (user, item) pair(s) are rated more than once (first: user %r, item %r); %s.", where, pairs,
                first["user"], first["item"], what)
    return out


# ---- codes ---------------------------------------------------------------------------------------------------
@dataclass
class CollabIndex:
    """The users and items of the training rows (code i + 1 is users[i]; 0 is "unknown"), how many training ratings
    each has, whether their IDs were whole numbers (so they print as they were typed), and items' titles."""

    users: list[str]
    items: list[str]
    user_counts: list[int]
    item_counts: list[int]
    users_int: bool = False
    items_int: bool = False
    titles: list[str | None] | None = None
    _lookup: dict[str, pd.Index] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def fit(cls, train: pd.DataFrame, raw_user: pd.Series | None = None,
            raw_item: pd.Series | None = None) -> "CollabIndex":
        uc = train["user"].value_counts()
        ic = train["item"].value_counts()
        users, items = _sorted_ids(uc.index), _sorted_ids(ic.index)
        return cls(users, items, [int(uc[u]) for u in users], [int(ic[i]) for i in items],
                   _is_int(raw_user), _is_int(raw_item))

    @property
    def n_users(self) -> int:
        """Embedding rows for users: every training user plus the "unknown" row 0."""
        return len(self.users) + 1

    @property
    def n_items(self) -> int:
        return len(self.items) + 1

    def codes(self, side: str, keys: pd.Series | Sequence[Any]) -> np.ndarray:
        """IDs (any form: 3, '3', 3.0) -> codes, 0 for an ID not seen in training."""
        if side not in self._lookup:
            self._lookup[side] = pd.Index(self.users if side == "user" else self.items)
        return self._lookup[side].get_indexer(id_keys(pd.Series(keys) if not isinstance(keys, pd.Series) else keys)) + 1

    def ids(self, side: str, codes: Sequence[int]) -> list[Any]:
        """Codes -> the IDs as the data had them (whole numbers back as ints)."""
        names, as_int = (self.users, self.users_int) if side == "user" else (self.items, self.items_int)
        out = [names[c - 1] if c > 0 else None for c in codes]
        return [int(v) if as_int and v is not None else v for v in out]

    def title(self, code: int) -> str | None:
        return self.titles[code - 1] if self.titles and code > 0 else None

    def to_dict(self) -> dict:
        return {"users": self.users, "items": self.items, "user_counts": self.user_counts,
                "item_counts": self.item_counts, "users_int": self.users_int, "items_int": self.items_int,
                "titles": self.titles}

    @classmethod
    def from_dict(cls, d: dict) -> "CollabIndex":
        return cls(**{k: d[k] for k in ("users", "items", "user_counts", "item_counts")},
                   users_int=bool(d.get("users_int")), items_int=bool(d.get("items_int")), titles=d.get("titles"))


def _sorted_ids(ids: Sequence[str]) -> list[str]:
    """Whole-number IDs in numeric order, others in string order (the order is only for reading the files)."""
    ids = list(ids)
    if all(s.lstrip("-").isdigit() for s in ids):
        return sorted(ids, key=int)
    return sorted(ids)


def _is_int(raw: pd.Series | None) -> bool:
    if raw is None:
        return False
    if pd.api.types.is_integer_dtype(raw):
        return True
    return bool(pd.api.types.is_float_dtype(raw) and (raw.dropna() == raw.dropna().round()).all())


# ---- splits ---------------------------------------------------------------------------------------------------
def split_ratings(df: pd.DataFrame, splitter: Any, valid_pct: float, seed: int,
                  where: str) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, valid rows) of the cleaned ratings: 'random' (or 'auto'), 'users', 'user-time:COL' (COL is the
    time column, already in `df` as "time"), or a Splitter object called with (rows, None) like every splitter."""
    if not 0.0 < valid_pct < 1.0:
        raise DataError(f"valid_pct={valid_pct}: must be between 0 and 1 (e.g. 0.2 for 20%).")
    n = len(df)
    gen = torch.Generator().manual_seed(seed)
    if not isinstance(splitter, str):
        from quicklearn.data.sources import table_source

        train, valid = splitter(table_source(df, where), None)
        return np.asarray(train, dtype=np.int64), np.asarray(valid, dtype=np.int64)
    if splitter in ("random", "auto"):
        perm = torch.randperm(n, generator=gen).numpy()
        k = max(1, round(n * valid_pct))
        return np.sort(perm[k:]), np.sort(perm[:k])
    if splitter == "users":
        users = np.array(sorted(df["user"].unique()))
        k = max(1, round(len(users) * valid_pct))
        held = set(users[torch.randperm(len(users), generator=gen).numpy()[:k]].tolist())
        mask = df["user"].isin(held).to_numpy()
        return np.flatnonzero(~mask), np.flatnonzero(mask)
    if splitter.startswith("user-time:"):
        if "time" not in df.columns:
            raise ConfigError(f"split {splitter!r}: the time column was not read; name it after 'user-time:'.")
        order = df.assign(_row=np.arange(n)).sort_values(["user", "time", "_row"], kind="stable")
        rank = order.groupby("user", sort=False).cumcount().to_numpy()
        size = order.groupby("user", sort=False)["rating"].transform("size").to_numpy()
        n_valid = np.floor(size * valid_pct + 0.5).astype(int)  # round half up: 5 ratings at 0.1 -> 1
        is_valid = rank >= size - n_valid
        rows = order["_row"].to_numpy()
        return np.sort(rows[~is_valid]), np.sort(rows[is_valid])
    raise ConfigError(f"splitter={splitter!r}: use 'random', 'users' or 'user-time:COL' (a time column).")


def report_unknown(index: CollabIndex, codes: np.ndarray, where: str) -> dict[str, int]:
    """Count the validation ratings whose user or item training never saw, and say how they are predicted."""
    u_new, i_new = codes[:, 0] == 0, codes[:, 1] == 0
    counts = {"ratings": len(codes), "unknown_user": int(u_new.sum()), "unknown_item": int(i_new.sum()),
              "unknown_both": int((u_new & i_new).sum())}
    if u_new.any() or i_new.any():
        log.warning("%s: of %d validation ratings, %d have a user and %d an item that training never saw (%d both); "
                    "they are predicted from the global mean plus the known side's bias (cold_start).", where,
                    counts["ratings"], counts["unknown_user"], counts["unknown_item"], counts["unknown_both"])
    return counts


# ---- batches ----------------------------------------------------------------------------------------------------
class CollabLoader(TensorLoader):
    """Batches of (codes (B, 2) int64: user, item; ratings (B,) float32): the shared `TensorLoader`."""


@dataclass
class CollabDataLoaders(LoaderPair):
    """Train and valid loaders of ratings, plus what the model folder needs: the codes, columns, seen pairs."""

    train: CollabLoader
    valid: CollabLoader
    index: CollabIndex
    columns: CollabColumns
    seen: torch.Tensor  # (n, 2) int32 codes of every rated (user, item) pair of the data, both sides known
    valid_unknown: dict[str, int] = field(default_factory=dict)
    kind: str = "regression"
    vocab: Any = None
    target_stats: tuple[float, float] | None = None  # the model predicts ratings in their units (y_range squashing)

    task = "collab"

    def folder_parts(self, learn: Any, folder: Path) -> tuple[dict[str, Any], list[str]]:
        """config.json gets the columns; collab.json the user and item IDs, counts and titles; seen.safetensors the
        rated pairs (for recommend's exclude_seen)."""
        from safetensors.torch import save_file

        from quicklearn.core.fileio import atomic_path, write_json

        write_json(folder / INDEX_FILE, self.index.to_dict())
        with atomic_path(folder / SEEN_FILE) as tmp:
            save_file({"pairs": self.seen.to(torch.int32).contiguous()}, str(tmp))
        return {"target": self.columns.rating, "columns": self.columns.to_dict()}, [INDEX_FILE, SEEN_FILE]

    def describe(self, codes: torch.Tensor, ratings: torch.Tensor | None = None) -> list[str]:
        """Rows as 'user U, item I (title)' [-> rating]."""
        users = self.index.ids("user", codes[:, 0].tolist())
        items = self.index.ids("item", codes[:, 1].tolist())
        out = []
        for k, (u, i, ic) in enumerate(zip(users, items, codes[:, 1].tolist())):
            title = self.index.title(ic)
            text = f"user {u if u is not None else '<unknown>'}, item {i if i is not None else '<unknown>'}" + \
                (f" ({title})" if title else "")
            out.append(text + (f" -> {float(ratings[k]):.3g}" if ratings is not None else ""))
        return out

    def show_batch_text(self, n: int) -> str:
        """The first `n` training ratings as the model reads them."""
        return "\n".join(self.describe(self.train.x[:n].cpu(), self.train.targets[:n].cpu()))

    def show_results(self, learn: Any, path: str | Path | None, n: int) -> Path:
        from quicklearn.data.loaders import results_csv

        return results_csv(learn, self.describe(self.valid.x[:n].cpu()), path, n)

    def item_keys(self) -> tuple[list[bytes], list[bytes]]:
        """Each rating's (user, item) codes and value."""
        return tensor_keys(self.train.x, self.train.targets), tensor_keys(self.valid.x, self.valid.targets)


def auto_bs(n_train: int) -> int:
    """Ratings per batch: the power of two nearest n/64, between 64 and 4096, so an epoch is 45-90 steps and
    the Python loop costs little. On movielens-small (80,669 training ratings: 1024, 78 steps an epoch) at the
    same step budget, 512 and 256 were no better and took longer."""
    return int(min(4096, max(64, 2 ** round(math.log2(max(n_train, 1) / 64)))))
