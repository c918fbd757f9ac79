"""A loaded collab model: predicted ratings for (user, item) pairs, a user's top items, an item's nearest items.

    model = quicklearn.load("movies_model")
    model.predict((1, 318))                     # Prediction(label=4.6): user 1, item 318
    model.predict("pairs.csv")                  # the rows with `prediction` and `cold_start` appended
    model.recommend(1, n=10, exclude_seen=True) # item, title, prediction: the 10 best-predicted unseen items
    model.similar("Toy Story (1995)", n=10)     # item, title, similarity (cosine of the item embeddings)

A user or item never seen in training is predicted from the global mean plus the known side's bias; `cold_start`
says which side was unknown (none, user, item or both). An unknown user's recommendations are the most-rated items.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from quicklearn.core.errors import DataError, QuicklearnError
from quicklearn.data.frames import check_column
from quicklearn.serving.predictor import Predictor, load_state
from quicklearn.tasks.collab.columns import CollabColumns
from quicklearn.tasks.collab.data import INDEX_FILE, SEEN_FILE, CollabIndex
from quicklearn.tasks.collab.model import CollabModel

__all__ = ["CollabPredictor", "COLD_START", "SIMILAR_MIN_RATINGS"]

log = logging.getLogger("quicklearn")

COLD_START = "cold_start"
SIMILAR_MIN_RATINGS = 10  # similar(): neighbours with at least this many training ratings (as interpret's tables)
_COLD = np.array(["none", "user", "item", "both"], dtype=object)  # index: user unknown + 2 * item unknown


class CollabPredictor(Predictor):
    """The model, the training users' and items' codes (collab.json) and the rated pairs (seen.safetensors)."""

    def __init__(self, model: CollabModel, config: dict, index: CollabIndex, seen: torch.Tensor,
                 device: str | torch.device = "cpu"):
        super().__init__(model, config, device)
        self.index = index
        self.columns = CollabColumns.from_dict(config["columns"])
        self.target: str = self.columns.rating
        self.seen = seen.long()

    @classmethod
    def from_files(cls, path: Path, config: dict, state: Mapping[str, torch.Tensor],
                   device: str | torch.device) -> "CollabPredictor":
        from quicklearn.core.safe_load import read_safetensors

        try:
            model = CollabModel(**config["model"])
            index = CollabIndex.from_dict(json.loads((path / INDEX_FILE).read_text(encoding="utf-8")))
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise QuicklearnError(f"{path}: cannot rebuild the collab model from config.json and {INDEX_FILE} ({e}). "
                                  "Export it again.") from e
        if index.n_users != model.user_bias.numel() or index.n_items != model.item_bias.numel():
            raise QuicklearnError(f"{path}: {INDEX_FILE} lists {len(index.users)} users and {len(index.items)} items, "
                                  "but config.json's model has other sizes. Export the model again.")
        load_state(model, state, path)
        seen = read_safetensors(path / SEEN_FILE, "Export the model again.", QuicklearnError)["pairs"]
        return cls(model, config, index, seen, device)

    # ---- codes ------------------------------------------------------------------------------------------------
    def codes(self, users: Sequence[Any] | pd.Series, items: Sequence[Any] | pd.Series) -> torch.Tensor:
        """(N, 2) int64 codes of users and items (0: not seen in training)."""
        return torch.from_numpy(np.stack([self.index.codes("user", users), self.index.codes("item", items)], 1)
                                .astype(np.int64))

    def frame_codes(self, frame: pd.DataFrame, where: str) -> torch.Tensor:
        """(N, 2) codes of a frame's user and item columns (the names the model was trained with)."""
        for what, col in (("user", self.columns.user), ("item", self.columns.item)):
            check_column(frame, col, what, where)
        for col in (self.columns.user, self.columns.item):
            if frame[col].isna().any():
                row = int(np.flatnonzero(frame[col].isna().to_numpy())[0])
                raise DataError(f"{where}: column {col!r} is empty in row {row}; every row needs a user and an item.")
        return self.codes(frame[self.columns.user], frame[self.columns.item])

    def _pairs(self, items: Sequence[Any]) -> torch.Tensor:
        users, its = [], []
        for p in items:
            if isinstance(p, Mapping):
                missing = [c for c in (self.columns.user, self.columns.item) if c not in p]
                if missing:
                    raise DataError(f"a pair {dict(p)!r} lacks {missing[0]!r}; give {{{self.columns.user!r}: ..., "
                                    f"{self.columns.item!r}: ...}} or a (user, item) tuple.")
                users.append(p[self.columns.user])
                its.append(p[self.columns.item])
            elif isinstance(p, (tuple, list)) and len(p) == 2:
                users.append(p[0])
                its.append(p[1])
            else:
                raise DataError(f"cannot read {p!r} as a (user, item) pair: give (user, item) tuples, dicts, a "
                                "DataFrame or a CSV.")
        return self.codes(pd.Series(users, dtype=object), pd.Series(its, dtype=object))

    def cold_start(self, codes: torch.Tensor) -> list[str]:
        """none, user, item or both per row: which side training never saw."""
        c = codes.numpy()
        return _COLD[(c[:, 0] == 0).astype(int) + 2 * (c[:, 1] == 0).astype(int)].tolist()

    # ---- outputs ------------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def raw_codes(self, codes: torch.Tensor, bs: int = 65536) -> torch.Tensor:
        """Predicted ratings (N,) of (N, 2) codes."""
        outs = [self.model(codes[k:k + bs].to(self.device)).float().cpu() for k in range(0, len(codes), bs)]
        out = torch.cat(outs) if outs else torch.empty((0, 1))
        return self.in_target_units(out).flatten()

    def raw(self, items: Sequence[Any], bs: int = 65536, tta: bool = False) -> torch.Tensor:
        """Predicted ratings of (user, item) tuples or {user_col: ..., item_col: ...} dicts."""
        self._no_tta(tta)
        return self.raw_codes(self._pairs(items), bs)

    def raw_frame(self, frame: pd.DataFrame, where: str, bs: int = 65536, tta: bool = False) -> torch.Tensor:
        self._no_tta(tta)
        return self.raw_codes(self.frame_codes(frame, where), bs)

    @staticmethod
    def _no_tta(tta: bool) -> None:
        if tta:
            from quicklearn.core.errors import ConfigError

            raise ConfigError("tta is for image models; a (user, item) pair has no views to average.")

    def is_one(self, data: Any) -> bool:
        """One pair is a (user, item) tuple or a dict; a list of them is many."""
        if isinstance(data, Mapping):
            return True
        return isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], (tuple, list, Mapping))

    def append_predictions(self, frame: pd.DataFrame, out: torch.Tensor, where: str = "the data",
                           thresh: Any = None) -> pd.DataFrame:
        """The frame with `prediction` and `cold_start` (none, user, item or both) appended."""
        if COLD_START in frame.columns:
            raise DataError(f"{where}: column {COLD_START!r} has the name of a prediction column; rename it in the "
                            "input.")
        result = super().append_predictions(frame, out, where, thresh)
        result[COLD_START] = self.cold_start(self.frame_codes(frame, where))
        return result

    # ---- recommendations ----------------------------------------------------------------------------------------
    def knows_user(self, user: Any) -> bool:
        return bool(self.index.codes("user", [user])[0] > 0)

    def _item_frame(self, codes: np.ndarray, values: np.ndarray, name: str) -> pd.DataFrame:
        frame = pd.DataFrame({"item": self.index.ids("item", codes.tolist())})
        if self.index.titles:
            frame["title"] = [self.index.title(int(c)) for c in codes]
        frame[name] = values
        frame["ratings"] = [self.index.item_counts[int(c) - 1] for c in codes]
        return frame

    def recommend(self, user: Any, n: int = 10, exclude_seen: bool = False, min_ratings: int = 0) -> pd.DataFrame:
        """The `n` items with the highest predicted rating for `user`: item, title (when known), prediction, and
        how many training ratings the item has. exclude_seen: leave out the items the user rated in the data the
        model was trained on (its training and validation rows). min_ratings: leave out items with fewer training
        ratings. An unknown user gets the most-rated items (with their global-mean-plus-bias prediction), and a
        warning says so."""
        n = int(n)
        if n < 1:
            raise DataError(f"n={n}: ask for at least 1 recommendation.")
        counts = np.asarray(self.index.item_counts)
        items = np.arange(1, self.index.n_items)
        u = int(self.index.codes("user", [user])[0])
        if u == 0:
            log.warning("user %r is not in the training data: recommending the most-rated items", user)
            order = items[np.argsort(-counts, kind="stable")]
            keep = order[counts[order - 1] >= min_ratings][:n]
            scores = self.raw_codes(torch.from_numpy(np.stack([np.zeros_like(keep), keep], 1))).numpy()
            return self._item_frame(keep, scores, "prediction")
        scores = self.raw_codes(torch.from_numpy(np.stack([np.full_like(items, u), items], 1))).numpy()
        allowed = counts >= min_ratings
        if exclude_seen:
            rated = self.seen[self.seen[:, 0] == u, 1].numpy()
            allowed[rated - 1] = False
        pool = items[allowed]
        top = pool[np.argsort(-scores[allowed], kind="stable")[:n]]
        return self._item_frame(top, scores[top - 1], "prediction")

    def find_item(self, item: Any) -> int:
        """An item's code, by ID or by title (exact, any case; else the one title containing the text)."""
        code = int(self.index.codes("item", [item])[0])
        if code:
            return code
        text = str(item).strip().lower()
        titles = [(t or "").lower() for t in (self.index.titles or [])]
        exact = [k + 1 for k, t in enumerate(titles) if t == text]
        if len(exact) == 1:
            return exact[0]
        part = exact or [k + 1 for k, t in enumerate(titles) if text and text in t]
        if len(part) == 1:
            return part[0]
        if part:
            shown = "; ".join(f"{self.index.ids('item', [c])[0]} ({self.index.title(c)})" for c in part[:3])
            raise DataError(f"item {item!r} matches {len(part)} titles: {shown}{' ...' if len(part) > 3 else ''}. "
                            "Give the item's ID or the whole title.")
        known = "its ID or its title" if self.index.titles else "its ID"
        raise DataError(f"item {item!r} is not one of the model's {len(self.index.items)} training items; give {known} "
                        f"(e.g. {self.index.ids('item', [1])[0]!r}).")

    def similar(self, item: Any, n: int = 10, min_ratings: int = SIMILAR_MIN_RATINGS) -> pd.DataFrame:
        """The `n` items nearest to `item` (an ID or a title) by the cosine of their embeddings: item, title,
        similarity, training ratings. min_ratings: leave out items with fewer training ratings (10 by default: weight
        decay leaves a rarely rated item's vector small and noisy, and its direction says little; 0 keeps all)."""
        n = int(n)
        if n < 1:
            raise DataError(f"n={n}: ask for at least 1 similar item.")
        code = self.find_item(item)
        with torch.no_grad():
            vectors = self.model.item_vectors().detach().float().cpu()[1:]
            unit = torch.nn.functional.normalize(vectors, dim=1)
            sims = (unit @ unit[code - 1]).numpy()
        allowed = np.asarray(self.index.item_counts) >= min_ratings
        allowed[code - 1] = False
        items = np.arange(1, self.index.n_items)[allowed]
        top = items[np.argsort(-sims[allowed], kind="stable")[:n]]
        return self._item_frame(top, sims[top - 1], "similarity")
