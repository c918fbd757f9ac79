"""Reading uploads safely: what a file's bytes are (their signature, not the name or the declared type), that
the declared content type agrees, and for images the pixel count before anything is decoded (PIL's
decompression-bomb guard). Nothing here opens a path: an upload is bytes in memory."""

from __future__ import annotations

import io
import warnings
from typing import Sequence

from quicklearn.tasks.base import Upload

__all__ = ["UploadError", "sniff", "check_upload", "SIGNATURES"]

# (media type, what the first bytes are); enough for the formats PIL reads that a browser sends
SIGNATURES: tuple[tuple[str, tuple[bytes, ...]], ...] = (
    ("image/jpeg", (b"\xff\xd8\xff",)),
    ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ("image/gif", (b"GIF87a", b"GIF89a")),
    ("image/bmp", (b"BM",)),
    ("image/tiff", (b"II*\x00", b"MM\x00*")),
)
ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png",
           "image/x-ms-bmp": "image/bmp"}


class UploadError(Exception):
    """A refused upload: the HTTP status and the one-line message the client gets."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def sniff(data: bytes) -> str | None:
    """The media type the bytes' signature says (WebP: RIFF....WEBP), or None when no known one."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for media, heads in SIGNATURES:
        if any(data.startswith(h) for h in heads):
            return media
    return None


def _declared(content_type: str | None) -> str:
    base = (content_type or "").split(";")[0].strip().lower()
    return ALIASES.get(base, base)


def check_upload(name: str, content_type: str | None, data: bytes, accepted: Sequence[str], max_pixels: int) -> Upload:
    """An Upload whose bytes are one of `accepted`, agree with the declared type (application/octet-stream or
    none: the bytes decide) and, for an image, hold at most `max_pixels` pixels by their header. UploadError
    otherwise: 400 empty or unknown bytes, 415 a type this model does not read or bytes that contradict the
    declared type, 413 too many pixels."""
    label = name or "the upload"
    if not data:
        raise UploadError(400, f"{label}: the file is empty (0 bytes); send the image's bytes.")
    found = sniff(data)
    declared = _declared(content_type)
    kinds = ", ".join(accepted)
    if found is None:
        raise UploadError(415 if declared not in ("", "application/octet-stream") else 400,
                          f"{label}: sent as {declared or 'no type'}, but its bytes are not a known image format "
                          f"(the model reads {kinds}).")
    if declared not in ("", "application/octet-stream") and declared != found:
        raise UploadError(415, f"{label}: sent as {declared}, but its bytes are {found}; send it with its real type.")
    if found not in accepted:
        raise UploadError(415, f"{label}: {found} is not a type this model reads ({kinds}).")
    if found.startswith("image/"):
        _check_pixels(label, data, max_pixels)
    return Upload(name=name, content_type=found, data=data)


def _check_pixels(label: str, data: bytes, max_pixels: int) -> None:
    """Read only the image's header: refuse one with more than `max_pixels` pixels before a byte is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UploadError(413, f"{label}: the image is too large to decode safely (PIL's decompression-bomb guard: "
                               f"{str(e).split(',')[0]}); resize it first.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise UploadError(400, f"{label}: not a readable image ({e}).") from None
    if w * h > max_pixels:
        raise UploadError(413, f"{label}: the image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}; "
                               "resize it first.")
