"""Which columns of a ratings table are the user, the item, the rating, the time and the title, from their names.

Names are compared lower-cased without `_`, `-` and spaces: `userId`, `user_id` and `User ID` are all "userid".
A user column is named like user/customer/member/reviewer/rater (optionally + id), an item column like
item/movie/product/book/track/song/... (optionally + id), a rating column rating/score/stars/rate; the time and
title columns are optional. Explicit names (`user=`, `item=`, `y=`; --user, --item, --target) always win; two
columns that could both be the user (or the item, or the rating) are an error that names both.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Sequence

import pandas as pd

from quicklearn.core.errors import DataError
from quicklearn.data.frames import check_column

__all__ = ["CollabColumns", "infer_columns", "claim_columns", "role_of", "TITLE_NAMES"]

_USER = ("user", "customer", "member", "reviewer", "rater", "client", "person", "visitor", "viewer", "listener")
_ITEM = ("item", "movie", "film", "product", "book", "track", "song", "artist", "album", "article", "anime", "game",
         "recipe", "restaurant", "business", "place", "joke", "course", "show", "asin", "isbn")
_RATING = ("rating", "ratings", "score", "stars", "star", "rate", "overall", "grade")
_TIME = ("timestamp", "time", "date", "datetime", "ts", "ratedat", "createdat", "unixreviewtime", "when")
TITLE_NAMES = ("title", "name", "itemtitle", "itemname", "movietitle", "moviename", "productname", "booktitle")
_OPTIONS = {"user": "--user (user=)", "item": "--item (item=)", "rating": "--target (y=)"}


def _norm(name: object) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def role_of(name: object) -> str | None:
    """The role a column's name suggests: user, item, rating, time, title, or None."""
    n = _norm(name)
    for role, roots in (("user", _USER), ("item", _ITEM)):
        if n in roots or (n.endswith("id") and n[:-2] in roots) or n in {f"{r}key" for r in roots}:
            return role
    if n in ("uid",):
        return "user"
    if n in ("iid", "mid", "pid"):
        return "item"
    if n in _RATING:
        return "rating"
    if n in _TIME:
        return "time"
    if n in TITLE_NAMES:
        return "title"
    return None


@dataclass
class CollabColumns:
    """The columns of a ratings table, by role; time and title are optional."""

    user: str
    item: str
    rating: str
    time: str | None = None
    title: str | None = None

    def describe(self) -> str:
        extra = "".join(f", {k} {v!r}" for k, v in (("time", self.time), ("title", self.title)) if v)
        return (f"columns: user {self.user!r}, item {self.item!r}, rating {self.rating!r}{extra} "
                "(choose with --user/--item/--target)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CollabColumns":
        return cls(**d)


def _by_role(columns: Sequence[object]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for c in columns:
        role = role_of(c)
        if role:
            found.setdefault(role, []).append(str(c))
    return found


def infer_columns(frame: pd.DataFrame, where: str, *, user: str | None = None, item: str | None = None,
                  rating: str | None = None, time: str | None = None) -> CollabColumns:
    """The user, item and rating columns (named, or inferred from the names), plus a time and a title column when
    there is one; a DataError names a missing column, or the two candidates for one role and the option to choose."""
    found = _by_role(frame.columns)
    chosen: dict[str, str] = {}
    for role, given in (("user", user), ("item", item), ("rating", rating)):
        if given is not None:
            check_column(frame, given, role, where)
            chosen[role] = given
    for role in ("user", "item", "rating"):
        if role in chosen:
            continue
        candidates = [c for c in found.get(role, []) if c not in chosen.values()]
        if len(candidates) > 1:
            raise DataError(f"{where}: columns {candidates[0]!r} and {candidates[1]!r} could both be the {role} "
                            f"column; say which with {_OPTIONS[role]}.")
        if not candidates:
            raise DataError(f"{where}: no {role} column found among {list(map(str, frame.columns))}; name it with "
                            f"{_OPTIONS[role]}.")
        chosen[role] = candidates[0]
    if len(set(chosen.values())) < 3:
        raise DataError(f"{where}: the user, item and rating columns must be three different columns; got {chosen}.")
    if time is not None:
        check_column(frame, time, "time", where)
    times = [c for c in found.get("time", []) if c not in chosen.values()]
    titles = [c for c in found.get("title", []) if c not in chosen.values()]
    return CollabColumns(chosen["user"], chosen["item"], chosen["rating"], time or (times[0] if times else None),
                         titles[0] if titles else None)


def claim_columns(frame: pd.DataFrame) -> str | None:
    """Task inference: why `frame` is ratings (every column is the user, the item, the rating, a time or a title;
    exactly one user, item and rating column, a numeric rating), or None."""
    found = _by_role(frame.columns)
    named = sum(len(v) for v in found.values())
    if named != len(frame.columns) or any(len(found.get(r, [])) != 1 for r in ("user", "item", "rating")):
        return None
    if any(len(found.get(r, [])) > 1 for r in ("time", "title")):
        return None
    rating = frame[found["rating"][0]]
    if not pd.api.types.is_numeric_dtype(rating) or rating.dropna().empty:
        return None
    return f"columns {found['user'][0]!r}, {found['item'][0]!r} and {found['rating'][0]!r}: users, items and ratings"
