"""A loaded text model: predict on a string, a list of strings, a DataFrame or a CSV path.

    model = quicklearn.load("imdb_model")
    model.predict("A moving, patient film.")          # Prediction(label='positive', probability=0.93, ...)
    model.predict(["great", "dull"])                  # [Prediction, Prediction]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from .data.tabular import read_frame
from .errors import DataError, QuicklearnError
from .export import Prediction
from .models.text import TextModel, encoder_from_folder

__all__ = ["TextPredictor"]


class TextPredictor:
    """The exported encoder architecture, tokenizer and weights; no hub, no remote code."""

    def __init__(self, model: TextModel, tokenizer: Any, config: dict, device: str | torch.device = "cpu"):
        self.model, self.tokenizer, self.config = model.eval(), tokenizer, config
        self.device = torch.device(device)
        self.model.to(self.device)
        self.kind = config["kind"]
        self.classes: list[str] | None = config.get("classes")
        self.max_len = int(config["model"]["max_len"])
        self.text_cols: list[str] = config["model"].get("text_cols", ["text"])
        self.target: str = config.get("target", "target")

    @classmethod
    def from_files(cls, path: Path, config: dict, state: Mapping[str, torch.Tensor], device: str | torch.device) -> "TextPredictor":
        m = config.get("model", {})
        try:
            encoder, tokenizer = encoder_from_folder(path)
            model = TextModel(encoder, m["n_out"], m["pad_id"], pooling=m["pooling"], dropout=m["dropout"])
            model.load_state_dict(state)
        except (KeyError, RuntimeError, TypeError, OSError, ValueError) as e:
            raise QuicklearnError(f"{path}: cannot rebuild the text model ({e}). Export it again.") from e
        return cls(model, tokenizer, config, device)

    @torch.inference_mode()
    def raw(self, texts: Sequence[str], bs: int = 64) -> torch.Tensor:
        """Model outputs in input order (logits; regression values in the target's units)."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_len, padding=False)["input_ids"]
        order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))  # batches of similar length: less padding
        out = torch.empty((len(enc), self.model.head[-1].out_features))
        pad = self.model.pad_id
        for k in range(0, len(order), bs):
            idx = order[k:k + bs]
            width = max(len(enc[i]) for i in idx)
            x = torch.full((len(idx), width), pad, dtype=torch.int64)
            for j, i in enumerate(idx):
                x[j, : len(enc[i])] = torch.tensor(enc[i])
            out[idx] = self.model(x.to(self.device)).float().cpu()
        if self.kind == "regression":
            mean, std = self.config["target_stats"]
            return out.flatten() * std + mean
        return out

    def predict(self, data: str | Sequence[str] | pd.DataFrame | Path) -> Prediction | list[Prediction] | pd.DataFrame:
        """A string -> a Prediction; a list of strings -> a list; a DataFrame or CSV path -> its rows with
        `<target>_pred` (and `<target>_prob` for classes) appended."""
        if isinstance(data, str) and not data.lower().endswith((".csv", ".tsv")):
            return self._decode(self.raw([data])[0])
        if isinstance(data, (list, tuple)):
            if not all(isinstance(t, str) for t in data):
                raise DataError("predict on a list needs strings, one text each.")
            return [self._decode(o) for o in self.raw(list(data))]
        if isinstance(data, (str, Path, pd.DataFrame)):
            frame, where = read_frame(data)
            missing = [c for c in self.text_cols if c not in frame.columns]
            if missing:
                raise DataError(f"{where}: text column {missing[0]!r} is missing (the model reads {self.text_cols}).")
            sep = f" {getattr(self.tokenizer, 'sep_token', None) or '|'} "
            parts = frame[self.text_cols].astype("string").fillna("")
            texts = parts.iloc[:, 0].tolist() if len(self.text_cols) == 1 else [sep.join(v for v in r if v) for r in parts.itertuples(index=False)]
            preds = [self._decode(o) for o in self.raw(texts)]
            result = frame.copy()
            result[f"{self.target}_pred"] = [" ".join(p.label) if isinstance(p.label, list) else p.label for p in preds]
            if self.kind == "single":
                result[f"{self.target}_prob"] = [p.probability for p in preds]
            return result
        raise DataError(f"cannot predict on a {type(data).__name__}; give a string, a list of strings, a DataFrame or a CSV path.")

    def _decode(self, out: torch.Tensor) -> Prediction:
        if self.kind == "regression":
            return Prediction(float(out))
        classes = self.classes or []
        if self.kind == "multi":
            p = out.sigmoid()
            return Prediction([c for c, v in zip(classes, p) if v > self.config.get("thresh", 0.5)], None,
                              {c: float(v) for c, v in zip(classes, p)})
        p = out.softmax(0)
        i = int(p.argmax())
        return Prediction(classes[i], float(p[i]), {c: float(v) for c, v in zip(classes, p)})
