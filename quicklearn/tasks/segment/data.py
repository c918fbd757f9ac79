"""The segmentation DataBlock: photo/mask pairs -> split -> classes and void -> decode + pre-size once into the
uint8 image cache (masks beside the photos) -> batches augmented on the device, photo and mask in one pass.

    dls = segmentation_dataloaders("camvid/", size=192)     # train/ + trainannot/, val/ + valannot/, codes.txt
    dls.show_batch("batch.png")
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from quicklearn.core import distributed as ddp
from quicklearn.core.errors import ConfigError, DataError
from quicklearn.core.progress import console
from quicklearn.data.labels import Vocab
from quicklearn.data.loaders import LoaderPair
from quicklearn.data.sources import ItemSource
from quicklearn.data.split import RandomSplitter
from quicklearn.tasks.segment.kind import MASK
from quicklearn.tasks.segment.masks import ClassTable, MaskReader, class_table, find_codes, read_codes
from quicklearn.tasks.segment.pairs import Pairs, find_pairs
from quicklearn.tasks.segment.pipeline import PhotoItems, SegmentPipeline, frame_for, photo_aspect
from quicklearn.tasks.vision.augment import AugmentConfig, Normalize, augment_with_masks
from quicklearn.tasks.vision.backbones import DEFAULT_ARCH
from quicklearn.tasks.vision.cache import cached_images
from quicklearn.tasks.vision.loaders import BatchLoader

__all__ = ["MaskBatchLoader", "SegmentLoaders", "segmentation_dataloaders", "check_sizes", "split_pairs"]

log = logging.getLogger("quicklearn")


@dataclass
class MaskBatchLoader(BatchLoader):
    """BatchLoader (tasks/vision/loaders.py: seeded order, sharding, pinned staging) whose targets are masks: uint8
    (N, 1, H, W) class indices. A batch is (normalized photos (B, 3, h, w), masks (B, h, w)); training batches are
    augmented with the photo's own geometry applied to its mask (nearest) in the same resampling pass."""

    def make_batch(self, idx: torch.Tensor, aug_gen: torch.Generator | None = None, rows: list[int] | None = None,
                   n_draws: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._gather(idx)
        y = self.targets[idx].to(self.device, non_blocking=self.device.type == "cuda")
        pipe: SegmentPipeline = self.pipeline  # type: ignore[assignment]
        if self.augment is not None and self.augment.enabled:
            x, y = augment_with_masks(x, y, pipe.frame, self.augment, aug_gen or torch.Generator(), rows, n_draws)
            x = pipe.normalize(x)
        else:
            x, y = pipe.valid_batch(x, channels_last=self.channels_last), pipe.valid_masks(y)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y[:, 0]


@dataclass
class SegmentLoaders(LoaderPair):
    """Train and valid mask loaders, the classes (ClassTable) and the pipeline; what the Learner and the model
    folder need of segmentation data."""

    train: MaskBatchLoader
    valid: MaskBatchLoader
    pipeline: SegmentPipeline
    table: ClassTable
    train_paths: list[Path] = field(default_factory=list)
    valid_paths: list[Path] = field(default_factory=list)
    train_masks: list[Path] = field(default_factory=list)
    valid_masks: list[Path] = field(default_factory=list)
    how: str = ""

    task = "segment"
    kind = MASK.name
    target_stats = None

    @property
    def vocab(self) -> Vocab:
        return Vocab(tuple(self.table.names))

    def folder_parts(self, learn: Any, folder: Path) -> tuple[dict[str, Any], list[str]]:
        """config.json's "pipeline" (frame, normalization) and "classes_table" (mask values, void, colours)."""
        return {"pipeline": self.pipeline.to_dict(), "classes_table": self.table.to_dict()}, []

    def item_keys(self) -> tuple[list[bytes], list[bytes]]:
        """Each pair's photo and mask paths, relative to the folder above all of them."""
        everything = [*self.train_paths, *self.valid_paths, *self.train_masks, *self.valid_masks]
        root = os.path.commonpath([str(p) for p in everything]) if everything else ""

        def keys(photos: list[Path], masks: list[Path]) -> list[bytes]:
            return [os.path.relpath(p, root).encode() + b"\0" + os.path.relpath(m, root).encode() for p, m in zip(photos, masks)]

        return keys(self.train_paths, self.train_masks), keys(self.valid_paths, self.valid_masks)

    def show_batch(self, path: str | Path = "show_batch.png", n: int = 8, seed: int = 0) -> Path:
        """A PNG of `n` augmented training photos with their masks drawn over them in colour."""
        from quicklearn.tasks.segment.show import show_batch

        return show_batch(self, path, n=n, seed=seed)

    def show_results(self, learn: Any, path: str | Path | None, n: int) -> Path:
        from quicklearn.tasks.segment.show import show_results

        return show_results(learn, path if path is not None else "results.png", n)

    def tta(self, learn: Any, dl: Any) -> tuple[torch.Tensor, torch.Tensor]:
        raise ConfigError("tta() is for image classifiers; segmentation has no test-time augmentation yet.")


def check_sizes(pairs: Pairs) -> None:
    """A mask must be the size of its photo: the first that is not is an error naming both files (headers only)."""
    for photo, mask in zip(pairs.photos, pairs.masks):
        try:
            with Image.open(photo) as im:
                pw, ph = im.size
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    pw, ph = ph, pw
            with Image.open(mask) as im:
                mw, mh = im.size
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    mw, mh = mh, mw
        except (OSError, SyntaxError, ValueError):
            continue  # unreadable: decoding reports it
        if (pw, ph) != (mw, mh):
            raise DataError(f"{mask} is {mw}x{mh} but its photo {photo} is {pw}x{ph}: a mask must be the size of its "
                            "photo. Resize the mask with nearest-neighbour (no new values), or fix the pairing (--masks).")


def split_pairs(pairs: Pairs, splitter: str, valid_pct: float, seed: int) -> tuple[list[int], list[int], str]:
    """Train and valid indices of the pairs, and how they were split: the train/ and val/ folders, else at random
    (what `segmentation_dataloaders` and `quicklearn check` both use)."""
    given = set(pairs.split)
    if splitter not in ("auto", "random"):
        raise DataError(f"splitter={splitter!r}: segmentation splits by train/ and val/ folders ('auto') or at random ('random').")
    if splitter == "auto" and {"train", "valid"} <= given:
        train = [i for i, s in enumerate(pairs.split) if s == "train"]
        valid = [i for i, s in enumerate(pairs.split) if s == "valid"]
        return train, valid, "the train/ and val/ folders"
    source = ItemSource(list(pairs.photos), pairs.root)
    train, valid = RandomSplitter(valid_pct, seed)(source, None)  # type: ignore[arg-type]
    return train, valid, f"a random {valid_pct:.0%} (seed {seed})"


def _mask_palette(masks: list[Path]) -> list[tuple[int, int, int]] | None:
    """The palette of the first mask when it is a palette PNG (VOC-style), to draw and write classes in its colours."""
    try:
        with Image.open(masks[0]) as im:
            if im.mode != "P":
                return None
            flat = im.getpalette() or []
    except (OSError, SyntaxError, ValueError):
        return None
    flat = flat + [0] * (768 - len(flat))
    return [(flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]) for i in range(256)]


def _apply(lut: torch.Tensor, raw: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Stored mask values -> class indices, a few masks at a time (indexing needs int64 indices)."""
    out = torch.empty(raw.shape, dtype=torch.uint8)
    for k in range(0, len(raw), chunk):
        out[k:k + chunk] = lut[raw[k:k + chunk].long()]
    return out


def segmentation_dataloaders(
    data: str | Path,
    *,
    masks: str | Path | None = None,
    codes: str | Path | None = None,
    void: int | str | None = None,
    splitter: str = "auto",
    valid_pct: float = 0.2,
    seed: int = 42,
    size: int | tuple[int, int] | list[int] = 192,
    augment: AugmentConfig | bool = True,
    arch: str = DEFAULT_ARCH,
    normalize: Normalize | None = None,
    bs: int = 8,
    num_workers: int | None = None,
    device: torch.device | str = "cpu",
) -> SegmentLoaders:
    """Photos and masks -> train/valid loaders of (photos, masks) batches; every step is announced.

    data: a folder whose photos have a mask folder beside them (see tasks/segment/pairs.py), or a CSV with a photo
    and a mask column. masks: the mask folder, overriding the detection. codes: a file of class names (default
    codes.txt beside the data; else the values found). void: the mask value that counts nowhere (default: a class
    named void/unlabelled/ignore, or 255 beside other values); 'none' for none. size: the short side of the model's
    input (the long side follows the photos' aspect ratio; both rounded to a multiple of 32), or [height, width]."""
    if int(bs) < 1:
        raise DataError(f"bs={bs}: the batch size must be at least 1.")
    say = console().print if ddp.is_main() else (lambda *a, **k: None)
    pairs = find_pairs(data, masks)
    check_sizes(pairs)
    train_idx, valid_idx, how_split = split_pairs(pairs, splitter, valid_pct, seed)
    if not train_idx or not valid_idx:
        raise DataError(f"{data}: the split leaves no {'training' if not train_idx else 'validation'} pair. Add a val/ "
                        "folder with its masks, or set valid_pct.")
    frame = frame_for(size if isinstance(size, int) else tuple(size), photo_aspect([pairs.photos[i] for i in train_idx]))
    pipeline = SegmentPipeline.for_frame(frame, normalize or Normalize.for_arch(arch))
    codes_file = Path(codes).expanduser() if codes is not None else find_codes(pairs.root)
    if codes is not None and not codes_file.is_file():  # type: ignore[union-attr]
        raise DataError(f"--codes {codes_file}: no such file. Give a file of class names, one per line in value order.")
    names, code_colors = read_codes(codes_file) if codes_file is not None else (None, None)
    say(f"segmentation pairs: {pairs.how}; {len(train_idx)} train / {len(valid_idx)} valid by {how_split}; "
        f"frames {frame[0]}x{frame[1]} (height x width)", highlight=False, soft_wrap=True)

    def decode(idx: list[int], size: tuple[int, int], name: str) -> tuple[torch.Tensor, torch.Tensor, list[int], list[str]]:
        photos = cached_images([pairs.photos[i] for i in idx], PhotoItems(size), num_workers=num_workers,
                               description=f"decoding {name} photos")
        # masks are small PNGs: decoded in this process, so a bad one stops with its own one-line error
        mks = cached_images([pairs.masks[i] for i in idx], MaskReader(size, tuple(code_colors) if code_colors else None),
                            num_workers=0, description=f"decoding {name} masks")
        ok = sorted(set(photos.ok) & set(mks.ok))
        p_at, m_at = {j: k for k, j in enumerate(photos.ok)}, {j: k for k, j in enumerate(mks.ok)}
        imgs = photos.images[[p_at[j] for j in ok]] if len(ok) < len(photos.ok) else photos.images
        raw = mks.images[[m_at[j] for j in ok]] if len(ok) < len(mks.ok) else mks.images
        return imgs, raw, [idx[j] for j in ok], photos.errors + mks.errors

    t_imgs, t_raw, train_idx, errs_t = decode(train_idx, pipeline.preframe, "train")
    v_imgs, v_raw, valid_idx, errs_v = decode(valid_idx, pipeline.frame, "valid")
    errors = errs_t + errs_v
    if errors:
        log.warning("skipped %d pair(s) with an unreadable photo or mask: %s%s", len(errors), "; ".join(errors[:3]),
                    f" and {len(errors) - 3} more" if len(errors) > 3 else "")
    if not train_idx or not valid_idx:
        raise DataError(f"{data}: no readable {'training' if not train_idx else 'validation'} pair left.")
    counts = torch.bincount(t_raw.reshape(-1).long(), minlength=256) + torch.bincount(v_raw.reshape(-1).long(), minlength=256)

    def first_with(value: int) -> Path:
        for raw, idx in ((t_raw, train_idx), (v_raw, valid_idx)):
            hit = (raw == value).flatten(1).any(1).nonzero()
            if len(hit):
                return pairs.masks[idx[int(hit[0])]]
        return pairs.masks[0]

    palette = _mask_palette([pairs.masks[i] for i in train_idx])
    table, notes = class_table(counts, names, codes_file, code_colors, void, palette, first_with)
    for note in notes:
        say(note, highlight=False, soft_wrap=True)
    say(f"{len(table.names)} classes{f' (from {codes_file})' if codes_file else ''}: {', '.join(table.names)}",
        highlight=False, soft_wrap=True)
    lut = table.lut()
    t_masks, v_masks = _apply(lut, t_raw), _apply(lut, v_raw)
    aug = augment if isinstance(augment, AugmentConfig) else AugmentConfig(enabled=bool(augment))
    dev = torch.device(device)
    bs_train = min(int(bs), len(train_idx))
    train = MaskBatchLoader(t_imgs, t_masks, pipeline, bs=bs_train, shuffle=True, drop_last=True, augment=aug,  # type: ignore[arg-type]
                            seed=seed, device=dev)
    valid = MaskBatchLoader(v_imgs, v_masks, pipeline, bs=int(bs) * 2, shuffle=False, device=dev)  # type: ignore[arg-type]
    return SegmentLoaders(train, valid, pipeline, table, [pairs.photos[i] for i in train_idx],
                          [pairs.photos[i] for i in valid_idx], [pairs.masks[i] for i in train_idx],
                          [pairs.masks[i] for i in valid_idx], pairs.how)
