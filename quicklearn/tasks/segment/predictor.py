"""A loaded segmentation model: class maps at each photo's own size, for paths, PIL images, arrays or tensors.

    model = quicklearn.load("runs/camvid")
    pred = model.predict("street.jpg")     # Prediction(label=<uint8 (H, W) class map>, probability=mean confidence,
                                           #            probs={class: share of the pixels})
    model.predict_masks(["a.jpg", "b.jpg"])  # the class maps alone
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from quicklearn._version import __version__
from quicklearn.core.errors import ConfigError, DataError, QuicklearnError
from quicklearn.core.progress import progress
from quicklearn.data.kinds import Prediction
from quicklearn.serving.format import CONFIG
from quicklearn.serving.predictor import Predictor, load_state
from quicklearn.tasks.segment.kind import MASK, class_shares
from quicklearn.tasks.segment.masks import ClassTable
from quicklearn.tasks.segment.pipeline import SegmentPipeline
from quicklearn.tasks.vision.images import image_tensor

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["SegmentPredictor", "load_segmentation_model", "to_uint8"]


def load_segmentation_model(path: Path, config: dict, state: Mapping[str, torch.Tensor],
                            device: str | torch.device) -> "SegmentPredictor":
    """The encoder and decoder config.json names (no pretrained weights: the folder's own are loaded)."""
    from quicklearn.tasks.segment.model import SegmentationModel

    made_by = config.get("quicklearn_version", "unknown")
    m = config.get("model", {})
    if missing := [k for k in ("arch", "decoder", "n_out") if k not in m]:
        raise QuicklearnError(f"{path / CONFIG}: 'model' has no {missing[0]!r}. Export the model again.")
    try:
        model = SegmentationModel(m["arch"], int(m["n_out"]), m["decoder"], int(m.get("in_chans", 3)))
    except ConfigError as e:
        raise QuicklearnError(f"{path / CONFIG}: model: {e} (made by quicklearn {made_by}, this is {__version__}).") from None
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise QuicklearnError(f"{path}: cannot rebuild the model (made by quicklearn {made_by}, this is {__version__}): {e}") from e
    load_state(model, state, path)
    return SegmentPredictor(model, config, device)


def to_uint8(item: "str | Path | Image.Image | np.ndarray | torch.Tensor") -> torch.Tensor:
    """A path, PIL image, array or tensor (CHW or HWC; uint8, or float in [0, 1]) -> uint8 RGB (3, H, W) at its own size."""
    return image_tensor(item, 3)


class SegmentPredictor(Predictor):
    """A loaded segmentation model: each photo is resized to the model's frame, and its logits back to the photo's
    own size, so every class map matches its photo whatever size it has."""

    def __init__(self, model: torch.nn.Module, config: dict, device: str | torch.device = "cpu"):
        super().__init__(model, config, device)
        self.pipeline = SegmentPipeline.from_dict(config["pipeline"])
        self.table = ClassTable.from_dict(config["classes_table"])

    @torch.no_grad()
    def raw(self, items: Sequence[Any], bs: int = 8, tta: bool = False) -> torch.Tensor:
        """Logits (N, C, h, w) at the model's frame (use `logits` or `predict_masks` for the photos' own sizes)."""
        if tta:
            raise ConfigError("--tta is for image classifiers; segmentation has no test-time augmentation yet.")
        outs = [self._frame_logits(torch.stack([self.pipeline.photo(to_uint8(it)) for it in items[k:k + bs]]))
                for k in range(0, len(items), bs)]
        return torch.cat(outs) if outs else torch.empty(0)

    def _frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.pipeline.valid_batch(x.to(self.device))).float().cpu()

    @torch.no_grad()
    def logits(self, items: Sequence[Any], bs: int = 8) -> Any:
        """(photo, logits (C, H, W) at the photo's own size) for each item, a batch at a time (a generator)."""
        with progress(None if len(items) > bs else False) as bar:
            task = bar.add_task("predicting masks", total=len(items), info="") if bar else None
            for k in range(0, len(items), bs):
                photos = [to_uint8(it) for it in items[k:k + bs]]
                out = self._frame_logits(torch.stack([self.pipeline.photo(p) for p in photos]))
                for p, o in zip(photos, out):
                    yield p, F.interpolate(o[None], size=tuple(p.shape[-2:]), mode="bilinear", align_corners=False)[0]
                if bar:
                    bar.advance(task, len(photos))

    def predict_masks(self, items: Sequence[Any], bs: int = 8) -> list[np.ndarray]:
        """Each photo's class map: uint8 (H, W) class indices (of `classes`), at the photo's own size."""
        return [o.argmax(0).to(torch.uint8).numpy() for _, o in self.logits(list(items), bs)]

    def is_one(self, data: Any) -> bool:
        return not isinstance(data, (list, tuple))

    def predict(self, data: Any, bs: int = 8, *, thresh: Any = None, tta: bool = False) -> Any:
        """One photo -> a Prediction (label: the class map at the photo's size; probability: the mean confidence
        of its pixels; probs: each class's share of the pixels); a list -> a list of them; a DataFrame or CSV of
        photo paths -> the frame with `prediction` (the class with most pixels) and `share_<class>` appended."""
        if thresh is not None:
            raise ConfigError("thresh is for multi-label models; a segmentation model gives each pixel its likeliest class.")
        if tta:
            raise ConfigError("tta is for image classifiers; segmentation has no test-time augmentation yet.")
        if isinstance(data, pd.DataFrame) or (isinstance(data, (str, Path)) and str(data).lower().endswith((".csv", ".tsv"))):
            return self._predict_frame(data, bs)
        one = self.is_one(data)
        items = [data] if one else list(data)
        preds = [self.decode(o) for _, o in self.logits(items, bs)]
        return preds[0] if one else preds

    def decode(self, logits: torch.Tensor) -> Prediction:
        """Logits (C, H, W) -> a Prediction (see `predict`)."""
        return MASK.decode(logits, self.classes)

    def _predict_frame(self, data: Any, bs: int) -> pd.DataFrame:
        from quicklearn.data.frames import read_frame
        from quicklearn.tasks.vision.sources import find_image_column

        frame, where = read_frame(data)
        self._refuse_clashes(frame, where)
        col = find_image_column(frame)
        if col is None:
            raise DataError(f"{where}: no column of photo paths found among {list(frame.columns)}.")
        base = Path(where).parent if Path(where).is_file() else Path(".")
        paths = [Path(p) if Path(p).is_absolute() else base / p for p in frame[col].astype(str)]
        out = frame.copy()
        for name, values in self.columns([o for _, o in self.logits(paths, bs)]).items():
            out[name] = values
        return out

    def columns(self, logits: Sequence[torch.Tensor]) -> dict[str, list]:
        """`prediction` (the class with most pixels) and `share_<class>` of each photo's logits (C, H, W)."""
        classes = list(self.classes or [])
        shares = [class_shares(o.argmax(0), len(classes)) for o in logits]
        cols: dict[str, list] = {"prediction": [classes[int(s.argmax())] for s in shares]}
        for j, c in enumerate(classes):
            cols[f"share_{c}"] = [float(s[j]) for s in shares]
        return cols
