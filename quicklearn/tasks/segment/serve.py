"""How `quicklearn serve` serves a segmentation model: photo uploads decoded per request (as `predict` decodes
files), many requests' photos in one forward pass at the model's frame, each class map brought back to its photo's
own size; the answer is `quicklearn predict --format json`'s row: path (the file's name), main_classes,
prediction, share_<class> and the mask as a base64 PNG (`mask_png`, the training masks' values and palette)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from quicklearn.tasks.base import ServeSpec, Upload
from quicklearn.tasks.segment.cli import mask_image, png_bytes
from quicklearn.tasks.segment.kind import class_shares
from quicklearn.tasks.segment.predictor import to_uint8
from quicklearn.tasks.vision.serve import MEDIA_TYPES, decode_upload, noise_image

if TYPE_CHECKING:
    from quicklearn.tasks.segment.predictor import SegmentPredictor

__all__ = ["serve_spec"]

SIZE = "_size"  # the photo's own (H, W), carried from prepare to answer and left out of the answer


def serve_spec(predictor: "SegmentPredictor") -> ServeSpec:
    """Photo uploads -> frame-sized uint8 tensors -> batched logits -> per photo its class map, shares and mask."""
    pipeline = predictor.pipeline
    classes = list(predictor.classes or [])

    def prepare(uploads: list[Upload]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
        photos = [to_uint8(decode_upload(u)) for u in uploads]
        return ([pipeline.photo(p) for p in photos],
                [{"path": u.name, SIZE: tuple(p.shape[-2:])} for u, p in zip(uploads, photos)])

    def run(items: list[torch.Tensor]) -> torch.Tensor:
        x = torch.stack(items).to(predictor.device)
        return predictor.model(pipeline.valid_batch(x)).float().cpu()

    def answer(records: list[dict[str, Any]], logits: torch.Tensor) -> list[dict[str, Any]]:
        rows = []
        for record, out in zip(records, logits):
            size = record.pop(SIZE)
            best = F.interpolate(out[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0)
            shares = class_shares(best, len(classes))
            top = shares.argsort(descending=True)[:3]
            row = {**record, "main_classes": ", ".join(f"{classes[int(i)]} {100 * float(shares[i]):.0f}%"
                                                        for i in top if shares[i] > 0),
                   "prediction": classes[int(shares.argmax())]}
            row.update({f"share_{c}": float(s) for c, s in zip(classes, shares)})
            mask = mask_image(best.numpy().astype("uint8"), predictor.table)
            row["mask_png"] = base64.b64encode(png_bytes(mask)).decode("ascii")
            rows.append(row)
        return rows

    card = {"frame": " x ".join(map(str, pipeline.frame)) + " px", "classes": len(classes),
            "architecture": f"{predictor.config.get('model', {}).get('decoder')} on "
                            f"{predictor.config.get('model', {}).get('arch')}"}
    return ServeSpec(prepare=prepare, files=True, media_types=MEDIA_TYPES, run=run, answer=answer, card=card,
                     example=lambda: noise_image((pipeline.channels, *pipeline.frame)))
