"""`quicklearn predict` for segmentation models: per photo its class shares, its mask as a base64 PNG (for
--format json/csv), and with --out-dir a mask PNG (the training masks' values, the class palette embedded) and an
overlay JPEG written there."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from quicklearn.core.errors import ConfigError, DataError
from quicklearn.tasks.base import Predicted
from quicklearn.tasks.segment.kind import class_shares
from quicklearn.tasks.segment.show import overlay

if TYPE_CHECKING:
    from PIL import Image

    from quicklearn.tasks.segment.masks import ClassTable
    from quicklearn.tasks.segment.predictor import SegmentPredictor

__all__ = ["mask_image", "png_bytes", "predict_photos"]


def mask_image(classes: np.ndarray, table: "ClassTable") -> "Image.Image":
    """A class map (H, W) as a palette PNG image: the values the training masks used, each in its class's colour."""
    from PIL import Image

    im = Image.fromarray(table.to_file_values(np.asarray(classes, dtype=np.int64)), mode="P")
    flat = [0] * 768
    for v, c in zip(table.values, table.colors):
        flat[3 * v: 3 * v + 3] = list(c)
    im.putpalette(flat)
    return im


def png_bytes(im: "Image.Image") -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _photo_paths(inputs: list[str]) -> list[Path]:
    from quicklearn.tasks.vision.sources import csv_source, folder_source

    paths: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_file() and p.suffix.lower() in (".csv", ".tsv"):
            paths += csv_source(p).paths
        elif p.is_dir():
            paths += folder_source(p).paths
        elif p.exists():
            paths.append(p)
        else:
            raise DataError(f"{p}: no such file or folder.")
    return paths


def predict_photos(predictor: "SegmentPredictor", inputs: list[str], *, thresh: Any = None, tta: bool = False,
                   out_dir: Path | None = None) -> Predicted:
    """One row per photo: path, its main classes, `prediction` (the class with most pixels), `share_<class>` and
    `mask_png` (base64 PNG); with out_dir, `mask` and `overlay` are the files written there."""
    from PIL import Image

    if thresh is not None:
        raise ConfigError("--thresh is for multi-label models; a segmentation model gives each pixel its likeliest class.")
    if tta:
        raise ConfigError("--tta is for image classifiers; segmentation has no test-time augmentation yet.")
    paths = _photo_paths(inputs)
    if out_dir is not None:
        out_dir = Path(out_dir).expanduser()
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"--out-dir {out_dir}: is a file. Choose a folder.")
        out_dir.mkdir(parents=True, exist_ok=True)
    classes = list(predictor.classes or [])
    rows: list[dict[str, Any]] = []
    taken: set[str] = set()
    for path, (photo, logits) in zip(paths, predictor.logits(paths)):
        best = logits.argmax(0)
        shares = class_shares(best, len(classes))
        top = shares.argsort(descending=True)[:3]
        mask = mask_image(best.numpy().astype(np.uint8), predictor.table)
        row: dict[str, Any] = {"path": str(path), "main_classes": ", ".join(
            f"{classes[int(i)]} {100 * float(shares[i]):.0f}%" for i in top if shares[i] > 0)}
        if out_dir is not None:
            stem = path.stem
            k = 1
            while stem in taken:  # two photos of the same name from different folders
                k += 1
                stem = f"{path.stem}-{k}"
            taken.add(stem)
            mask.save(out_dir / f"{stem}.png")
            blend = overlay(photo.permute(1, 2, 0).numpy(), best.numpy(), predictor.table.colors)
            Image.fromarray((blend * 255).round().astype(np.uint8)).save(out_dir / f"{stem}_overlay.jpg", quality=90)
            row["mask"], row["overlay"] = str(out_dir / f"{stem}.png"), str(out_dir / f"{stem}_overlay.jpg")
        row["prediction"] = classes[int(shares.argmax())]
        row.update({f"share_{c}": float(s) for c, s in zip(classes, shares)})
        row["mask_png"] = base64.b64encode(png_bytes(mask)).decode("ascii")
        rows.append(row)
    if not rows:
        raise DataError(f"no photos found in {', '.join(inputs)}.")
    df = pd.DataFrame(rows)
    return Predicted(df, ["path", "main_classes"] + (["mask"] if out_dir is not None else []))
