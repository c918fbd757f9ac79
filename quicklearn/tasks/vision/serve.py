"""How `quicklearn serve` serves an image model: uploads decoded per request (as `predict` decodes files: EXIF
turn, alpha on white, resized by the validation pipeline), one forward pass per batch of many requests' images,
the answer in the rows of `quicklearn predict --format json` (`path` is the uploaded file's name)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import torch

from quicklearn.core.errors import DataError
from quicklearn.tasks.base import ServeSpec, Upload

if TYPE_CHECKING:
    from quicklearn.tasks.vision.predictor import ImagePredictor

__all__ = ["serve_spec", "MEDIA_TYPES", "decode_upload", "noise_image"]

MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif", "image/tiff")


def decode_upload(upload: Upload) -> Any:
    """The upload's bytes as a fully decoded PIL image; a truncated or broken file is a one-line DataError."""
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(upload.data))
        im.load()  # decode every byte now: a truncated file fails here, per request, not inside a batch
    except Image.DecompressionBombError as e:
        raise DataError(f"{upload.name}: {e}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{upload.name}: cannot decode the {upload.content_type} image ({e}); the file may be "
                        "truncated or damaged.") from None
    return im


def noise_image(shape: tuple[int, ...]) -> torch.Tensor:
    """A uint8 image of noise, the example item a server times its batch sizes on: noise, not zeros, so the
    forward pass does a photo's work (no shortcuts on zeros)."""
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def serve_spec(predictor: "ImagePredictor") -> ServeSpec:
    """Multipart image uploads -> the pipeline's uint8 tensors -> batched logits -> the prediction columns."""
    p = predictor.pipeline

    def prepare(uploads: list[Upload]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
        return [predictor.item(decode_upload(u)) for u in uploads], [{"path": u.name} for u in uploads]

    def run(items: list[torch.Tensor]) -> torch.Tensor:
        x = torch.stack(items).to(predictor.device)
        return predictor.in_target_units(predictor.model(p.valid_batch(x)).float().cpu())

    def onnx_input(items: list[torch.Tensor]) -> Any:
        """uint8 (B, C, size, size), the graph's input: the validation resize of the pre-sized images, rounded
        (the graph does /255 and the normalization; within half a grey level of the torch path)."""
        from quicklearn.tasks.vision.augment import resize_batch

        x = torch.stack(items)
        if x.shape[-1] != p.size or x.shape[-2] != p.size:
            x = (resize_batch(x, p.size) * 255).round().to(torch.uint8)
        return x.numpy()

    card = {"input size": f"{p.size} x {p.size} px ({'RGB' if p.channels == 3 else 'grayscale'})",
            "architecture": predictor.config.get("model", {}).get("arch")}
    return ServeSpec(prepare=prepare, files=True, media_types=MEDIA_TYPES, run=run, onnx_input=onnx_input, card=card,
                     example=lambda: noise_image(p.item_shape))
