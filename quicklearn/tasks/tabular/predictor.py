"""A loaded tabular model: predict on a dict (one row), a list of dicts, a DataFrame or a CSV path.

    model = quicklearn.load("titanic_model")
    model.predict({"Pclass": 3, "Sex": "male", "Age": 22})      # Prediction(label='0', probability=0.91, ...)
    model.predict([{"Pclass": 1}, {"Pclass": 3}])               # [Prediction, Prediction]
    model.predict("test.csv")                                   # the rows with prediction columns appended
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from quicklearn.core.errors import ConfigError, DataError, QuicklearnError
from quicklearn.serving.predictor import Predictor, load_state
from quicklearn.tasks.tabular.data import ColumnRoles, TabularProcessor
from quicklearn.tasks.tabular.model import TabularModel, model_kwargs

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
            model = TabularModel(**model_kwargs({"kind": config.get("kind", "single"), **m}))
        except (KeyError, RuntimeError, TypeError) as e:
            raise QuicklearnError(f"{path}: cannot rebuild the tabular model from its config.json ({e}). Export it again.") from e
        load_state(model, state, path)  # one-line error when config.json and the weights disagree
        return cls(model, config, device)

    @torch.inference_mode()
    def raw(self, data: pd.DataFrame | Sequence[Mapping[str, Any]], where: str = "the data", bs: int = 4096,
            tta: bool = False) -> torch.Tensor:
        """Model outputs for the rows of a DataFrame or a list of dicts (logits; regression values in the target's
        units)."""
        if tta:
            raise ConfigError("tta is for image models; a table row has no views to average.")
        frame = data if isinstance(data, pd.DataFrame) else self._frame(data)
        x = self.processor.transform(frame, where)
        outs = [self.model(x[k:k + bs].to(self.device)).float().cpu() for k in range(0, len(x), bs)]
        out = torch.cat(outs) if outs else torch.empty((0, self.model.out_features))
        return self.in_target_units(out)

    def raw_frame(self, frame: pd.DataFrame, where: str, bs: int = 4096, tta: bool = False) -> torch.Tensor:
        return self.raw(frame, where, bs, tta)

    def is_one(self, data: Any) -> bool:
        """One row is a dict (column -> value)."""
        return isinstance(data, Mapping)

    @staticmethod
    def _frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        if not all(isinstance(r, Mapping) for r in rows):
            raise DataError("predict on a list needs dicts, one per row (column -> value).")
        return pd.DataFrame([dict(r) for r in rows])
