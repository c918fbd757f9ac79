"""Model directories: `model.safetensors` + `config.json`. Loading needs no training data and unpickles nothing.

    learn.export("model_dir")
    model = quicklearn.load("model_dir")
    model.predict("img.jpg")   # Prediction(label='bees', probability=0.97, probs={...})
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from safetensors.torch import load_file, save_file

from ._version import __version__
from .data.images import UnreadableImage, decode_image
from .data.pipeline import ImagePipeline
from .errors import DataError, QuicklearnError
from .fileio import atomic_path, write_json

if TYPE_CHECKING:
    from PIL import Image

    from .train.learner import Learner

__all__ = ["export_learner", "load", "Predictor", "Prediction", "FORMAT_VERSION"]

FORMAT_VERSION = 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def export_learner(learn: "Learner", path: str | Path) -> Path:
    """Write `learn`'s model to the directory `path` (created if needed); files are replaced atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in learn.model.state_dict().items()}
    with atomic_path(path / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    dls = learn.dls
    config = {
        "format_version": FORMAT_VERSION,
        "quicklearn_version": __version__,
        "task": "vision",
        "model": learn.config.get("model", {}),
        "kind": dls.kind,
        "classes": list(dls.vocab.classes) if dls.vocab else None,
        "target_stats": [learn.y_mean, learn.y_std] if dls.kind == "regression" else None,
        "pipeline": dls.pipeline.to_dict(),
        "recipe": learn.config.get("recipe"),
        "thresh": 0.5,
    }
    write_json(path / CONFIG, config)
    return path


@dataclass
class Prediction:
    """One prediction: the label (or value), its probability, and every class's probability."""

    label: Any
    probability: float | None = None
    probs: dict[str, float] = field(default_factory=dict)


class Predictor:
    """A loaded model directory: predict on paths, PIL images or tensors."""

    def __init__(self, model: torch.nn.Module, config: dict, device: str | torch.device = "cpu"):
        self.model, self.config = model.eval(), config
        self.device = torch.device(device)
        self.model.to(self.device)
        self.pipeline = ImagePipeline.from_dict(config["pipeline"])
        self.kind = config["kind"]
        self.classes: list[str] | None = config.get("classes")

    def _to_uint8(self, item: "str | Path | Image.Image | torch.Tensor") -> torch.Tensor:
        if isinstance(item, (str, Path)):
            try:
                img = decode_image(item, self.pipeline.channels)
            except UnreadableImage as e:
                raise DataError(f"{e}. Check that the file is a readable image.") from None
        elif isinstance(item, torch.Tensor):
            img = item if item.dtype == torch.uint8 else (item.float().clamp(0, 1) * 255).round().to(torch.uint8)
            if img.ndim == 2:
                img = img[None]
            if img.shape[0] != self.pipeline.channels:
                img = img.expand(self.pipeline.channels, -1, -1) if img.shape[0] == 1 else img[:1].float().mean(0, keepdim=True).to(torch.uint8)
        else:  # a PIL image
            import numpy as np

            arr = np.asarray(item.convert("RGB" if self.pipeline.channels == 3 else "L"), dtype=np.uint8)
            img = torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)
        return self.pipeline.item(img)

    @torch.no_grad()
    def raw(self, items: Sequence[Any], bs: int = 64) -> torch.Tensor:
        """Model outputs for `items` (logits; regression values in original units)."""
        outs = []
        for k in range(0, len(items), bs):
            x = torch.stack([self._to_uint8(it) for it in items[k : k + bs]]).to(self.device)
            outs.append(self.model(self.pipeline.valid_batch(x)).float().cpu())
        out = torch.cat(outs) if outs else torch.empty(0)
        if self.kind == "regression":
            mean, std = self.config["target_stats"]
            out = out.flatten() * std + mean
        return out

    def predict(self, items: Any, bs: int = 64) -> Prediction | list[Prediction]:
        """Predict one item (path, PIL image, (C,H,W) tensor) or a list of them (batched)."""
        single = not isinstance(items, (list, tuple))
        batch = [items] if single else list(items)
        out = self.raw(batch, bs)
        preds = [self._decode(o) for o in out]
        return preds[0] if single else preds

    def _decode(self, out: torch.Tensor) -> Prediction:
        if self.kind == "regression":
            return Prediction(float(out))
        classes = self.classes or []
        if self.kind == "multi":
            p = out.sigmoid()
            labels = [c for c, v in zip(classes, p) if v > self.config.get("thresh", 0.5)]
            return Prediction(labels, None, {c: float(v) for c, v in zip(classes, p)})
        p = out.softmax(0)
        i = int(p.argmax())
        return Prediction(classes[i], float(p[i]), {c: float(v) for c, v in zip(classes, p)})


def load(path: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """Load a model directory written by `Learner.export` (or `quicklearn train`)."""
    from .models.heads import HeadConfig
    from .models.model import TransferModel
    from .models.backbones import create_body
    from .models.heads import Head

    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise QuicklearnError(f"{path}: not a quicklearn model directory (needs {CONFIG} and {WEIGHTS}). Train one with `quicklearn train`.")
    config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    made_by = config.get("quicklearn_version", "unknown")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise QuicklearnError(f"{path} was written by quicklearn {made_by} in a newer format; upgrade quicklearn to load it.")
    m = config["model"]
    try:
        body, _ = create_body(m["arch"], weights=None, in_chans=int(m.get("in_chans", 3)))
        model = TransferModel(body, Head(body.num_features, int(m["n_out"]), HeadConfig(**m.get("head", {}))))
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except (KeyError, RuntimeError, TypeError) as e:
        raise QuicklearnError(f"{path}: cannot rebuild the model (made by quicklearn {made_by}, this is {__version__}): {e}") from e
    return Predictor(model, config, device)
