"""A loaded image model: predict on paths, PIL images, arrays or tensors; and rebuilding one from its folder.

    model = quicklearn.load("runs/photos")
    model.predict("img.jpg")   # Prediction(label='bees', probability=0.97, probs={...})
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd
import torch

from quicklearn._version import __version__
from quicklearn.core.errors import ConfigError, DataError, QuicklearnError
from quicklearn.core.progress import progress
from quicklearn.serving.format import CONFIG
from quicklearn.serving.predictor import Predictor, load_state
from quicklearn.tasks.vision.images import image_tensor
from quicklearn.tasks.vision.pipeline import ImagePipeline
from quicklearn.tasks.vision.tta import tta_outputs

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ImagePredictor", "load_image_model"]


def load_image_model(path: Path, config: dict, state: Mapping[str, torch.Tensor], device: str | torch.device) -> "ImagePredictor":
    """The body named in config.json (no pretrained weights: the folder's own are loaded), our head, the weights."""
    from quicklearn.tasks.vision.backbones import create_body
    from quicklearn.tasks.vision.heads import Head, HeadConfig
    from quicklearn.tasks.vision.model import TransferModel

    made_by = config.get("quicklearn_version", "unknown")
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
    return ImagePredictor(model, config, device)


class ImagePredictor(Predictor):
    """A loaded image model: predict on paths, PIL images or tensors, with the validation pipeline it trained with."""

    def __init__(self, model: torch.nn.Module, config: dict, device: str | torch.device = "cpu"):
        super().__init__(model, config, device)
        self.pipeline = ImagePipeline.from_dict(config["pipeline"])

    def _to_uint8(self, item: "str | Path | Image.Image | torch.Tensor | Any") -> torch.Tensor:
        """A path, PIL image, numpy array or tensor (CHW or HWC; uint8, or float in [0, 1]) -> pre-sized uint8 CHW."""
        return self.pipeline.item(image_tensor(item, self.pipeline.channels))

    def item(self, item: "str | Path | Image.Image | torch.Tensor | Any") -> torch.Tensor:
        """One image (a path, PIL image, array or tensor) -> the pre-sized uint8 (C, H, W) tensor that `raw` stacks
        into batches (the HTTP server decodes per request and batches these)."""
        return self._to_uint8(item)

    @torch.no_grad()
    def raw(self, items: Sequence[Any], bs: int = 64, tta: bool = False) -> torch.Tensor:
        """Model outputs for `items` (logits; regression values in original units). tta: averaged over the views
        of `quicklearn.tasks.vision.tta` (returned as log mean probabilities / logits of the mean, so they decode the same)."""
        outs = []
        with progress(None if len(items) > bs else False) as bar:  # thousands of files take a while on a CPU
            task = bar.add_task("predicting" + (" (TTA)" if tta else ""), total=len(items), info="") if bar else None
            for k in range(0, len(items), bs):
                x = torch.stack([self._to_uint8(it) for it in items[k : k + bs]]).to(self.device)
                if tta:
                    outs.append(tta_outputs(self.model, x, self.pipeline, self.target_kind, bs=bs, device=self.device,
                                            channels_last=True))
                else:
                    outs.append(self.model(self.pipeline.valid_batch(x)).float().cpu())
                if bar:
                    bar.advance(task, len(x))
        out = torch.cat(outs) if outs else torch.empty(0)
        return self.in_target_units(out)

    def raw_frame(self, frame: pd.DataFrame, where: str, bs: int = 64, tta: bool = False) -> torch.Tensor:
        """The images a table names: its image-path column (the one training read, else the one that holds image
        paths), relative to the CSV's folder (a DataFrame's: the working folder)."""
        from quicklearn.tasks.vision.sources import find_image_column

        col = ((self.config.get("recipe") or {}).get("data") or {}).get("path_col") or find_image_column(frame)
        if col is None or col not in frame.columns:
            raise DataError(f"{where}: no column of image paths found among {list(frame.columns)}.")
        base = Path(where).parent if Path(where).is_file() else Path(".")
        paths = [Path(p) if Path(p).is_absolute() else base / p for p in frame[col].astype(str)]
        return self.raw(paths, bs, tta)
