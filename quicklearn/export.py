"""Model directories: `model.safetensors` + `config.json`. Loading needs no training data and unpickles nothing.

    learn.export("model_dir")
    model = quicklearn.load("model_dir")
    model.predict("img.jpg")   # Prediction(label='bees', probability=0.97, probs={...})
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch
from PIL import ImageOps
from safetensors.torch import load_file, save_file

from ._version import __version__
from .data.images import UnreadableImage, decode_image, to_mode
from .data.pipeline import ImagePipeline
from .errors import ConfigError, DataError, QuicklearnError
from .fileio import atomic_path, write_json
from .progress import progress
from .thresholds import DEFAULT_THRESH, Thresh, check_thresh, label_thresh, merge_thresh
from .tta import tta_outputs

if TYPE_CHECKING:
    from PIL import Image

    from .tabular_predictor import TabularPredictor
    from .train.learner import Learner

__all__ = ["export_learner", "load", "Predictor", "Prediction", "decode_prediction", "FORMAT_VERSION"]

FORMAT_VERSION = 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def export_learner(learn: "Learner", path: str | Path, thresh: Thresh | None = None) -> Path:
    """Write `learn`'s model to the directory `path` (created if needed); files are replaced atomically.
    thresh: a multi-label model's decision threshold(s), a float or {label: float} (see `fit_thresholds`)."""
    model_config = learn.config.get("model", {})
    task = learn.config.get("task", "vision")
    if task == "vision" and not {"arch", "n_out"} <= set(model_config):
        raise QuicklearnError("export needs the model's arch and n_out in learn.config['model'] "
                              "(set by vision_learner); build the Learner with vision_learner, or set them.")
    if thresh is not None and learn.dls.kind != "multi":
        raise ConfigError(f"export(thresh=...) is for multi-label models; this one's target is {learn.dls.kind}. Leave thresh out.")
    thresh = DEFAULT_THRESH if thresh is None else check_thresh(thresh, list(learn.dls.vocab.classes), "export thresh")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in learn.model.state_dict().items()}
    with atomic_path(path / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    dls = learn.dls
    config = {
        "format_version": FORMAT_VERSION,
        "quicklearn_version": __version__,
        "task": task,
        "model": model_config,
        "kind": dls.kind,
        "classes": list(dls.vocab.classes) if dls.vocab else None,
        "target_stats": [learn.y_mean, learn.y_std] if dls.kind == "regression" else None,
        "recipe": learn.config.get("recipe"),
        "thresh": thresh,
    }
    if task == "tabular":
        config.update(target=dls.y, processor=dls.processor.to_dict(), roles=dls.roles.to_dict())
    elif task == "text":
        config.update(target=dls.y)
        learn.model.encoder.config.save_pretrained(str(path / "encoder"))  # architecture only: no code, no weights
        dls.tokenizer.save_pretrained(str(path / "tokenizer"))
    else:
        config["pipeline"] = dls.pipeline.to_dict()
    write_json(path / CONFIG, config)
    return path


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
    """A loaded model directory: predict on paths, PIL images or tensors."""

    def __init__(self, model: torch.nn.Module, config: dict, device: str | torch.device = "cpu"):
        self.model, self.config = model.eval(), config
        self.device = torch.device(device)
        self.model.to(self.device)
        self.pipeline = ImagePipeline.from_dict(config["pipeline"])
        self.kind = config["kind"]
        self.classes: list[str] | None = config.get("classes")
        self.thresh: Thresh = DEFAULT_THRESH
        if self.kind == "multi":
            self.thresh = check_thresh(config.get("thresh", DEFAULT_THRESH), self.classes or [], f"{CONFIG} 'thresh'")

    def _to_uint8(self, item: "str | Path | Image.Image | torch.Tensor | Any") -> torch.Tensor:
        """A path, PIL image, numpy array or tensor (CHW or HWC; uint8, or float in [0, 1]) -> pre-sized uint8 CHW."""
        from PIL import Image

        channels = self.pipeline.channels
        if isinstance(item, (str, Path)):
            try:
                return self.pipeline.item(decode_image(item, channels))
            except UnreadableImage as e:
                raise DataError(f"{e}. Check that the file is a readable image.") from None
        if isinstance(item, Image.Image):  # as decode_image does: EXIF rotation, alpha on white, 16-bit scaled
            im = to_mode(ImageOps.exif_transpose(item), "RGB" if channels == 3 else "L")
            arr = np.asarray(im, dtype=np.uint8)
            return self.pipeline.item(torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1))
        t = torch.tensor(item) if isinstance(item, np.ndarray) else item  # a copy: arrays from PIL are read-only
        if not isinstance(t, torch.Tensor):
            raise DataError(f"cannot predict on a {type(item).__name__}; give a path, a PIL image, an array or a tensor.")
        t = t.detach().cpu()
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3:
            raise DataError(f"an image tensor must be (C, H, W) or (H, W, C); got shape {tuple(t.shape)}.")
        if t.shape[0] not in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
            t = t.permute(2, 0, 1)  # HWC (numpy/PIL order) -> CHW
        if t.dtype != torch.uint8:
            if t.is_floating_point() and (t.min() < 0 or t.max() > 1):
                raise DataError(f"a float image tensor must hold values in [0, 1]; this one spans "
                                f"[{float(t.min()):.3g}, {float(t.max()):.3g}]. Divide by 255, or pass uint8.")
            t = (t.float() * 255).round().to(torch.uint8)
        if t.shape[0] == 4:  # RGBA: composite on white, as training does
            alpha = t[3:].float() / 255
            t = (t[:3].float() * alpha + 255 * (1 - alpha)).round().to(torch.uint8)
        if t.shape[0] == 3 and channels == 1:
            t = (t.float() * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True).round().to(torch.uint8)
        elif t.shape[0] == 1 and channels == 3:
            t = t.expand(3, -1, -1)
        return self.pipeline.item(t.contiguous())

    @torch.no_grad()
    def raw(self, items: Sequence[Any], bs: int = 64, tta: bool = False) -> torch.Tensor:
        """Model outputs for `items` (logits; regression values in original units). tta: averaged over the views
        of `quicklearn.tta` (returned as log mean probabilities / logits of the mean, so they decode the same)."""
        outs = []
        with progress(None if len(items) > bs else False) as bar:  # thousands of files take a while on a CPU
            task = bar.add_task("predicting" + (" (TTA)" if tta else ""), total=len(items), info="") if bar else None
            for k in range(0, len(items), bs):
                x = torch.stack([self._to_uint8(it) for it in items[k : k + bs]]).to(self.device)
                if tta:
                    outs.append(tta_outputs(self.model, x, self.pipeline, self.kind, bs=bs, device=self.device))
                else:
                    outs.append(self.model(self.pipeline.valid_batch(x)).float().cpu())
                if bar:
                    bar.advance(task, len(x))
        out = torch.cat(outs) if outs else torch.empty(0)
        if self.kind == "regression":
            mean, std = self.config["target_stats"]
            out = out.flatten() * std + mean
        return out

    def predict(self, items: Any, bs: int = 64, *, thresh: Thresh | None = None, tta: bool = False) -> Prediction | list[Prediction]:
        """Predict one item (path, PIL image, (C,H,W) tensor) or a list of them (batched).
        thresh: multi-label threshold(s) for this call, a float or {label: float} over the model's own.
        tta: average the predictions of four fixed views (flips and a zoomed crop, see `quicklearn.tta`)."""
        thresholds = self.thresholds(thresh)
        single = not isinstance(items, (list, tuple))
        batch = [items] if single else list(items)
        out = self.raw(batch, bs, tta=tta)
        preds = [decode_prediction(o, self.kind, self.classes, thresholds) for o in out]
        return preds[0] if single else preds

    def thresholds(self, override: Thresh | None = None) -> Thresh:
        """The multi-label threshold(s) in use: the model's (config.json 'thresh'), with `override` on top."""
        if override is None:
            return self.thresh
        if self.kind != "multi":
            raise ConfigError(f"thresh is for multi-label models; this model's target is {self.kind}. Leave it out.")
        return merge_thresh(self.thresh, check_thresh(override, self.classes or []), self.classes or [])


def load(path: str | Path, device: str | torch.device = "cpu") -> "Predictor | TabularPredictor":
    """Load a model directory written by `Learner.export` (or `quicklearn train`): a Predictor for images,
    a TabularPredictor for tables."""
    from .models.heads import HeadConfig
    from .models.model import TransferModel
    from .models.backbones import create_body
    from .models.heads import Head

    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise QuicklearnError(f"{path}: not a quicklearn model directory (needs {CONFIG} and {WEIGHTS}). Train one with `quicklearn train`.")
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QuicklearnError(f"{path / CONFIG}: not valid JSON ({e}). Export the model again.") from None
    made_by = config.get("quicklearn_version", "unknown")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise QuicklearnError(f"{path} was written by quicklearn {made_by} in a newer format; upgrade quicklearn to load it.")
    if config.get("task") == "tabular":
        from .tabular_predictor import TabularPredictor

        return TabularPredictor.from_files(path, config, load_file(str(path / WEIGHTS)), device)
    if config.get("task") == "text":
        from .text_predictor import TextPredictor

        return TextPredictor.from_files(path, config, load_file(str(path / WEIGHTS)), device)
    try:
        m = config["model"]
        body, _ = create_body(m["arch"], weights=None, in_chans=int(m.get("in_chans", 3)))
        model = TransferModel(body, Head(body.num_features, int(m["n_out"]), HeadConfig(**m.get("head", {}))))
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except (KeyError, RuntimeError, TypeError) as e:
        raise QuicklearnError(f"{path}: cannot rebuild the model (made by quicklearn {made_by}, this is {__version__}): {e}") from e
    return Predictor(model, config, device)
