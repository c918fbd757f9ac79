"""`interpret(learner | loaded model, data)`: where a model errs. The model's task builds the Interpretation
(tasks/<name>/interpret.py); this is the one entry point for all of them.

    interp = ql.interpret(learn)                        # a trained Learner: its validation set
    interp = ql.interpret(ql.load("model"), "test/")    # a loaded model and labelled data
"""

from __future__ import annotations

from typing import Any

from quicklearn.analysis.interpretation import Interpretation
from quicklearn.core.errors import ConfigError
from quicklearn.serving.predictor import Predictor
from quicklearn.tasks.registry import get_task
from quicklearn.train.learner import Learner

__all__ = ["interpret"]


def interpret(source: "Learner | Predictor", data: Any = None, *, y: str | None = None,
              thresh: float | dict[str, float] | None = None) -> Interpretation:
    """Interpret a trained Learner on its validation set, or a loaded model (`quicklearn.load`) on labelled `data`:
    images (a folder per class, or a CSV of paths with label column `y`), or a table / texts CSV or DataFrame with
    its target column `y` (default: the column the model was trained on).

    thresh: multi-label only, threshold(s) over the model's own (0.5 for a Learner), e.g. `fit_thresholds(learn)`."""
    if isinstance(source, Learner):
        if data is not None or y is not None:
            raise ConfigError("a Learner is interpreted on its validation set; for other data, export it "
                              "(learn.export(dir)) and interpret quicklearn.load(dir) on that data.")
        if not isinstance(getattr(source.dls, "task", None), str):
            raise ConfigError("interpret needs data that says which task it is: build the Learner with "
                              "vision_learner, tabular_learner, text_learner or another task's builder.")
        interp = get_task(source.dls.task).interpret_learner(source)
    elif not isinstance(source, Predictor):
        raise ConfigError(f"cannot interpret a {type(source).__name__}: give a Learner or a model from quicklearn.load(dir).")
    elif data is None:
        raise ConfigError("a loaded model needs labelled data to interpret: interpret(model, 'folder_or.csv', y='label') "
                          "(--data in the CLI).")
    else:
        interp = get_task(source.task).interpret_model(source, data, y)
    if thresh is not None:
        if interp.kind != "multi":
            raise ConfigError(f"thresh is for multi-label models; this one's target is {interp.kind}. Leave it out.")
        if isinstance(thresh, dict):  # per label, over the model's own thresholds
            model_t = dict(zip(interp.classes or [], interp._thresholds().tolist()))
            thresh = {**model_t, **thresh}
        interp.thresh = thresh
        interp._thresholds()  # validate now, not at the first table
    return interp
