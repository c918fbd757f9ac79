"""What every loaded model shares: the Predictor base, a Prediction, decoding one output row, and loading weights
into the model config.json describes (a one-line error when they do not fit). Each task's predictor
(tasks/<name>/predictor.py) adds how its inputs become model inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd
import torch

from quicklearn.core.errors import ConfigError, DataError, QuicklearnError
from quicklearn.data.kinds import RESERVED_COLUMNS, Prediction, TargetKind, get_kind
from quicklearn.data.thresholds import DEFAULT_THRESH, Thresh, check_thresh, merge_thresh
from quicklearn.serving.format import CONFIG, WEIGHTS

if TYPE_CHECKING:
    from quicklearn.tasks.base import Predicted

__all__ = ["Predictor", "Prediction", "decode_prediction", "load_state", "predict_csv_files", "shown_columns", "cli_thresh"]


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


def decode_prediction(out: torch.Tensor, kind: str, classes: Sequence[str] | None,
                      thresh: float | Mapping[str, float] = DEFAULT_THRESH) -> Prediction:
    """One row of model output -> a Prediction, as its target kind decodes it (data/kinds.py)."""
    return get_kind(kind).decode(out, classes, thresh)


class Predictor:
    """A loaded model folder: the network (eval mode, on `device`), its config.json, the target kind, the classes
    and, for multi-label models, the decision thresholds. `quicklearn.load` returns the predictor of the
    folder's task, a subclass that says how its items and its tables become model outputs (`raw`, `raw_frame`).

    Every task's predictor answers the same way:
        model.predict(one)           -> a Prediction
        model.predict([one, two])    -> a list of Predictions
        model.predict(frame_or_csv)  -> the frame with `prediction` (and for classifiers `probability` and one
                                        `prob_<class>` per class; multi-label: labels joined by ';', no
                                        `probability`) appended
    """

    def __init__(self, model: torch.nn.Module, config: dict, device: str | torch.device = "cpu"):
        self.model, self.config = model.eval(), config
        self.device = torch.device(device)
        self.model.to(self.device)
        self.kind: str = config["kind"]
        self.target_kind: TargetKind = get_kind(self.kind)
        self.classes: list[str] | None = config.get("classes")
        self.thresh: Thresh = DEFAULT_THRESH
        if self.target_kind.thresholded:
            self.thresh = check_thresh(config.get("thresh", DEFAULT_THRESH), self.classes or [], f"{CONFIG} 'thresh'")

    @property
    def task(self) -> str:
        """The name of the task that wrote the model folder (config.json 'task')."""
        return self.config["task"]

    # ---- what each task's predictor says ---------------------------------------------------------------------
    def raw(self, items: Sequence[Any], bs: int = 64, tta: bool = False) -> torch.Tensor:
        """Model outputs for a list of items (logits; regression values in the target's units)."""
        raise NotImplementedError

    def raw_frame(self, frame: pd.DataFrame, where: str, bs: int = 64, tta: bool = False) -> torch.Tensor:
        """Model outputs for the rows of a table (its image paths, its feature columns, its text columns)."""
        raise NotImplementedError

    def is_one(self, data: Any) -> bool:
        """Whether `data` is one item (not a list of them)."""
        return not isinstance(data, (list, tuple))

    # ---- the same for every task ---------------------------------------------------------------------------------
    def predict(self, data: Any, bs: int = 64, *, thresh: Thresh | None = None, tta: bool = False) -> Any:
        """One item -> a Prediction; a list -> a list of Predictions; a DataFrame or CSV path -> the frame with
        the prediction columns appended. thresh: multi-label threshold(s) for this call, over the model's own.
        tta: test-time augmentation, where the task has views to average (images)."""
        thresholds = self.thresholds(thresh)
        if isinstance(data, pd.DataFrame) or (isinstance(data, (str, Path)) and str(data).lower().endswith((".csv", ".tsv"))):
            from quicklearn.data.frames import read_frame

            frame, where = read_frame(data)
            self._refuse_clashes(frame, where)  # before predicting: a name clash is known from the header
            return self.append_predictions(frame, self.raw_frame(frame, where, bs=bs, tta=tta), where, thresholds)
        one = self.is_one(data)
        items = [data] if one else list(data)
        preds = [self.target_kind.decode(o, self.classes, thresholds) for o in self.raw(items, bs=bs, tta=tta)]
        return preds[0] if one else preds

    def append_predictions(self, frame: pd.DataFrame, out: torch.Tensor, where: str = "the data",
                           thresh: Thresh | None = None) -> pd.DataFrame:
        """`frame` with the prediction columns of `out` appended; an input column of the same name is refused."""
        columns = self.target_kind.columns(out, self.classes, self.thresh if thresh is None else thresh)
        self._refuse_clashes(frame, where)
        result = frame.copy()
        for name, values in columns.items():
            result[name] = values
        return result

    @staticmethod
    def _refuse_clashes(frame: pd.DataFrame, where: str) -> None:
        clash = [str(c) for c in frame.columns if str(c) in RESERVED_COLUMNS or str(c).startswith("prob_")]
        if clash:
            raise DataError(f"{where}: column {clash[0]!r} has the name of a prediction column (prediction, probability, "
                            "prob_<class>); rename it in the input.")

    def thresholds(self, override: Thresh | None = None) -> Thresh:
        """The multi-label threshold(s) in use: the model's (config.json 'thresh'), with `override` on top."""
        if override is None:
            return self.thresh
        if not self.target_kind.thresholded:
            raise ConfigError(f"thresh is for multi-label models; this model's target is {self.kind}. Leave it out.")
        return merge_thresh(self.thresh, check_thresh(override, self.classes or []), self.classes or [])

    def in_target_units(self, out: torch.Tensor) -> torch.Tensor:
        """Regression outputs back in the target's units (the model predicts the standardized target)."""
        if self.target_kind.standardized and self.config.get("target_stats"):
            mean, std = self.config["target_stats"]
            return out.flatten() * std + mean
        return out


def cli_thresh(predictor: Predictor, text: str | None) -> Thresh | None:
    """--thresh as typed (0.3, or cat=0.3,dog=0.6), checked against the model's labels; None when not given."""
    if text is None:
        return None
    if not predictor.target_kind.thresholded:
        raise ConfigError(f"--thresh is for multi-label models; this model's target is {predictor.kind}.")
    from quicklearn.data.thresholds import parse_thresh

    return check_thresh(parse_thresh(text), predictor.classes or [], "--thresh")


def predict_csv_files(predictor: Predictor, inputs: list[str], *, thresh: Any = None, tta: bool = False) -> "Predicted":
    """`quicklearn predict` for models that read rows (tables, texts): each CSV's rows with the prediction
    columns appended, one CSV after the other."""
    from quicklearn.tasks.base import Predicted

    if tta:
        raise ConfigError(f"--tta is for image models; this is a {predictor.task} model.")
    if not inputs or not all(Path(i).suffix.lower() in (".csv", ".tsv", ".txt") for i in inputs):
        raise DataError(f"a {predictor.task} model predicts on CSV files; got {inputs[0] if inputs else 'nothing'}.")
    frames = [predictor.predict(Path(i).expanduser(), thresh=cli_thresh(predictor, thresh)) for i in inputs]
    df = pd.concat(frames, ignore_index=True)
    return Predicted(df, shown_columns(predictor), index_label="row")


def shown_columns(predictor: Predictor) -> list[str]:
    """What `quicklearn predict` shows in its terminal table: the prediction and, for one-label classifiers, its
    probability (every column goes to --out and --format csv|json)."""
    return [c for c in predictor.target_kind.columns(torch.empty(0, len(predictor.classes or [])), predictor.classes)
            if c in ("prediction", "probability")]
