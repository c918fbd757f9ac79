"""`collab_learner` (`ql.collab_learner`): a ratings CSV or DataFrame -> a Learner, in one call.

    from quicklearn.tasks.collab.learner import auto_epochs
    learn = ql.collab_learner("ratings.csv")                   # columns inferred and printed
    learn.fine_tune(auto_epochs(learn.dls), 2e-2, freeze_epochs=0, div=25)   # what `quicklearn train` runs
    learn.export("movies_model"); ql.load("movies_model").recommend(1, 10)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from quicklearn.core.distributed import device_for_rank
from quicklearn.core.errors import ConfigError, DataError
from quicklearn.core.progress import console
from quicklearn.data.frames import read_frame
from quicklearn.tasks.collab.columns import TITLE_NAMES, CollabColumns, infer_columns, role_of
from quicklearn.tasks.collab.data import (
    CollabDataLoaders,
    CollabIndex,
    CollabLoader,
    auto_bs,
    clean_ratings,
    id_keys,
    report_unknown,
    split_ratings,
)
from quicklearn.tasks.collab.model import CollabModel
from quicklearn.tasks.collab.recipe import DEFAULT_WD
from quicklearn.train.callbacks.base import Callback
from quicklearn.train.learner import Learner, Precision

__all__ = ["collab_learner", "collab_dataloaders", "auto_epochs", "auto_y_range"]

log = logging.getLogger("quicklearn")

Y_RANGE_MARGIN = 0.1  # y_range "auto": the training ratings' range widened by this share of it on each side


def collab_dataloaders(
    data: str | Path | pd.DataFrame,
    *,
    user: str | None = None,
    item: str | None = None,
    y: str | None = None,
    titles: str | Path | pd.DataFrame | None = None,
    splitter: Any = "random",
    valid_pct: float = 0.2,
    duplicates: str = "latest",
    seed: int = 42,
    bs: int | str = "auto",
    progress: bool | None = None,
) -> CollabDataLoaders:
    """Read the ratings, infer the columns, clean, split, code users and items from the training rows, tensorize."""
    if bs != "auto" and (not isinstance(bs, int) or bs < 1):
        raise DataError(f"bs={bs!r}: the batch size must be a whole number of at least 1, or 'auto'.")
    frame, where = read_frame(data)
    time_col = splitter.partition(":")[2] if isinstance(splitter, str) and splitter.startswith("user-time:") else None
    cols = infer_columns(frame, where, user=user, item=item, rating=y, time=time_col)
    if progress is not False:
        console().print(cols.describe(), highlight=False, markup=False)
    df = clean_ratings(frame, cols, where, duplicates)
    train_idx, valid_idx = split_ratings(df, splitter, valid_pct, seed, where)
    if not len(train_idx) or not len(valid_idx):
        raise DataError(f"{where}: the split leaves {len(train_idx)} training and {len(valid_idx)} validation ratings; "
                        "both need some. Check valid_pct (--valid-pct) and the split (--split).")
    train = df.iloc[train_idx]
    if train["user"].nunique() < 2 or train["item"].nunique() < 2:
        raise DataError(f"{where}: the training ratings come from one user or of one item only; collaborative "
                        "filtering needs several of each. Add ratings or lower valid_pct.")
    index = CollabIndex.fit(train, frame[cols.user], frame[cols.item])
    index.titles = _titles_for(index, frame, cols, titles, data, where, progress)
    codes = np.stack([index.codes("user", df["user"]), index.codes("item", df["item"])], 1)
    x = torch.from_numpy(codes.astype(np.int64))
    ratings = torch.tensor(df["rating"].to_numpy(), dtype=torch.float32)
    unknown = report_unknown(index, codes[valid_idx], where)
    known = (x > 0).all(1)
    bs = auto_bs(len(train_idx)) if bs == "auto" else int(bs)
    tr = torch.from_numpy(train_idx)
    va = torch.from_numpy(valid_idx)
    train_dl = CollabLoader(x[tr], ratings[tr], bs=min(bs, len(train_idx)), shuffle=True, drop_last=True, seed=seed)
    valid_dl = CollabLoader(x[va], ratings[va], bs=max(bs * 2, 1024), shuffle=False)
    return CollabDataLoaders(train_dl, valid_dl, index, cols, x[known].to(torch.int32), unknown)


def _titles_for(index: CollabIndex, frame: pd.DataFrame, cols: CollabColumns, titles: Any, data: Any, where: str,
                progress: bool | None) -> list[str | None] | None:
    """Each training item's title: from `titles` (a column of the ratings, a CSV or DataFrame of item + title,
    'none'), else the ratings' own title column, else the one CSV beside the data that has the item column and a
    title column (announced)."""
    if isinstance(titles, str) and titles.lower() == "none":
        return None
    source: pd.DataFrame | None = None
    title_col, said = None, None
    if isinstance(titles, str) and titles in frame.columns:
        source, title_col = frame, titles
    elif titles is not None:
        source, what = read_frame(titles)
        title_col = next((c for c in source.columns if role_of(c) == "title"), None)
        if title_col is None:
            raise DataError(f"{what}: no title column (named like {', '.join(TITLE_NAMES[:2])}) among "
                            f"{list(source.columns)}.")
    elif cols.title:
        source, title_col = frame, cols.title
    elif isinstance(data, (str, Path)):
        found = _sibling_titles(Path(data).expanduser(), cols.item)
        if found is not None:
            source, title_col, said = found[0], found[1], found[2]
    if source is None:
        return None
    item_col = cols.item if cols.item in source.columns else \
        next((c for c in source.columns if role_of(c) == "item"), None)
    if item_col is None:
        raise DataError(f"the titles have no item column ({cols.item!r}) among {list(source.columns)}; name it like "
                        "the ratings' one.")
    pairs = source[[item_col, title_col]].dropna()
    lookup = dict(zip(id_keys(pairs[item_col]), pairs[title_col].astype(str)))
    out = [lookup.get(i) for i in index.items]
    if progress is not False:
        n = sum(t is not None for t in out)
        from_what = said or f"column {title_col!r}"
        console().print(f"titles: {from_what} ({n} of {len(out)} items; choose with --titles FILE|COLUMN|none)",
                        highlight=False, markup=False)
    return out


def _sibling_titles(path: Path, item_col: str) -> tuple[pd.DataFrame, str, str] | None:
    """The one CSV beside `path` whose header has the item column and a title column (e.g. movielens' movies.csv)."""
    from quicklearn.data.sources import read_table

    found = []
    for other in sorted(path.parent.glob("*.csv")):
        if other.resolve() == path.resolve():
            continue
        try:
            head = read_table(other, nrows=5)
        except DataError:
            continue
        title = next((c for c in head.columns if role_of(c) == "title"), None)
        if item_col in head.columns and title is not None:
            found.append((other, title))
    if len(found) != 1:
        return None
    other, title = found[0]
    return read_table(other), title, f"{other.name}, column {title!r}"


def auto_y_range(ratings: torch.Tensor, margin: float = Y_RANGE_MARGIN) -> tuple[float, float]:
    """The training ratings' range widened by `margin` of it on each side: a sigmoid reaches its ends only at
    infinity, so the widest ratings stay reachable (0.5-5 stars -> 0.05-5.45; fastai's lessons use 0-5.5)."""
    lo, hi = float(ratings.min()), float(ratings.max())
    span = hi - lo or 1.0
    return lo - margin * span, hi + margin * span


def auto_epochs(dls: CollabDataLoaders, steps: int = 400, min_epochs: int = 3, max_epochs: int = 50) -> int:
    """Epochs for a budget of about `steps` optimizer steps (at least `min_epochs`, at most `max_epochs`): a rule
    in steps, not epochs, because weight decay shrinks the factors once a step. On movielens-small (78 steps an
    epoch) validation RMSE was flat from 390 to 620 steps (0.834-0.836) and worse at 230 (0.840)."""
    return int(min(max_epochs, max(min_epochs, math.ceil(steps / max(len(dls.train), 1)))))


def collab_learner(
    data: str | Path | pd.DataFrame,
    *,
    user: str | None = None,
    item: str | None = None,
    y: str | None = None,
    titles: str | Path | pd.DataFrame | None = None,
    splitter: Any = "random",
    valid_pct: float = 0.2,
    duplicates: str = "latest",
    arch: str = "dot",
    n_factors: int = 50,
    layers: Sequence[int] = (100,),
    dropout: float = 0.1,
    y_range: tuple[float, float] | str | None = "auto",
    bs: int | str = "auto",
    metrics: Sequence[str] | None = None,
    monitor: str | None = None,
    opt: str = "adamw",
    wd: float = DEFAULT_WD,
    grad_clip: float | None = None,
    precision: Precision = "fp32",
    device: str | torch.device | None = "auto",
    seed: int = 42,
    path: str | Path | None = None,
    cbs: Sequence[Callback] = (),
    progress: bool | None = None,
    recipe: dict | None = None,
    distributed: bool | None = None,
    sync_bn: bool = False,
    class_weights: Any = None,
    label_smoothing: float = 0.0,
) -> Learner:
    """Ratings -> columns -> split -> codes -> a biased dot product (or MLP, or both) -> a Learner.

    The target is a regression on the ratings' own scale: predictions pass through a sigmoid scaled to `y_range`
    ('auto': the training range widened by 10% each side; a (lo, hi) pair; None for no squashing). Defaults
    (wd, the lr of the recipe, batch size and the step budget of `auto_epochs`) were measured on movielens-small
    (benchmarks/collab.py)."""
    from quicklearn.train.learner import resolve_device

    if class_weights is not None:
        raise ConfigError("class_weights are for classifiers; collab models predict ratings (a regression).")
    if label_smoothing:
        raise ConfigError("label_smoothing is for classifiers; collab models predict ratings (a regression).")
    if arch not in ("dot", "nn", "both"):
        raise ConfigError(f"arch={arch!r}: a collab model is dot (biased dot product), nn (an MLP) or both.")
    torch.manual_seed(seed)
    dev = resolve_device(device_for_rank(device))
    dls = collab_dataloaders(data, user=user, item=item, y=y, titles=titles, splitter=splitter, valid_pct=valid_pct,
                             duplicates=duplicates, seed=seed, bs=bs, progress=progress)
    if y_range == "auto":
        y_range = auto_y_range(dls.train.targets)
    elif y_range is not None:
        lo, hi = (float(v) for v in y_range)  # type: ignore[union-attr]
        if not lo < hi:
            raise ConfigError(f"y_range={y_range!r}: needs lo < hi, e.g. (0, 5.5).")
        y_range = (lo, hi)
    mean = float(dls.train.targets.mean())
    torch.manual_seed(seed)
    shape = {"n_users": dls.index.n_users, "n_items": dls.index.n_items, "n_factors": int(n_factors), "arch": arch,
             "layers": [int(v) for v in layers], "dropout": float(dropout),
             "y_range": list(y_range) if y_range is not None else None}  # type: ignore[arg-type]
    model = CollabModel(**{**shape, "y_range": y_range}, mean=mean)  # type: ignore[arg-type]
    config = {"task": "collab", "model": shape, "recipe": recipe}
    return Learner(dls, model, metrics=metrics, monitor=monitor, opt=opt, wd=wd, device=dev, precision=precision,
                   channels_last=False, grad_clip=grad_clip, path=path, cbs=cbs, seed=seed, progress=progress,
                   config=config, distributed=distributed, sync_bn=sync_bn)
