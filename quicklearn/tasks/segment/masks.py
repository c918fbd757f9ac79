"""Masks: a mask file read as class values (grey or index PNGs, palette PNGs, RGB colour masks through a palette),
the classes (codes.txt, --codes, or the values found), the void value, and the table from mask values to the
model's classes.

Inside quicklearn a mask is uint8 (H, W) of class indices 0..K-1, with VOID (255) where nothing counts; the
ClassTable maps the values stored in the files to those indices (and back, for the masks `predict` writes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from quicklearn.core.errors import DataError
from quicklearn.tasks.segment.metrics import VOID
from quicklearn.tasks.vision.images import UnreadableImage

__all__ = ["VOID_NAMES", "CODES_FILES", "ClassTable", "MaskReader", "read_mask", "read_codes", "find_codes",
           "class_table", "default_colors", "resize_masks"]

log = logging.getLogger("quicklearn")

VOID_NAMES = frozenset({"void", "unlabelled", "unlabeled", "ignore", "ignored"})
CODES_FILES = ("codes.txt", "classes.txt")
Color = tuple[int, int, int]


def default_colors(n: int) -> list[Color]:
    """n distinct colours for drawing classes (matplotlib's tab20, then the PASCAL VOC colour map)."""
    import matplotlib

    tab = [tuple(int(round(255 * c)) for c in matplotlib.colormaps["tab20"](i)[:3]) for i in range(20)]
    tab = tab[0::2] + tab[1::2]  # the strong colours first
    return [tab[i] if i < len(tab) else _voc_color(i) for i in range(n)]  # type: ignore[misc]


def _voc_color(i: int) -> Color:
    """PASCAL VOC's colour of index i (bits of i interleaved into r, g, b)."""
    r = g = b = 0
    c = i
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return (r, g, b)


VOC_PALETTE: tuple[Color, ...] = tuple(_voc_color(i) for i in range(256))


def read_codes(path: Path) -> tuple[list[str], list[Color] | None]:
    """Class names in index order, one per line (`Sky`), optionally with their mask colour (`128 128 128 Sky`, as
    CamVid's label_colors.txt has them); the colours, when every line has one, else None."""
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as a codes file ({e}). Give one class name per line.") from None
    names, colors = [], []
    for ln in (ln for ln in lines if ln):
        parts = ln.split()
        if len(parts) >= 4 and all(p.isdigit() and int(p) < 256 for p in parts[:3]):
            colors.append((int(parts[0]), int(parts[1]), int(parts[2])))
            names.append(" ".join(parts[3:]))
        else:
            names.append(ln)
    if not names:
        raise DataError(f"{path}: no class names. Give one class name per line, in the order of the mask values.")
    if len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}: class {dup!r} is named twice. Give each class one line, in the order of the mask values.")
    return names, (colors if len(colors) == len(names) else None)


def find_codes(root: Path) -> Path | None:
    """codes.txt (or classes.txt) in the data folder, or in the folder above it (data given as camvid/train)."""
    for folder in (root, root.parent) if root.is_dir() else (root.parent,):
        for name in CODES_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


def _upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)  # the photos' rule (tasks/vision/images.upright): masks turn with them
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        return im


def read_mask(path: str | Path, palette: Sequence[Color] | None = None) -> np.ndarray:
    """A mask file -> uint8 (H, W) of the values it stores: an index or grey PNG as is (a 1-bit mask as 0/255), a
    palette PNG by its indices, an RGB(A) mask through `palette` (colour i is value i; RGB masks whose three channels
    agree are grey values). Unreadable -> UnreadableImage; colours outside the palette or values over 255 -> DataError."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                im = _upright(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableImage(f"{path}: {e}") from e
    mode = im.mode
    if mode == "P":
        return np.asarray(im, dtype=np.uint8).copy()
    if mode in ("L", "1", "LA"):
        return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(im)
        if arr.size and (arr.max() > 255 or arr.min() < 0):
            raise DataError(f"{path}: mask values go up to {arr.max():g}; quicklearn reads class values 0-255. Save the "
                            "mask as an 8-bit PNG of class indices.")
        return arr.astype(np.uint8)
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return rgb[..., 0].copy()  # grey stored as RGB: the values themselves
    return _colours_to_values(rgb, palette or VOC_PALETTE, path, palette is None)


def _colours_to_values(rgb: np.ndarray, palette: Sequence[Color], path: Path, voc: bool) -> np.ndarray:
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    found, inverse = np.unique(codes, return_inverse=True)
    table = {}
    for i, (r, g, b) in enumerate(palette):
        table.setdefault((r << 16) | (g << 8) | b, i)
    unknown = [int(c) for c in found if int(c) not in table]
    if unknown:
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        source = "the PASCAL VOC palette (no codes file with colours)" if voc else "the codes file's colours"
        raise DataError(f"{path}: colours {shown}{more} are not in {source}. Give every colour a line 'R G B name' "
                        "in the codes file (--codes FILE), or save the masks as class indices.")
    values = np.array([table[int(c)] for c in found], dtype=np.uint8)
    return values[inverse.reshape(codes.shape)]


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 masks (..., H, W) -> (..., h, w), nearest-neighbour at pixel centres (the grid bilinear photos use),
    so no new value appears and masks stay aligned with photos resized to the same size."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    lead = masks.shape[:-2]
    flat = masks.reshape(-1, 1, *masks.shape[-2:]).float()
    out = F.interpolate(flat, size=tuple(size), mode="nearest-exact")
    return out.to(masks.dtype).reshape(*lead, *size)


@dataclass(frozen=True)
class MaskReader:
    """How the image cache (tasks/vision/cache.py) decodes and pre-sizes masks: the stored values at `size`
    (height, width), nearest-neighbour; RGB masks through `palette`. Cached beside the photos, keyed apart."""

    size: tuple[int, int]
    palette: tuple[Color, ...] | None = None
    channels: int = 1

    @property
    def item_shape(self) -> tuple[int, int, int]:
        return (1, *self.size)

    def cache_id(self) -> dict:
        digest = hashlib.sha256(json.dumps(self.palette).encode()).hexdigest()[:16] if self.palette else None
        return {"masks": 1, "presize": list(self.size), "palette": digest}

    def decode(self, path: Path) -> torch.Tensor:
        return torch.from_numpy(read_mask(path, self.palette))[None]

    def item(self, mask: torch.Tensor) -> torch.Tensor:
        return resize_masks(mask, self.size).contiguous()


@dataclass(frozen=True)
class ClassTable:
    """The model's classes and what the mask files say: `values[k]` is class k's value in the files, `void` the
    value that counts nowhere (None: none), `colors` one colour per class (pictures, and the palette of written masks)."""

    names: tuple[str, ...]
    values: tuple[int, ...]
    void: int | None = None
    colors: tuple[Color, ...] = field(default=())
    binary: bool = False
    mask_palette: tuple[Color, ...] | None = None  # the colours RGB masks were read through (by value); None: VOC's

    def __post_init__(self) -> None:
        if len(self.names) > 254:
            raise DataError(f"{len(self.names)} classes: quicklearn's masks hold at most 254 classes.")
        if not self.colors:
            object.__setattr__(self, "colors", tuple(default_colors(len(self.names))))

    def lut(self) -> torch.Tensor:
        """(256,) uint8: a stored value -> its class index, VOID for the void value and for values of no class."""
        lut = torch.full((256,), VOID, dtype=torch.uint8)
        for k, v in enumerate(self.values):
            lut[v] = k
        return lut

    def to_file_values(self, classes: np.ndarray) -> np.ndarray:
        """Class indices -> the values the training masks used for them (what `predict` writes)."""
        return np.asarray(self.values, dtype=np.uint8)[classes]

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "values": list(self.values), "void": self.void,
                "colors": [list(c) for c in self.colors], "binary": self.binary,
                "mask_palette": [list(c) for c in self.mask_palette] if self.mask_palette else None}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassTable":
        palette = d.get("mask_palette")
        return cls(tuple(d["names"]), tuple(int(v) for v in d["values"]), d.get("void"),
                   tuple(tuple(int(x) for x in c) for c in d.get("colors") or ()), bool(d.get("binary", False)),  # type: ignore[misc]
                   tuple(tuple(int(x) for x in c) for c in palette) if palette else None)  # type: ignore[misc]

    def read(self, path: str | Path) -> torch.Tensor:
        """A mask file as this table's class indices (uint8 (H, W), VOID where nothing counts); a value of no class
        is an error naming the file."""
        raw = torch.from_numpy(read_mask(path, self.mask_palette))
        mapped = self.lut()[raw.long()]
        stray = raw[(mapped == VOID) & (raw != (self.void if self.void is not None else -1))]
        if len(stray):
            raise DataError(f"{path}: mask value {int(stray[0])} is none of the model's classes (values "
                            f"{', '.join(map(str, self.values))}{f'; void {self.void}' if self.void is not None else ''}).")
        return mapped


def class_table(counts: torch.Tensor, codes: list[str] | None, codes_file: Path | None, code_colors: list[Color] | None,
                void: int | str | None, palette: Sequence[Color] | None,
                first_with: "Any") -> tuple[ClassTable, list[str]]:
    """The classes from the pixel counts of every stored value (256,), the codes (names in value order) and the void
    setting (an int, 'none', or None for automatic); returns the table and what to announce.
    first_with(value) names the first mask file holding a value (for errors). palette: colours by value (a palette
    mask's own, or the codes file's) to draw the classes with."""
    present = [v for v in range(256) if int(counts[v]) > 0]
    notes: list[str] = []
    if not present:
        raise DataError("the masks hold no pixel at all.")
    explicit = void if isinstance(void, int) else None
    if set(present) <= {0, 255} and 255 in present and explicit != 255:
        names = tuple(codes) if codes and len(codes) == 2 else ("0", "1")
        notes.append("masks hold only 0 and 255: binary masks, 255 is class 1" + (f" ({names[1]})" if codes else ""))
        return ClassTable(names, (0, 255), explicit, binary=True), notes
    if void == "none":
        chosen = None
    elif explicit is not None:
        chosen = explicit
    else:
        chosen = None
        if codes:
            chosen = next((i for i, n in enumerate(codes) if n.strip().lower() in VOID_NAMES), None)
            if chosen is not None:
                notes.append(f"void: class {chosen} ({codes[chosen]}) counts in neither the loss nor the metrics")
        if chosen is None and 255 in present and len(present) > 1:
            chosen = 255
            notes.append("void: mask value 255 (beside the class values) counts in neither the loss nor the metrics")
    if codes:
        values = tuple(i for i in range(len(codes)) if i != chosen)
        names = tuple(codes[i] for i in values)
        bad = [v for v in present if v != chosen and v >= len(codes)]
        if bad:
            raise DataError(f"mask value {bad[0]} (in {first_with(bad[0])}) is not a class: {codes_file} names "
                            f"{len(codes)} classes (values 0-{len(codes) - 1}). Add the missing names to it, or set the "
                            "void value with --void N.")
    else:
        values = tuple(v for v in present if v != chosen)
        names = tuple(str(v) for v in values)
        notes.append(f"classes: the mask values found, {', '.join(names)} (name them with a codes.txt, --codes FILE)")
    if not values:
        raise DataError(f"every mask pixel is void (value {chosen}): there is nothing to learn. Check --void.")
    colors = code_colors or palette
    table_colors = tuple(tuple(colors[v]) for v in values) if colors and max(values) < len(colors) else ()
    mask_palette = tuple(code_colors) if code_colors else None
    return ClassTable(names, values, chosen, table_colors, mask_palette=mask_palette), notes  # type: ignore[arg-type]
