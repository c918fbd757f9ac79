"""ONNX export of table models: the pre-processed float rows in (the model folder's TabularProcessor output),
logits + probs or the value out; the pre-processing recipe travels in the metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from quicklearn.serving.graph import base_meta, export_copy, output_names, outputs, predictor_outputs, target_stats
from quicklearn.tasks.base import OnnxSpec
from quicklearn.tasks.tabular.data import SCALING_HOW

if TYPE_CHECKING:
    from quicklearn.tasks.tabular.predictor import TabularPredictor

__all__ = ["TableServing", "onnx_spec", "random_features"]


class TableServing(nn.Module):
    """float32 (B, n_features) pre-processed rows -> the table model -> logits + probs (or the value)."""

    def __init__(self, model: nn.Module, kind: str, stats: tuple[float, float] | None):
        super().__init__()
        self.model, self.kind, self.target_stats = model, kind, stats

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return outputs(self.model(features), self.kind, self.target_stats)


def random_features(cardinalities: list[int], n_cont: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """`n` random pre-processed rows: a valid code per categorical column, standard-normal continuous values."""
    codes = [torch.randint(0, c, (n, 1), generator=gen).float() for c in cardinalities]
    return torch.cat([*codes, torch.randn(n, n_cont, generator=gen)], 1)


def onnx_spec(predictor: "TabularPredictor") -> OnnxSpec:
    """The table serving module, an example of pre-processed rows and the metadata with the processor's recipe."""
    proc, kind = predictor.processor, predictor.kind
    columns = [*proc.cat_names, *proc.cont_names]
    module = TableServing(export_copy(predictor.model), kind, target_stats(predictor.config)).eval()
    meta = base_meta(predictor) | dict(
        input={"name": "features", "dtype": "float32", "shape": ["batch", len(columns)],
               "how": "the model folder's pre-processing (TabularProcessor.transform): one code per categorical "
                      "column (0 unknown, 1 missing, 2.. the levels below in order), then per continuous column, "
                      f"missing values filled with the median, {SCALING_HOW[proc.scaling]} (processor.scaling = "
                      f"{proc.scaling!r})"},
        feature_columns=columns, n_categorical=len(proc.cat_names), processor=proc.to_dict())

    def random_input(n: int, gen: torch.Generator) -> torch.Tensor:
        return random_features(proc.cardinalities, len(proc.cont_names), n, gen)

    def reference(x: torch.Tensor) -> list[torch.Tensor]:
        """TabularPredictor.raw after its transform."""
        return predictor_outputs(predictor, x)

    return OnnxSpec(module, random_input(2, torch.Generator().manual_seed(0)), "features", output_names(kind), meta,
                    random_input, reference)
