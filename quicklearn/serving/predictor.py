"""What every loaded model shares: the Predictor base, a Prediction, decoding one output row, and loading weights
into the model config.json describes (a one-line error when they do not fit). Each task's predictor
(tasks/<name>/predictor.py) adds how its inputs become model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from quicklearn.core.errors import ConfigError, QuicklearnError
from quicklearn.serving.format import CONFIG, WEIGHTS
from quicklearn.serving.thresholds import DEFAULT_THRESH, Thresh, check_thresh, label_thresh, merge_thresh

if TYPE_CHECKING:
    from quicklearn.tasks.base import Predicted

__all__ = ["Predictor", "Prediction", "decode_prediction", "load_state", "predict_csv_files"]


def load_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor], folder: Path) -> None:
    """Load the weights into the model that config.json describes; when they do not fit, one line names the first
    tensor at fault instead of torch's list of every mismatch."""
    own = model.state_dict()
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if wrong or missing or extra:
        if wrong:
            k = wrong[0]
            why = f"{k} is {list(state[k].shape)} in {WEIGHTS} but {list(own[k].shape)} in the model {CONFIG} describes"
        elif missing:
            why = f"{WEIGHTS} lacks {missing[0]} ({len(missing)} tensor(s) missing)"
        else:
            why = f"{WEIGHTS} has {extra[0]}, which the model {CONFIG} describes does not ({len(extra)} extra)"
        raise QuicklearnError(f"{folder}: cannot rebuild the model, {CONFIG} and {WEIGHTS} do not fit: {why}. They "
                              "come from different exports or one was edited; export the model again.")
    model.load_state_dict(state)


@dataclass
class Prediction:
    """One prediction: the label (or value), its probability, and every class's probability."""

    label: Any
    probability: float | None = None
    probs: dict[str, float] = field(default_factory=dict)


def decode_prediction(out: torch.Tensor, kind: str, classes: Sequence[str] | None,
                      thresh: float | Mapping[str, float] = DEFAULT_THRESH) -> Prediction:
    """One row of model output -> a Prediction: a value (regression), the labels over `thresh` (multi-label,
    sigmoid; a float, or per label a dict whose missing labels use 0.5), or the most likely class with every
    class's softmax probability."""
    if kind == "regression":
        return Prediction(float(out))
    classes = list(classes or [])
    if kind == "multi":
        p = out.sigmoid()
        return Prediction([c for c, v in zip(classes, p) if v > label_thresh(thresh, c)], None,
                          {c: float(v) for c, v in zip(classes, p)})
    p = out.softmax(0)
    i = int(p.argmax())
    return Prediction(classes[i], float(p[i]), {c: float(v) for c, v in zip(classes, p)})


class Predictor:
    """A loaded model folder: the network (eval mode, on `device`), its config.json, the target kind, the classes
    and, for multi-label models, the decision thresholds. `quicklearn.load` returns the predictor of the
    folder's task, a subclass that says how inputs become model inputs (`raw`) and predictions (`predict`)."""

    def __init__(self, model: torch.nn.Module, config: dict, device: str | torch.device = "cpu"):
        self.model, self.config = model.eval(), config
        self.device = torch.device(device)
        self.model.to(self.device)
        self.kind: str = config["kind"]
        self.classes: list[str] | None = config.get("classes")
        self.thresh: Thresh = DEFAULT_THRESH
        if self.kind == "multi":
            self.thresh = check_thresh(config.get("thresh", DEFAULT_THRESH), self.classes or [], f"{CONFIG} 'thresh'")

    @property
    def task(self) -> str:
        """The name of the task that wrote the model folder (config.json 'task')."""
        return self.config["task"]

    def raw(self, items: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Model outputs for `items` (logits; regression values in the target's units)."""
        raise NotImplementedError

    def predict(self, items: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def thresholds(self, override: Thresh | None = None) -> Thresh:
        """The multi-label threshold(s) in use: the model's (config.json 'thresh'), with `override` on top."""
        if override is None:
            return self.thresh
        if self.kind != "multi":
            raise ConfigError(f"thresh is for multi-label models; this model's target is {self.kind}. Leave it out.")
        return merge_thresh(self.thresh, check_thresh(override, self.classes or []), self.classes or [])


def predict_csv_files(predictor: Predictor, inputs: list[str], *, thresh: Any = None, tta: bool = False) -> "Predicted":
    """`quicklearn predict` for models that read rows (tables, texts): each CSV's rows with the prediction
    columns appended, one CSV after the other."""
    import pandas as pd

    from quicklearn.core.errors import DataError
    from quicklearn.tasks.base import Predicted

    if thresh is not None or tta:
        raise ConfigError(f"{'--thresh' if thresh is not None else '--tta'} is for image models; this is a {predictor.task} model.")
    if not inputs or not all(Path(i).suffix.lower() in (".csv", ".tsv", ".txt") for i in inputs):
        raise DataError(f"a {predictor.task} model predicts on CSV files; got {inputs[0] if inputs else 'nothing'}.")
    df = pd.concat([predictor.predict(Path(i).expanduser()) for i in inputs], ignore_index=True)
    return Predicted(df, [c for c in df.columns if str(c).endswith(("_pred", "_prob"))], index_label="row")
