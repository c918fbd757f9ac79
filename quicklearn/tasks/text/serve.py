"""How `quicklearn serve` serves a text model: JSON rows with the model's text column(s), joined as in training;
the texts of many requests are tokenized and run together (length-ordered, padded batches, as `predict` runs);
the answer is each row with the prediction columns appended (`quicklearn predict --format json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from quicklearn.tasks.base import ServeField, ServeSpec
from quicklearn.tasks.text.data import join_texts, text_separator

if TYPE_CHECKING:
    from quicklearn.tasks.text.predictor import TextPredictor

__all__ = ["serve_spec"]


def serve_spec(predictor: "TextPredictor") -> ServeSpec:
    """JSON rows of text -> the joined texts -> batched outputs -> the rows with the prediction columns."""
    cols = predictor.text_cols
    fields = [ServeField(c, "text", example="A moving, patient film." if k == 0 else None,
                         help=f"the text (at most {predictor.max_len} tokens are read)") for k, c in enumerate(cols)]

    def prepare(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
        frame = pd.DataFrame.from_records(rows, columns=cols)
        return join_texts(frame, cols, text_separator(predictor.tokenizer), "the request's rows"), rows

    def run(texts: list[str]) -> torch.Tensor:
        return predictor.raw(texts, bs=max(1, len(texts)))

    card = {"target": predictor.target, "text columns": ", ".join(cols), "max tokens": predictor.max_len}
    return ServeSpec(prepare=prepare, fields=fields, run=run, card=card)
