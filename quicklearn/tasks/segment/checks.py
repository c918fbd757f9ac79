"""What `quicklearn check` looks for in photos and their masks, and the cheap part `quicklearn train` runs first.

- masks: values outside the classes (a value codes.txt names no class for, and not void), masks that are all void,
  masks whose size differs from their photo's (both files named), unreadable photos or masks;
- photos: exact duplicates (content hash), within a split and across train/valid (leakage).

The pairs, the split, the classes and the void value are found as training finds them (`find_pairs`,
`split_pairs`, codes.txt or --codes, --void), but nothing here stops at the first bad file: every one is reported.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from quicklearn.analysis.check.duplicates import exact_groups
from quicklearn.analysis.check.findings import SHARED_KINDS, CheckContext, Checker, DataChecks, Finding, Kind, item_name
from quicklearn.analysis.check.leakage import group_findings
from quicklearn.core.errors import DataError
from quicklearn.tasks.segment.data import split_pairs
from quicklearn.tasks.segment.masks import VOID_NAMES, find_codes, read_codes, read_mask
from quicklearn.tasks.segment.pairs import find_pairs
from quicklearn.tasks.segment.recipe import learner_kwargs

__all__ = ["SEGMENT_KINDS", "segment_checks"]

SEGMENT_KINDS: dict[str, Kind] = {k.name: k for k in (
    SHARED_KINDS["unreadable"], SHARED_KINDS["leakage"], SHARED_KINDS["duplicate"],
    Kind("mask_values", "mask values outside the classes", strict=True),
    Kind("mask_size", "masks whose size differs from their photo's", strict=True),
    Kind("all_void", "masks that are all void"),
)}


class _SegmentData:
    """The recipe's pairs and split, and (read once, on first use) every mask's values and both files' sizes."""

    def __init__(self, recipe: Any):
        kw = learner_kwargs(recipe)
        self.pairs = find_pairs(recipe.data.path, kw.get("masks"))
        self.root = self.pairs.root
        train, valid, _ = split_pairs(self.pairs, kw.get("splitter", "auto"), kw.get("valid_pct", 0.2),
                                      kw.get("seed", 42))
        self.splits = ["valid" if i in set(valid) else "train" for i in range(len(self.pairs))]
        self.photo_names = [item_name(p, self.root) for p in self.pairs.photos]
        self.mask_names = [item_name(m, self.root) for m in self.pairs.masks]
        codes = kw.get("codes")
        codes_file = Path(codes).expanduser() if codes else find_codes(self.root)
        self.codes, colors = read_codes(codes_file) if codes_file is not None and codes_file.is_file() else (None, None)
        self.colors = colors
        self.void_setting = kw.get("void")

    @cached_property
    def masks(self) -> tuple[dict[int, np.ndarray], dict[int, tuple[int, int]], list[Finding]]:
        """Each readable mask's distinct values and size, and the unreadable photos and masks."""
        values: dict[int, np.ndarray] = {}
        sizes: dict[int, tuple[int, int]] = {}
        bad: list[Finding] = []
        for i, mask in enumerate(self.pairs.masks):
            try:
                m = read_mask(mask, self.colors)
            except (DataError, OSError) as e:
                bad.append(Finding("unreadable", [self.mask_names[i]], suggestion="fix or remove the mask (and its "
                                   "photo)", detail=str(e).split(": ", 1)[-1]))
                continue
            values[i] = np.unique(m)
            sizes[i] = (m.shape[1], m.shape[0])
        return values, sizes, bad

    @property
    def void(self) -> int | None:
        """The void value as training chooses it: --void, else a class named void/unlabelled, else 255 beside others."""
        if self.void_setting == "none":
            return None
        if isinstance(self.void_setting, int):
            return self.void_setting
        if self.codes:
            named = next((k for k, n in enumerate(self.codes) if n.strip().lower() in VOID_NAMES), None)
            if named is not None:
                return named
        present = set().union(*(set(v.tolist()) for v in self.masks[0].values())) if self.masks[0] else set()
        return 255 if 255 in present and len(present) > 1 and not present <= {0, 255} else None

    def mask_problems(self, ctx: CheckContext) -> list[Finding]:
        values, sizes, bad = self.masks
        void = self.void
        out = list(bad)
        for i, photo in enumerate(self.pairs.photos):
            try:
                with Image.open(photo) as im:
                    size = im.size[::-1] if im.getexif().get(0x0112, 1) in (5, 6, 7, 8) else im.size
            except (OSError, SyntaxError, ValueError) as e:
                out.append(Finding("unreadable", [self.photo_names[i]], suggestion="fix or remove the photo (and its "
                                   "mask)", detail=str(e)))
                continue
            if i in sizes and sizes[i] != size:
                out.append(Finding("mask_size", [self.mask_names[i], self.photo_names[i]],
                                   suggestion="resize the mask to its photo with nearest-neighbour, or fix the pairing",
                                   detail=f"mask {sizes[i][0]}x{sizes[i][1]}, photo {size[0]}x{size[1]}"))
        for i, vals in values.items():
            found = set(vals.tolist())
            if void is not None and found == {void}:
                out.append(Finding("all_void", [self.mask_names[i]], 1.0, "label the photo, or leave the pair out",
                                   f"every pixel is void (value {void})"))
            if self.codes:
                stray = sorted(v for v in found if v >= len(self.codes) and v != void)
                if stray:
                    out.append(Finding("mask_values", [self.mask_names[i]], None,
                                       f"name the class in codes.txt, or set --void {stray[0]}",
                                       f"values {', '.join(map(str, stray))}: codes.txt names {len(self.codes)} "
                                       f"classes (values 0-{len(self.codes) - 1})"))
        if self.codes:
            ctx.facts.append(f"classes from codes.txt: {len(self.codes)}; void value: {void}")
        return out

    def exact(self, ctx: CheckContext) -> list[Finding]:
        """Photos with the same bytes: within a split, and across train/valid (leakage)."""
        digests = []
        for p in self.pairs.photos:
            try:
                digests.append(hashlib.blake2b(Path(p).read_bytes(), digest_size=16).hexdigest())
            except OSError:
                digests.append(None)
        return group_findings(exact_groups(digests), self.photo_names, self.splits, within="duplicate",
                              across="leakage", what="identical photos", score=lambda g: 1.0)

    def preview(self, name: str) -> np.ndarray | None:
        try:
            with Image.open(self.root / name) as im:
                im.thumbnail((256, 256))
                return np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, ValueError):
            return None


def segment_checks(recipe: Any) -> DataChecks:
    """The segmentation checkers over the recipe's photo/mask pairs."""
    d = _SegmentData(recipe)
    k = SEGMENT_KINDS
    checkers = [
        Checker("exact duplicates", (k["leakage"], k["duplicate"]), d.exact, cheap=True),
        Checker("masks", (k["unreadable"], k["mask_size"], k["mask_values"], k["all_void"]), d.mask_problems),
    ]
    return DataChecks("segment", str(recipe.data.path), "photos", len(d.pairs), checkers, d.root, d.preview)

