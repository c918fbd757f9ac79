"""A loaded text model: predict on a string, a list of strings, a DataFrame or a CSV path.

    model = quicklearn.load("imdb_model")
    model.predict("A moving, patient film.")          # Prediction(label='positive', probability=0.93, ...)
    model.predict(["great", "dull"])                  # [Prediction, Prediction]
    model.predict("reviews.csv")                      # its rows with the prediction columns appended
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from quicklearn.core.errors import ConfigError, DataError, QuicklearnError
from quicklearn.serving.predictor import Predictor, load_state
from quicklearn.tasks.text.data import TextLoader, join_texts, text_separator, tokenize
from quicklearn.tasks.text.model import TextModel, encoder_from_folder

__all__ = ["TextPredictor"]


class TextPredictor(Predictor):
    """The exported encoder architecture, tokenizer and weights; no hub, no remote code."""

    def __init__(self, model: TextModel, tokenizer: Any, config: dict, device: str | torch.device = "cpu"):
        super().__init__(model, config, device)
        self.tokenizer = tokenizer
        self.max_len = int(config["model"]["max_len"])
        self.text_cols: list[str] = config["model"].get("text_cols", ["text"])
        self.target: str = config.get("target", "target")

    @classmethod
    def from_files(cls, path: Path, config: dict, state: Mapping[str, torch.Tensor], device: str | torch.device) -> "TextPredictor":
        m = config.get("model", {})
        try:
            encoder, tokenizer = encoder_from_folder(path)
            model = TextModel(encoder, m["n_out"], m["pad_id"], pooling=m["pooling"], dropout=m["dropout"])
        except (KeyError, RuntimeError, TypeError, OSError, ValueError) as e:
            raise QuicklearnError(f"{path}: cannot rebuild the text model ({e}). Export it again.") from e
        load_state(model, state, path)  # one-line error when config.json and the weights disagree
        return cls(model, tokenizer, config, device)

    @torch.inference_mode()
    def raw(self, texts: Sequence[str], bs: int = 64, tta: bool = False) -> torch.Tensor:
        """Model outputs in input order (logits; regression values in the target's units)."""
        if tta:
            raise ConfigError("tta is for image models; a text has no views to average.")
        if not all(isinstance(t, str) for t in texts):
            raise DataError("predict on a list needs strings, one text each.")
        # the training code's tokenization and length-ordered, padded batches: less padding, the same ids
        loader = TextLoader(tokenize(self.tokenizer, list(texts), self.max_len), torch.zeros(len(texts)), self.model.pad_id, bs=bs)
        out = torch.empty((len(texts), self.model.head[-1].out_features))
        for idx in loader.batches():
            out[idx] = self.model(loader.collate(idx).to(self.device)).float().cpu()
        return self.in_target_units(out)

    def raw_frame(self, frame: pd.DataFrame, where: str, bs: int = 64, tta: bool = False) -> torch.Tensor:
        """The rows' text columns, joined as in training."""
        missing = [c for c in self.text_cols if c not in frame.columns]
        if missing:
            raise DataError(f"{where}: text column {missing[0]!r} is missing (the model reads {self.text_cols}).")
        return self.raw(join_texts(frame, self.text_cols, text_separator(self.tokenizer), where), bs, tta)

    def is_one(self, data: Any) -> bool:
        """One text is a string."""
        return isinstance(data, str)
