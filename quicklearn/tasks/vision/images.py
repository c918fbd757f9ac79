"""Finding and decoding image files: by extension *and* by content, fast path first.

JPEGs decode with torchvision.io (libjpeg-turbo); everything else (GIF, palette/16-bit PNG, CMYK, WebP, TIFF)
goes through Pillow, converted to RGB or L. Both apply the EXIF orientation (`upright`), whatever the format.
The result is always a uint8 tensor (C, H, W): pixels stay uint8 until the batch is on its device.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

__all__ = ["IMAGE_EXTENSIONS", "looks_like_image", "image_problem", "decode_image", "decode_bytes", "image_tensor", "upright", "to_mode",
           "UnreadableImage"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})

# Magic numbers of the formats above: a `.jpg` that is really text, HTML or empty is not an image.
_SIGNATURES: tuple[bytes, ...] = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
)


NOT_AN_IMAGE = "not an image despite its extension"


class UnreadableImage(Exception):
    """Internal: a file that looked like an image failed to decode (reported once, in bulk, by the caller)."""


def looks_like_image(path: Path) -> bool:
    """True when `path` has an image extension and its first bytes match an image format."""
    return image_problem(path) is None


def image_problem(path: Path) -> str | None:
    """Why `path` cannot be an image file ("missing", "not a regular file", "cannot be opened: ...", NOT_AN_IMAGE),
    or None when its extension and first bytes say it is one. Never blocks: a FIFO named x.jpg is not opened."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return "no image extension"
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return "not a regular file"  # a FIFO would block the open forever, a device never end
        with open(path, "rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return "missing"  # or a symlink to nothing
    except OSError as e:  # permission denied, a symlink loop, an I/O error
        return f"cannot be opened: {e.strerror or e}"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return None
    return None if any(head.startswith(sig) for sig in _SIGNATURES) else NOT_AN_IMAGE


def decode_image(path: str | Path, channels: int = 3) -> torch.Tensor:
    """Decode `path` to a uint8 tensor of shape (channels, H, W); raise UnreadableImage if it cannot be read.

    channels: 3 (RGB, grayscale is repeated) or 1 (luminance).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UnreadableImage(f"{path}: {e.strerror or e}") from e
    return decode_bytes(data, channels, str(path))


def decode_bytes(data: bytes, channels: int = 3, name: str = "image") -> torch.Tensor:
    """An image file's bytes (an upload) -> uint8 (channels, H, W), exactly as `decode_image` decodes the file;
    UnreadableImage (its message starting with `name`) if they are not a readable image."""
    if not data:
        raise UnreadableImage(f"{name}: empty file")
    if data[:3] == b"\xff\xd8\xff":
        _check_jpeg_size(data, name)
        img = _decode_jpeg(data, channels)
        if img is not None:
            return img
    return _decode_pil(data, name, channels)


def _check_jpeg_size(data: bytes, path: Path | str) -> None:
    """Refuse a JPEG whose header claims more pixels than Pillow's decompression-bomb limit: libjpeg would
    allocate all of them (a 700-byte file claiming 20000 x 20000 px became a 1.2 GB tensor) before noticing
    the data is missing. Pillow reads only the header here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.open(io.BytesIO(data)).close()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableImage(f"{path}: {e}") from e
    except (OSError, SyntaxError, ValueError):
        pass  # a broken header: let the decoders try and decide


def _decode_jpeg(data: bytes, channels: int) -> torch.Tensor | None:
    from torchvision.io import ImageReadMode, decode_jpeg

    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode, apply_exif_orientation=True)
    except RuntimeError:
        return None  # truncated, CMYK on old libjpeg, ...: let Pillow try and decide


def _decode_pil(data: bytes, path: Path | str, channels: int) -> torch.Tensor:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" etc.: a file that fails is reported once, in bulk
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                im = upright(im, channels)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableImage(f"{path}: {e}") from e
    arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def upright(im: Image.Image, channels: int = 3) -> Image.Image:
    """The one rule for every image quicklearn sees (training, validation, predict, a PIL image given to predict):
    turn it as its EXIF orientation says, as phones expect, then convert it to RGB (channels=3) or L. JPEG files
    get the same turn from torchvision's decoder (apply_exif_orientation)."""
    try:
        im = ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        pass  # unreadable EXIF: show the pixels as stored
    return to_mode(im, "RGB" if channels == 3 else "L")


def to_mode(im: Image.Image, mode: str) -> Image.Image:
    """Convert any Pillow mode to RGB/L; 16-bit images are scaled down, transparency composited on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 255 else 255.0
        im = Image.fromarray((arr * (255.0 / hi)).clip(0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    return im.convert(mode)


def image_tensor(item: "str | Path | Image.Image | np.ndarray | torch.Tensor", channels: int = 3) -> torch.Tensor:
    """A path, PIL image, numpy array or tensor (CHW or HWC; uint8, or float in [0, 1]) -> uint8 (channels, H, W) at
    its own size, as `decode_image` decodes a file: EXIF rotation, alpha on white, 16-bit scaled, grey <-> RGB. What
    every image predictor takes (classification pre-sizes it next, segmentation keeps it to answer at its size)."""
    from quicklearn.core.errors import DataError

    if isinstance(item, (str, Path)):
        try:
            return decode_image(item, channels)
        except UnreadableImage as e:
            raise DataError(f"{e}. Check that the file is a readable image.") from None
    if isinstance(item, Image.Image):
        arr = np.asarray(upright(item, channels), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1).contiguous()
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
    return t.contiguous()
