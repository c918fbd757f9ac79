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
from safetensors.torch import save_file

from ._version import __version__
from .data.images import UnreadableImage, decode_image, upright
from .data.pipeline import ImagePipeline
from .errors import ConfigError, DataError, QuicklearnError
from .faults import kill_point
from .fileio import atomic_path, sha256_file, write_json
from .progress import progress
from .thresholds import DEFAULT_THRESH, Thresh, check_thresh, label_thresh, merge_thresh
from .tta import tta_outputs

if TYPE_CHECKING:
    from PIL import Image

    from .tabular_predictor import TabularPredictor
    from .train.learner import Learner

__all__ = ["export_learner", "load", "Predictor", "Prediction", "decode_prediction", "FORMAT_VERSION",
           "file_checksums", "verify_checksums", "load_state"]

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
    kill_point("export")  # test hook (quicklearn/faults.py): a crash between the weights and config.json
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
    written = [WEIGHTS]
    if task == "text":  # the tokenizer's vocabulary and the encoder's shape matter as much as the weights
        written += sorted(f.relative_to(path).as_posix() for sub in ("encoder", "tokenizer") for f in (path / sub).rglob("*") if f.is_file())
    config["checksums"] = file_checksums(path, written)
    write_json(path / CONFIG, config)
    return path


def file_checksums(folder: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{name: {"sha256", "bytes"}} of files in `folder`: recorded in config.json so `load` can tell a corrupted or
    truncated copy from a good one (hashing costs ~0.2 s per 100 MB)."""
    return {n: {"sha256": sha256_file(folder / n), "bytes": (folder / n).stat().st_size} for n in names}


def verify_checksums(folder: Path, config: Mapping[str, Any]) -> None:
    """Check the files config.json's "checksums" lists (folders exported before it have none: nothing to check);
    a missing, truncated or corrupted file raises a QuicklearnError naming it, the expected and the found value."""
    sums = config.get("checksums") or {}
    redo = "Export the model again, or copy the whole model folder again from where it was written."
    if not isinstance(sums, Mapping) or not all(isinstance(v, Mapping) and isinstance(v.get("sha256"), str)
                                                for v in sums.values()):
        raise QuicklearnError(f"{folder / CONFIG}: 'checksums' must map file names to {{sha256, bytes}}. {redo}")
    for name, want in sums.items():
        f = folder / name
        if not f.is_file():
            raise QuicklearnError(f"{f}: missing; {CONFIG} lists it as part of the model. {redo}")
        size = f.stat().st_size
        if "bytes" in want and size != want["bytes"]:
            from .models.weights import pickle_kind

            if f.suffix == ".safetensors" and (kind := pickle_kind(f)):  # say what it is, not just "truncated"
                raise QuicklearnError(f"{f}: is a {kind} file, not safetensors; quicklearn never unpickles it "
                                      f"(loading it could run code), nothing was loaded. {redo}")
            how = "truncated" if size < want["bytes"] else "corrupted"
            raise QuicklearnError(f"{f}: {how}: expected {want['bytes']} bytes, found {size}. {redo}")
        if (found := sha256_file(f)) != want["sha256"]:
            raise QuicklearnError(f"{f}: corrupted: sha256 expected {want['sha256'][:16]}..., found {found[:16]}... "
                                  f"(same size, different content). {redo}")


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
            arr = np.asarray(upright(item, channels), dtype=np.uint8)
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
    from .models.weights import read_safetensors

    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        pickles = sorted(p.name for p in path.glob("*") if p.suffix.lower() in {".pt", ".pth", ".bin", ".pkl", ".ckpt"})
        if pickles and not (path / WEIGHTS).exists():  # say why that file is not loaded
            raise QuicklearnError(f"{path}: not a quicklearn model directory: it holds {pickles[0]} but no {WEIGHTS}, and "
                                  f"quicklearn never unpickles a model file (it could run code). An unfinished run: "
                                  f"`quicklearn train --resume --out {path}`; foreign weights: `quicklearn weights import FILE --arch ARCH`.")
        raise QuicklearnError(f"{path}: not a quicklearn model directory (needs {CONFIG} and {WEIGHTS}). Train one with `quicklearn train`.")
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QuicklearnError(f"{path / CONFIG}: not valid JSON ({e}). Export the model again.") from None
    if not isinstance(config, dict) or not isinstance(config.get("model", {}), dict):
        raise QuicklearnError(f"{path / CONFIG}: not a quicklearn model config (a JSON object with a 'model' object). Export the model again.")
    made_by = config.get("quicklearn_version", "unknown")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise QuicklearnError(f"{path} was written by quicklearn {made_by} in a newer format; upgrade quicklearn to load it.")
    verify_checksums(path, config)
    state = read_safetensors(path / WEIGHTS, "Export the model again, or copy the model folder again.", QuicklearnError)
    if config.get("task") == "tabular":
        from .tabular_predictor import TabularPredictor

        return TabularPredictor.from_files(path, config, state, device)
    if config.get("task") == "text":
        from .text_predictor import TextPredictor

        return TextPredictor.from_files(path, config, state, device)
    m = config.get("model", {})
    if missing := [k for k in ("arch", "n_out") if k not in m]:
        raise QuicklearnError(f"{path / CONFIG}: 'model' has no {missing[0]!r}. Export the model again.")
    try:
        body, _ = create_body(m["arch"], weights=None, in_chans=int(m.get("in_chans", 3)))
        model = TransferModel(body, Head(body.num_features, int(m["n_out"]), HeadConfig(**m.get("head", {}))))
    except ConfigError as e:  # the only one create_body raises with weights=None: timm does not know the arch
        raise QuicklearnError(f"{path / CONFIG}: model.arch: {e} (made by quicklearn {made_by}, this is {__version__}; "
                              "a newer timm may have it).") from None
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise QuicklearnError(f"{path}: cannot rebuild the model (made by quicklearn {made_by}, this is {__version__}): {e}") from e
    load_state(model, state, path)
    return Predictor(model, config, device)
