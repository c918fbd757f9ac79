"""How `quicklearn serve` serves a collab model: JSON (user, item) rows scored in batches (the answer: each row
with `prediction` and `cold_start`, as `quicklearn predict --format json`), plus POST /recommend (a user's top
items) and POST /similar (an item's nearest items), as `quicklearn recommend` / `similar` answer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from quicklearn.tasks.base import ServeField, ServeRoute, ServeSpec

if TYPE_CHECKING:
    from quicklearn.tasks.collab.predictor import CollabPredictor

__all__ = ["serve_spec"]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


def serve_spec(predictor: "CollabPredictor") -> ServeSpec:
    """(user, item) rows -> codes -> batched ratings; /recommend and /similar as the task's own routes."""
    cols, index = predictor.columns, predictor.index
    first_user, first_item = index.ids("user", [1])[0], index.ids("item", [1])[0]
    fields = [ServeField(cols.user, "id", example=first_user, help="a user ID (one training never saw: cold start)"),
              ServeField(cols.item, "id", example=first_item, help="an item ID (one training never saw: cold start)")]

    def prepare(rows: list[dict[str, Any]]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
        frame = pd.DataFrame.from_records(rows, columns=[cols.user, cols.item])
        return list(predictor.frame_codes(frame, "the request's rows")), rows

    def run(items: list[torch.Tensor]) -> torch.Tensor:
        return predictor.raw_codes(torch.stack(items))

    def onnx_input(items: list[torch.Tensor]) -> Any:
        return torch.stack(items).numpy()  # int64 (B, 2) codes: the graph's "pairs"

    def recommend(body: dict[str, Any]) -> list[dict[str, Any]]:
        return _records(predictor.recommend(body["user"], n=body["n"], exclude_seen=body["exclude_seen"],
                                            min_ratings=body["min_ratings"]))

    def similar(body: dict[str, Any]) -> list[dict[str, Any]]:
        return _records(predictor.similar(body["item"], n=body["n"], min_ratings=body["min_ratings"]))

    n = ServeField("n", "integer", required=False, default=10, example=10, help="how many items")
    routes = [
        ServeRoute("/recommend", "A user's top items by predicted rating", [
            ServeField("user", "id", example=first_user, help="a user ID (an unknown one gets the most-rated items)"),
            n, ServeField("exclude_seen", "boolean", required=False, default=False, example=True,
                          help="leave out the items the user rated in the training data"),
            ServeField("min_ratings", "integer", required=False, default=0, help="leave out items with fewer ratings")],
            recommend),
        ServeRoute("/similar", "An item's nearest items by embedding cosine", [
            ServeField("item", "id", example=first_item, help="an item ID or title"), n,
            ServeField("min_ratings", "integer", required=False, default=10, help="leave out items with fewer ratings")],
            similar),
    ]
    card = {"users": len(index.users), "items": len(index.items), "rating": cols.rating}
    return ServeSpec(prepare=prepare, fields=fields, run=run, onnx_input=onnx_input, routes=routes, card=card)
