"""Pairing photos with their masks, by folder and file names, announced:

- a sibling mask folder named after the photo folder: train/ + trainannot/ (or train_masks/, train_labels/, ...),
  for each of train/ and val/ (or valid/) when the data has them; images/ + masks/ (or labels/) side by side,
  at the top or inside each split folder;
- within the two folders, the same file stem, optionally with a suffix on the mask's (_mask, _P, _L, _label);
- or a CSV with an image column and a mask column (paths relative to the CSV's folder).

`masks=DIR` (--masks) overrides the folder detection. Photos without a mask and masks without a photo are left
out, counted and named in one warning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from quicklearn.core.errors import DataError
from quicklearn.data.split import TRAIN_NAMES, VALID_NAMES
from quicklearn.tasks.vision.images import IMAGE_EXTENSIONS
from quicklearn.tasks.vision.sources import folder_source

__all__ = ["Pairs", "MASK_SUFFIXES", "mask_folder_for", "find_layout", "pair_folders", "pair_csv", "find_pairs",
           "mask_column"]

log = logging.getLogger("quicklearn")

FOLDER_SUFFIXES = ("annot", "_annot", "_masks", "_mask", "masks", "_labels", "_label", "labels", "_gt")
PHOTO_FOLDERS = ("images", "imgs", "img", "photos", "jpegimages")
MASK_FOLDERS = ("masks", "labels", "annotations", "annot", "segmentationclass", "gt")
MASK_SUFFIXES = ("_mask", "_masks", "_P", "_L", "_label", "_labels", "_gt", "_seg")
MASK_WORDS = ("mask", "label", "annot", "seg", "gt", "target")


@dataclass
class Pairs:
    """Photos and their masks (same length, in pairs), each pair's split ('train', 'valid' or None = random), and
    how they were found (announced)."""

    photos: list[Path]
    masks: list[Path]
    split: list[str | None]
    how: str
    root: Path

    def __len__(self) -> int:
        return len(self.photos)


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def mask_folder_for(photos: Path) -> Path | None:
    """The mask folder beside a photo folder: `<name>annot`, `<name>_masks`, ... or masks/ (labels/ ...) beside images/."""
    siblings = {p.name.lower(): p for p in _subdirs(photos.parent)}
    for suffix in FOLDER_SUFFIXES:
        if (hit := siblings.get(f"{photos.name}{suffix}".lower())) is not None and hit != photos:
            return hit
    if photos.name.lower() in PHOTO_FOLDERS:
        for name in MASK_FOLDERS:
            if (hit := siblings.get(name)) is not None:
                return hit
    return None


def _split_of(name: str) -> str | None:
    low = name.lower()
    return "train" if low in TRAIN_NAMES else "valid" if low in VALID_NAMES else None


def find_layout(data: Path) -> list[tuple[Path, Path, str | None]] | None:
    """(photo folder, mask folder, split) by folder names alone (no file is read: task inference asks this), or None.

    Tried in order: train/ and val/ (or valid/) each with its mask folder (a sibling, or images/ + masks/ inside it);
    images/ + masks/ in `data`; `data` itself with a sibling mask folder."""
    if not data.is_dir():
        return None
    subs = _subdirs(data)
    splits = [(d, s) for d in subs if (s := _split_of(d.name)) is not None]
    if {"train", "valid"} <= {s for _, s in splits}:
        out = []
        for d, s in splits:
            inner = next((p for p in _subdirs(d) if p.name.lower() in PHOTO_FOLDERS), None)
            masks = mask_folder_for(d) or (mask_folder_for(inner) if inner is not None else None)
            if masks is None:
                out = []
                break
            out.append((d if masks.parent == d.parent else inner, masks, s))
        if out:
            return out  # type: ignore[return-value]
    for d in subs:
        if d.name.lower() in PHOTO_FOLDERS and (masks := mask_folder_for(d)) is not None:
            return [(d, masks, None)]
    if (masks := mask_folder_for(data)) is not None:
        return [(data, masks, None)]
    return None


def _mask_files(folder: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath) / f for f in sorted(filenames)
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return files


def _stems(stem: str) -> list[str]:
    """A mask's stem and, when it ends in a known suffix, the stem without it: the photo stems it can pair with."""
    out = [stem]
    for s in MASK_SUFFIXES:
        if stem.endswith(s) and len(stem) > len(s):
            out.append(stem[: -len(s)])
    return out


def _named(paths: list[Path], n: int = 3) -> str:
    shown = ", ".join(str(p) for p in paths[:n])
    return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")


def pair_folders(photos_dir: Path, masks_dir: Path) -> tuple[list[Path], list[Path], list[Path], list[Path]]:
    """Photos under `photos_dir` with their masks under `masks_dir`: the same relative folder and stem (a mask may
    add a suffix such as _mask), else the one mask with that stem anywhere. Returns (photos, masks, photos without a
    mask, masks without a photo)."""
    photos = folder_source(photos_dir).paths
    photo_files = {p.resolve() for p in photos}
    masks = [m for m in _mask_files(masks_dir) if m.resolve() not in photo_files]
    by_place: dict[tuple[str, str], Path] = {}
    by_stem: dict[str, list[Path]] = {}
    for m in masks:
        rel = os.path.relpath(m.parent, masks_dir)
        for k, stem in enumerate(_stems(m.stem)):
            if k == 0 or (rel, stem) not in by_place:  # an exact stem wins over a stripped one
                by_place[(rel, stem)] = m
            by_stem.setdefault(stem, []).append(m)
    got_p, got_m, lonely = [], [], []
    used: set[Path] = set()
    for p in photos:
        rel = os.path.relpath(p.parent, photos_dir)
        m = by_place.get((rel, p.stem))
        if m is None and len(set(by_stem.get(p.stem, []))) == 1:
            m = by_stem[p.stem][0]
        if m is None or m in used:
            lonely.append(p)
            continue
        used.add(m)
        got_p.append(p)
        got_m.append(m)
    return got_p, got_m, lonely, [m for m in masks if m not in used]


def mask_column(frame: pd.DataFrame, image_col: str | None = None, named_only: bool = False) -> tuple[str, str] | None:
    """(photo column, mask column) of a table: two columns of image paths, the mask one named like mask/label/
    annot/seg (else the second, unless `named_only`); None when the table has no two such columns."""
    cols = [str(c) for c in frame.columns
            if (v := frame[c].dropna().astype(str)).size and v.str.lower().str.endswith(tuple(IMAGE_EXTENSIONS)).mean() > 0.9]
    if image_col is not None and image_col in cols:
        cols.remove(image_col)
        cols.insert(0, image_col)
    if len(cols) < 2:
        return None
    named = [c for c in cols if any(w in c.lower() for w in MASK_WORDS)]
    if named_only and not named:
        return None
    mask = named[-1] if named and named[-1] != cols[0] else cols[1]
    photo = next(c for c in cols if c != mask)
    return photo, mask


def pair_csv(path: Path) -> Pairs:
    """A CSV with a photo column and a mask column (relative to its folder); an `is_valid` column splits it."""
    from quicklearn.data.sources import read_table

    frame = read_table(path)
    cols = mask_column(frame)
    if cols is None:
        raise DataError(f"{path}: needs a column of photo paths and a column of mask paths (named like 'mask' or "
                        f"'label'); its columns are {list(frame.columns)}.")
    photo_col, mask_col = cols
    base = path.parent
    frame = frame.dropna(subset=[photo_col, mask_col])
    photos = [Path(p) if Path(p).is_absolute() else base / p for p in frame[photo_col].astype(str)]
    masks = [Path(m) if Path(m).is_absolute() else base / m for m in frame[mask_col].astype(str)]
    split: list[str | None] = [None] * len(photos)
    if "is_valid" in frame.columns:
        split = ["valid" if str(v).strip().lower() in ("1", "true", "yes", "1.0") else "train" for v in frame["is_valid"]]
    missing = [(p, m) for p, m in zip(photos, masks) if not p.is_file() or not m.is_file()]
    if missing:
        no_photo = [p for p, _ in missing if not p.is_file()]
        no_mask = [m for p, m in missing if p.is_file() and not m.is_file()]
        parts = ([f"{len(no_photo)} photo(s) missing ({_named(no_photo)})"] if no_photo else []) + \
                ([f"{len(no_mask)} mask(s) missing ({_named(no_mask)})"] if no_mask else [])
        log.warning("%s: %s: those rows are left out", path, " and ".join(parts))
        keep = [i for i, (p, m) in enumerate(zip(photos, masks)) if p.is_file() and m.is_file()]
        photos, masks, split = [photos[i] for i in keep], [masks[i] for i in keep], [split[i] for i in keep]
    if not photos:
        raise DataError(f"{path}: no row names a photo and a mask that exist (relative to {base}).")
    return Pairs(photos, masks, split, f"{path}: photos in column {photo_col!r}, masks in column {mask_col!r}", base)


def find_pairs(data: str | Path, masks: str | Path | None = None) -> Pairs:
    """The photo/mask pairs of `data` (a folder, or a CSV of paths); `masks` overrides the mask folder."""
    data = Path(data).expanduser()
    if not data.exists():
        raise DataError(f"{data}: no such file or folder. Check --data.")
    if data.is_file():
        if masks is not None:
            raise DataError(f"--masks is for a folder of photos; {data} is a file (a CSV names each photo's mask itself).")
        return pair_csv(data)
    if masks is not None:
        mdir = Path(masks).expanduser()
        if not mdir.is_dir():
            raise DataError(f"--masks {mdir}: no such folder. Give the folder that holds the masks.")
        layout: list[tuple[Path, Path, str | None]] = [(data, mdir, None)]
    else:
        found = find_layout(data)
        if found is None:
            raise DataError(f"{data}: no mask folder found beside the photos (train/ + trainannot/ or train_masks/, "
                            "images/ + masks/ or labels/). Name it with --masks DIR.")
        layout = found
    photos, mask_paths, split, lonely_p, lonely_m = [], [], [], [], []
    for pdir, mdir, s in layout:
        p, m, lp, lm = pair_folders(pdir, mdir)
        photos += p
        mask_paths += m
        lonely_p += lp
        lonely_m += lm
        for q in p:  # a split folder's own split; else a train/ or val/ folder inside the photo folder, if any
            parts = Path(os.path.relpath(q, pdir)).parts[:-1]
            split.append(s or next((x for x in map(_split_of, parts) if x), None))
    if lonely_p or lonely_m:
        parts = ([f"{len(lonely_p)} photo(s) without a mask ({_named(lonely_p)})"] if lonely_p else []) + \
                ([f"{len(lonely_m)} mask(s) without a photo ({_named(lonely_m)})"] if lonely_m else [])
        log.warning("%s: left out", " and ".join(parts))
    if not photos:
        where = ", ".join(f"{p} + {m}" for p, m, _ in layout)
        raise DataError(f"no photo has a mask in {where}: masks pair with photos by file stem (optionally with "
                        f"{', '.join(MASK_SUFFIXES[:4])}). Check the names, or --masks DIR.")
    how = "; ".join(f"photos in {p}, masks in {m}" + (f" ({s})" if s else "") for p, m, s in layout)
    return Pairs(photos, mask_paths, split, how, data)
