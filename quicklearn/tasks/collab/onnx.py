"""ONNX export of collab models: (user code, item code) pairs in, the predicted rating out. The codes are the
model folder's (collab.json): code i + 1 is the i-th user or item of the metadata's lists, 0 an unknown one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from quicklearn.serving.graph import base_meta, export_copy, output_names, outputs, predictor_outputs, target_stats
from quicklearn.tasks.base import OnnxSpec

if TYPE_CHECKING:
    from quicklearn.tasks.collab.predictor import CollabPredictor

__all__ = ["PairServing", "onnx_spec"]


class PairServing(nn.Module):
    """int64 (B, 2) codes (user, item) -> the collab model -> "value": the rating in the ratings' units."""

    def __init__(self, model: nn.Module, kind: str, stats: tuple[float, float] | None):
        super().__init__()
        self.model, self.kind, self.target_stats = model, kind, stats

    def forward(self, pairs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return outputs(self.model(pairs), self.kind, self.target_stats)


def onnx_spec(predictor: "CollabPredictor") -> OnnxSpec:
    """The pair-scoring module, an example batch of codes, and the metadata with the users' and items' IDs."""
    index = predictor.index
    module = PairServing(export_copy(predictor.model), predictor.kind, target_stats(predictor.config)).eval()
    meta = base_meta(predictor) | dict(
        input={"name": "pairs", "dtype": "int64", "shape": ["batch", 2],
               "how": "column 0: the user's code, column 1: the item's code; code i + 1 is users[i] / items[i] "
                      "below, 0 a user or item training never saw (predicted from the global mean plus the known "
                      "side's bias)"},
        users=index.ids("user", list(range(1, index.n_users))), items=index.ids("item", list(range(1, index.n_items))),
        columns=predictor.columns.to_dict(), y_range=predictor.config["model"].get("y_range"))

    def random_input(n: int, gen: torch.Generator) -> torch.Tensor:
        """Random codes, unknown (0) ones included."""
        return torch.stack([torch.randint(0, index.n_users, (n,), generator=gen),
                            torch.randint(0, index.n_items, (n,), generator=gen)], 1)

    def reference(x: torch.Tensor) -> list[torch.Tensor]:
        """CollabPredictor.raw_codes' network on the same codes."""
        return predictor_outputs(predictor, x)

    example = torch.tensor([[1, 1], [0, 1], [1, 0]], dtype=torch.int64)  # batch 3: not the pair axis's 2
    return OnnxSpec(module, example, "pairs", output_names(predictor.kind), meta, random_input, reference)
