"""Interpreting table models: rows described as column=value, and the permutation importance of each column."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quicklearn.analysis.interpretation import Interpretation
from quicklearn.analysis.labelled import labelled_rows
from quicklearn.tasks.tabular.data import _cat_key, row_descriptions
from quicklearn.tasks.tabular.importance import importance_label, learner_importance, predictor_importance

if TYPE_CHECKING:
    from quicklearn.tasks.tabular.predictor import TabularPredictor
    from quicklearn.train.learner import Learner

__all__ = ["interpret_learner", "interpret_model"]


def interpret_learner(learn: "Learner") -> Interpretation:
    """The validation rows of a trained table Learner, described as column=value, with feature importance."""
    dls = learn.dls
    interp = Interpretation.from_learner(learn)
    interp.items = row_descriptions(dls.processor, dls.valid.x.cpu())
    interp.importance = lambda n_repeats, seed: learner_importance(learn, n_repeats, seed)
    interp.importance_label = importance_label(learn.kind)
    interp.target_name = dls.y
    return interp


def interpret_model(predictor: "TabularPredictor", data: Any, y: str | None) -> Interpretation:
    """A loaded table model on the labelled rows of a CSV or DataFrame."""
    frame, where, col, targets = labelled_rows(predictor, data, y, _cat_key)  # the training labels' form
    preds = predictor.raw(frame, where)
    shown = frame[[c for c in predictor.processor.inputs if c in frame.columns]]
    items = [", ".join(f"{c}={v}" for c, v in row.items()) for row in shown.to_dict("records")]
    interp = Interpretation.from_preds(preds, targets, predictor.classes, predictor.kind, items,
                                       predictor.config.get("thresh", 0.5))
    interp.importance = lambda n_repeats, seed: predictor_importance(predictor, frame, targets, n_repeats, seed)
    interp.importance_label = importance_label(predictor.kind)
    interp.target_name = col
    return interp


