"""Interpreting collab models: the regression views every task has (predicted vs actual, top losses), plus the
items with the highest and lowest bias, a 2-D PCA map of the item embeddings (most-rated items labelled) and
the RMSE by how many training ratings the user has (activity buckets; 0 = a user training never saw)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from quicklearn.analysis.interpretation import Interpretation
from quicklearn.analysis.labelled import labelled_rows

if TYPE_CHECKING:
    from quicklearn.tasks.collab.data import CollabIndex
    from quicklearn.tasks.collab.model import CollabModel
    from quicklearn.tasks.collab.predictor import CollabPredictor
    from quicklearn.train.learner import Learner

__all__ = ["interpret_learner", "interpret_model", "bias_tables", "activity_table", "item_map", "item_map_figure",
           "ACTIVITY_BUCKETS"]

ACTIVITY_BUCKETS = (0, 1, 5, 20, 50, 200)  # lower edges of the users' training-rating counts
MIN_RATINGS = 10  # bias tables and the map: items with at least this many training ratings (else all items)


def _describe(index: "CollabIndex", codes: torch.Tensor) -> list[str]:
    users, items = index.ids("user", codes[:, 0].tolist()), index.ids("item", codes[:, 1].tolist())
    out = []
    for u, i, c in zip(users, items, codes[:, 1].tolist()):
        title = index.title(c)
        out.append(f"user {u if u is not None else '<new>'}, item {i if i is not None else '<new>'}"
                   + (f" ({title})" if title else ""))
    return out


def _frequent(index: "CollabIndex", min_ratings: int, at_least: int) -> np.ndarray:
    """Codes of the items with at least `min_ratings` training ratings; every item when fewer than `at_least` do."""
    counts = np.asarray(index.item_counts)
    codes = np.flatnonzero(counts >= min_ratings) + 1
    return codes if len(codes) >= at_least else np.arange(1, index.n_items)


def bias_tables(model: "CollabModel", index: "CollabIndex", n: int = 15,
                min_ratings: int = MIN_RATINGS) -> dict[str, pd.DataFrame]:
    """The `n` items with the highest and the lowest learned bias (what the model thinks of an item whoever rates
    it), among items with at least `min_ratings` training ratings."""
    codes = _frequent(index, min_ratings, 2 * n)
    bias = model.item_bias.detach().float().cpu().numpy()[codes]
    order = np.argsort(-bias, kind="stable")

    def table(picks: np.ndarray) -> pd.DataFrame:
        c = codes[picks]
        frame = pd.DataFrame({"item": index.ids("item", c.tolist())})
        if index.titles:
            frame["title"] = [index.title(int(k)) for k in c]
        frame["bias"] = bias[picks]
        frame["ratings"] = [index.item_counts[int(k) - 1] for k in c]
        return frame

    return {"items_highest_bias": table(order[:n]), "items_lowest_bias": table(order[::-1][:n])}


def activity_table(preds: torch.Tensor, targets: torch.Tensor, user_codes: torch.Tensor,
                   index: "CollabIndex") -> pd.DataFrame:
    """RMSE and MAE of the ratings by the user's number of training ratings, in buckets (0: a new user)."""
    counts = np.concatenate([[0], np.asarray(index.user_counts)])[user_codes.numpy()]
    err = (preds.flatten() - targets.flatten()).double().numpy()
    edges = [*ACTIVITY_BUCKETS, np.inf]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (counts >= lo) & (counts < hi)
        if not mask.any():
            continue
        label = "0 (new)" if lo == 0 and hi == 1 else f"{int(lo)}+" if hi == np.inf else f"{int(lo)}-{int(hi) - 1}"
        rows.append({"user_ratings": label, "users": int(len(np.unique(user_codes.numpy()[mask]))),
                     "ratings": int(mask.sum()), "rmse": float(np.sqrt((err[mask] ** 2).mean())),
                     "mae": float(np.abs(err[mask]).mean())})
    return pd.DataFrame(rows, columns=["user_ratings", "users", "ratings", "rmse", "mae"])


def item_map(model: "CollabModel", index: "CollabIndex", min_ratings: int = MIN_RATINGS) -> pd.DataFrame:
    """Item embeddings projected on their first two principal components: item, title, pc1, pc2, ratings (items
    with at least `min_ratings` training ratings), most-rated first."""
    codes = _frequent(index, min_ratings, 3)
    vectors = model.item_vectors().detach().double().cpu().numpy()[codes]
    centred = vectors - vectors.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    frame = pd.DataFrame({"item": index.ids("item", codes.tolist()),
                          "title": [index.title(int(c)) for c in codes] if index.titles else None,
                          "pc1": xy[:, 0], "pc2": xy[:, 1] if xy.shape[1] > 1 else 0.0,
                          "ratings": [index.item_counts[int(c) - 1] for c in codes]})
    return frame.sort_values("ratings", ascending=False, kind="stable").reset_index(drop=True)


def item_map_figure(frame: pd.DataFrame, labelled: int = 30):  # noqa: ANN201 (a matplotlib Figure)
    """The item map as a scatter plot (size by number of ratings), the `labelled` most-rated items named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 8))
    sizes = 4 + 40 * np.sqrt(frame["ratings"] / max(frame["ratings"].max(), 1))
    ax.scatter(frame["pc1"], frame["pc2"], s=sizes, alpha=0.35, color="#4c72b0", edgecolors="none")
    top = frame.head(labelled)
    ax.scatter(top["pc1"], top["pc2"], s=18, color="#c44e52")
    for row in top.itertuples():
        name = str(row.title if isinstance(row.title, str) and row.title else row.item)
        ax.annotate(name if len(name) <= 32 else name[:31] + "…", (row.pc1, row.pc2), fontsize=7,
                    xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("first principal component of the item embeddings")
    ax.set_ylabel("second principal component")
    ax.set_title(f"Item embeddings, PCA ({len(frame)} items; the {len(top)} most-rated labelled)", fontsize=11)
    return fig


def _with_extras(interp: Interpretation, model: "CollabModel", index: "CollabIndex",
                 codes: torch.Tensor) -> Interpretation:
    interp.items = _describe(index, codes)
    interp.tables.update(bias_tables(model, index))
    interp.tables["rmse_by_user_activity"] = activity_table(interp.preds, interp.targets, codes[:, 0], index)
    frame = item_map(model, index)
    interp.figures["item_map"] = lambda: item_map_figure(frame)
    return interp


def interpret_learner(learn: "Learner") -> Interpretation:
    """A trained collab Learner's validation ratings, with the item biases, the map and RMSE by user activity."""
    interp = Interpretation.from_learner(learn)
    interp.target_name = learn.dls.columns.rating
    return _with_extras(interp, learn.model, learn.dls.index, learn.dls.valid.x.cpu())


def interpret_model(predictor: "CollabPredictor", data: Any, y: str | None) -> Interpretation:
    """A loaded collab model on the labelled ratings of a CSV or DataFrame."""
    frame, where, col, targets = labelled_rows(predictor, data, y)
    codes = predictor.frame_codes(frame, where)
    interp = Interpretation.from_preds(predictor.raw_codes(codes), targets, None, "regression")
    interp.target_name = col
    return _with_extras(interp, predictor.model, predictor.index, codes)
