"""How `quicklearn serve` serves a table model: JSON rows with the columns it was trained on (unknown or
missing columns refused, null a missing value), pre-processed per request, one forward pass per batch of many
requests' rows; the answer is each row with the prediction columns appended (`quicklearn predict --format json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from quicklearn.tasks.base import ServeField, ServeSpec

if TYPE_CHECKING:
    from quicklearn.tasks.tabular.predictor import TabularPredictor

__all__ = ["serve_spec", "serve_fields"]


def serve_fields(predictor: "TabularPredictor") -> list[ServeField]:
    """One field per raw column a prediction needs: categories offer their training levels, numbers start at
    the training median, dates are strings."""
    proc, roles = predictor.processor, predictor.roles
    fields = []
    for col in proc.inputs:
        if col in roles.cont_names:
            fields.append(ServeField(col, "number", example=proc.medians.get(col), help="a number; null: missing"))
        elif col in roles.date_names:
            fields.append(ServeField(col, "string", help="a date, e.g. 2024-05-31; null: missing"))
        else:
            levels = proc.levels.get(col)
            fields.append(ServeField(col, "category", example=levels[0] if levels else None, choices=levels,
                                     help="one of the training levels (another maps to 'unknown'); null: missing"))
    return fields


def serve_spec(predictor: "TabularPredictor") -> ServeSpec:
    """JSON rows -> the processor's float rows -> batched outputs -> the rows with the prediction columns."""
    proc = predictor.processor

    def prepare(rows: list[dict[str, Any]]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
        frame = pd.DataFrame.from_records(rows, columns=proc.inputs)
        return list(proc.transform(frame, "the request's rows")), rows

    def run(items: list[torch.Tensor]) -> torch.Tensor:
        out = predictor.model(torch.stack(items).to(predictor.device)).float().cpu()
        return predictor.in_target_units(out)

    def onnx_input(items: list[torch.Tensor]) -> Any:
        return torch.stack(items).numpy()  # float32 (B, n_features): the graph's "features"

    card = {"target": predictor.target, "columns": f"{len(proc.inputs)} ({len(predictor.roles.cat_names)} categorical, "
                                                   f"{len(predictor.roles.cont_names)} continuous)"}
    return ServeSpec(prepare=prepare, fields=serve_fields(predictor), run=run, onnx_input=onnx_input, card=card)
