"""Interpreting text models: the validation texts in their own order, decoded; a loaded model on labelled texts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from quicklearn.analysis.interpretation import Interpretation, predict_in_chunks
from quicklearn.analysis.labelled import labelled_rows
from quicklearn.data.frames import check_column
from quicklearn.tasks.text.data import join_texts, text_separator

if TYPE_CHECKING:
    from quicklearn.tasks.text.predictor import TextPredictor
    from quicklearn.train.learner import Learner

__all__ = ["interpret_learner", "interpret_model"]


def interpret_learner(learn: "Learner") -> Interpretation:
    """The validation texts of a trained Learner, in the set's own order (its batches run sorted by length)."""
    dls, dl = learn.dls, learn.dls.valid
    interp = Interpretation.from_learner(learn, order=torch.cat(dl.batches()))
    interp.items = [dls.tokenizer.decode(ids, skip_special_tokens=True) for ids in dl.ids]
    interp.target_name = dls.y
    return interp


def interpret_model(predictor: "TextPredictor", data: Any, y: str | None) -> Interpretation:
    """A loaded text model on the labelled rows of a CSV or DataFrame."""
    frame, where, col, targets = labelled_rows(predictor, data, y)
    for text_col in predictor.text_cols:
        check_column(frame, text_col, "text", where)
    texts = join_texts(frame, predictor.text_cols, text_separator(predictor.tokenizer), where)
    preds = predict_in_chunks(predictor.raw, texts, "texts")
    interp = Interpretation.from_preds(preds, targets, predictor.classes, predictor.kind, texts,
                                       predictor.config.get("thresh", 0.5))
    interp.target_name = col
    return interp
