"""A loaded tabular model: predict on a DataFrame, a dict (one row), a list of dicts, or a CSV path.

    model = quicklearn.load("titanic_model")
    model.predict({"Pclass": 3, "Sex": "male", "Age": 22})      # Prediction(label='0', probability=0.91, ...)
    model.predict("test.csv")                                   # the rows with prediction columns appended
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch

from quicklearn.core.errors import DataError, QuicklearnError
from quicklearn.data.frames import read_frame
from quicklearn.serving.predictor import Prediction, Predictor, decode_prediction, load_state
from quicklearn.tasks.tabular.data import ColumnRoles, TabularProcessor
from quicklearn.tasks.tabular.model import TabularModel

__all__ = ["TabularPredictor"]


class TabularPredictor(Predictor):
    """The pre-processing fitted at training time (from JSON) plus the model; unknown categories map to "unknown"."""

    def __init__(self, model: TabularModel, config: dict, device: str | torch.device = "cpu"):
        super().__init__(model, config, device)
        self.processor = TabularProcessor.from_dict(config["processor"])
        self.roles = ColumnRoles.from_dict(config["roles"])
        self.target: str = config.get("target", "target")

    @classmethod
    def from_files(cls, path: Path, config: dict, state: Mapping[str, torch.Tensor], device: str | torch.device) -> "TabularPredictor":
        m = config.get("model", {})
        try:
            model = TabularModel(m["cardinalities"], m["n_cont"], m["n_out"], layers=m["layers"], dropout=m["dropout"],
                                 embed_dropout=m.get("embed_dropout", 0.0), y_range=m.get("y_range"))
        except (KeyError, RuntimeError, TypeError) as e:
            raise QuicklearnError(f"{path}: cannot rebuild the tabular model from its config.json ({e}). Export it again.") from e
        load_state(model, state, path)  # one-line error when config.json and the weights disagree
        return cls(model, config, device)

    @torch.inference_mode()
    def raw(self, frame: pd.DataFrame, where: str = "the data", bs: int = 4096) -> torch.Tensor:
        """Model outputs for the rows of `frame` (logits; regression values in the target's units)."""
        x = self.processor.transform(frame, where)
        outs = [self.model(x[k:k + bs].to(self.device)).float().cpu() for k in range(0, len(x), bs)]
        out = torch.cat(outs) if outs else torch.empty((0, self.model.out.out_features))
        if self.kind == "regression":
            mean, std = self.config["target_stats"]
            out = out.flatten() * std + mean
        return out

    def predict(self, data: pd.DataFrame | Mapping[str, Any] | list | str | Path) -> Prediction | pd.DataFrame:
        """A dict -> one Prediction; a DataFrame, list of dicts or CSV path -> those rows with prediction columns
        appended: `<target>_pred`, plus `<target>_prob` and one `prob_<class>` per class for classification."""
        if isinstance(data, Mapping):
            frame = pd.DataFrame([dict(data)])
            return decode_prediction(self.raw(frame, "the row")[0], self.kind, self.classes)
        if isinstance(data, list):
            if not all(isinstance(r, Mapping) for r in data):
                raise DataError("predict on a list needs dicts, one per row (column -> value).")
            frame, where = pd.DataFrame([dict(r) for r in data]), "the rows"
        elif isinstance(data, (str, Path, pd.DataFrame)):
            frame, where = read_frame(data)
        else:
            raise DataError(f"cannot predict on a {type(data).__name__}; give a DataFrame, a dict, a list of dicts or a CSV path.")
        return self.append_predictions(frame, self.raw(frame, where))

    def append_predictions(self, frame: pd.DataFrame, out: torch.Tensor) -> pd.DataFrame:
        result = frame.copy()
        col = f"{self.target}_pred"
        if self.kind == "regression":
            result[col] = out.numpy()
            return result
        probs = out.softmax(1)
        best = probs.argmax(1)
        classes = self.classes or []
        result[col] = [classes[int(i)] for i in best]
        result[f"{self.target}_prob"] = probs.max(1).values.numpy()
        for j, c in enumerate(classes):
            result[f"prob_{c}"] = probs[:, j].numpy()
        return result
