"""The vision DataBlock: items -> labels -> split -> item transforms -> batch augmentation -> normalization.

`image_dataloaders(data, ...)` is the one entry point; every step is an explicit argument with a default
that does the right thing on a folder-per-class tree, a train/valid tree, or a CSV of image paths.

    dls = image_dataloaders("data/hymenoptera", size=224, bs=32)
    dls.show_batch("batch.png")
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from quicklearn.core.errors import ConfigError, DataError, QuicklearnError
from quicklearn.data.kinds import get_kind
from quicklearn.data.labels import KindName, Targets, Vocab, get_targets, target_stats
from quicklearn.data.loaders import LoaderPair
from quicklearn.data.sources import ItemSource
from quicklearn.data.split import (
    ColumnSplitter,
    FolderSplitter,
    IndexSplitter,
    RandomSplitter,
    Splitter,
    StratifiedSplitter,
    auto_splitter,
    check_split,
)
from quicklearn.tasks.vision.augment import AugmentConfig, Normalize
from quicklearn.tasks.vision.cache import cached_images
from quicklearn.tasks.vision.loaders import BatchLoader
from quicklearn.tasks.vision.pipeline import ImagePipeline, default_presize
from quicklearn.tasks.vision.sources import image_source
from quicklearn.tasks.vision.transforms import ResizeMode

__all__ = ["DataLoaders", "image_dataloaders", "ImageItems", "image_items", "image_pipeline"]

log = logging.getLogger("quicklearn")


@dataclass
class DataLoaders(LoaderPair):
    """Train and valid loaders plus what a model needs to know about the data (vocab, target kind, pipeline)."""

    train: BatchLoader
    valid: BatchLoader
    kind: KindName
    vocab: Vocab | None
    pipeline: ImagePipeline
    train_paths: list[Path] = field(default_factory=list)
    valid_paths: list[Path] = field(default_factory=list)
    target_stats: tuple[float, float] | None = None  # (mean, std) of a regression target, for standardization

    task = "vision"

    def folder_parts(self, learn: Any, folder: Path) -> tuple[dict[str, Any], list[str]]:
        """config.json's "pipeline": the pre-size, crop, channels and normalization validation used."""
        if not {"arch", "n_out"} <= set(learn.config.get("model", {})):
            raise QuicklearnError("export needs the model's arch and n_out in learn.config['model'] "
                                  "(set by vision_learner); build the Learner with vision_learner, or set them.")
        return {"pipeline": self.pipeline.to_dict()}, []

    def show_results(self, learn: Any, path: str | Path | None, n: int) -> Path:
        from quicklearn.tasks.vision.interpret import show_results

        return show_results(learn, path if path is not None else "results.png", n)

    @torch.inference_mode()
    def tta(self, learn: Any, dl: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Test-time augmentation over an image loader: the views of `quicklearn.tasks.vision.tta` averaged."""
        from quicklearn.tasks.vision.tta import tta_outputs

        if not isinstance(dl, BatchLoader):
            raise ConfigError(f"tta() needs an image loader (flips and crops of images), not a {type(dl).__name__}.")
        learn.model.eval()
        with torch.autocast(learn.device.type, dtype=learn.amp_dtype or torch.float32, enabled=learn.amp_dtype is not None):
            preds = tta_outputs(learn.forward, dl.images, dl.pipeline, learn.kind, bs=dl.bs, device=learn.device,
                                channels_last=learn.channels_last)
        if learn.target_kind.standardized:
            preds = preds.flatten() * learn.y_std + learn.y_mean
        return preds, dl.targets.cpu()

    def item_keys(self) -> tuple[list[bytes], list[bytes]]:
        """Each image's path (relative to the folder all of them are under, so a moved copy is the same data)
        and target."""
        everything = [*self.train_paths, *self.valid_paths]
        root = os.path.commonpath([str(p) for p in everything]) if everything else ""
        if len(everything) == 1:
            root = os.path.dirname(root)

        def keys(paths: list[Path], targets: torch.Tensor) -> list[bytes]:
            return [os.path.relpath(p, root).encode() + b"\0" + t.numpy().tobytes() for p, t in zip(paths, targets.cpu())]

        return keys(self.train_paths, self.train.targets), keys(self.valid_paths, self.valid.targets)

    def decode_target(self, y: torch.Tensor) -> list[str]:
        """Encoded targets as people read them (class names, labels, numbers)."""
        return self.target_kind.readable(y, self.vocab.classes if self.vocab else None)

    def show_batch(self, path: str | Path = "show_batch.png", n: int = 16, seed: int = 0) -> Path:
        """Save a PNG grid of `n` augmented training images with their labels; returns the path."""
        from quicklearn.tasks.vision.show import show_batch

        return show_batch(self, path, n=n, seed=seed)


def image_dataloaders(
    data: str | Path | pd.DataFrame,
    *,
    y: str | Callable[[Path], Any] | None = None,
    path_col: str | None = None,
    kind: KindName | None = None,
    label_delim: str | None = None,
    splitter: Splitter | str = "auto",
    valid_pct: float = 0.2,
    seed: int = 42,
    size: int = 224,
    presize: int | None = None,
    resize_mode: ResizeMode = "crop",
    augment: AugmentConfig | bool = True,
    arch: str = "tf_efficientnet_lite0",
    normalize: Normalize | None = None,
    channels: int = 3,
    bs: int = 32,
    num_workers: int | None = None,
    device: torch.device | str = "cpu",
) -> DataLoaders:
    """Build train/valid DataLoaders from a folder, a CSV path or a DataFrame.

    y: the target (None = parent folder name; a column; a regex with one group; a callable of the path).
    splitter: "auto" (train/valid folders, an is_valid column, else stratified random), "random", "stratified", or a Splitter.
    size/presize/resize_mode: images are pre-sized once to `presize` (default size/0.875) with `resize_mode`,
    then cropped/augmented to `size` on whole batches. Normalization comes from `arch`'s pretrained config.
    """
    if int(bs) < 1:
        raise DataError(f"bs={bs}: the batch size must be at least 1.")
    if size < 8:
        raise DataError(f"size={size}: images must be at least 8 px.")
    if channels not in (1, 3):
        raise DataError(f"channels={channels}: use 3 (RGB) or 1 (grayscale).")
    items = image_items(data, y=y, path_col=path_col, kind=kind, label_delim=label_delim, splitter=splitter,
                        valid_pct=valid_pct, seed=seed)
    source, targets, train_idx, valid_idx, where = items.source, items.targets, items.train_idx, items.valid_idx, items.where
    check_split(train_idx, valid_idx, targets, where, warn=False)  # fail before decoding; warn once, on the final split

    pipeline = image_pipeline(size, presize, resize_mode, channels, normalize, arch)
    decoded = [
        cached_images([source.paths[i] for i in idx], pipeline, num_workers=num_workers, description=f"decoding {name} images")
        for idx, name in ((train_idx, "train"), (valid_idx, "valid"))
    ]
    (train_imgs, train_ok, errs_t), (valid_imgs, valid_ok, errs_v) = [(d.images, d.ok, d.errors) for d in decoded]
    reused = [d.file.name for d in decoded if d.origin in ("cache", "mapped") and d.file]
    if reused:
        log.info("decoded images read from the image cache (%s): nothing to decode", ", ".join(reused))
    errors = errs_t + errs_v
    if errors:
        log.warning("skipped %d unreadable image(s): %s%s", len(errors), "; ".join(errors[:3]),
                    f" and {len(errors) - 3} more" if len(errors) > 3 else "")
    train_idx = [train_idx[i] for i in train_ok]
    valid_idx = [valid_idx[i] for i in valid_ok]
    check_split(train_idx, valid_idx, targets, where)

    aug = augment if isinstance(augment, AugmentConfig) else AugmentConfig(enabled=bool(augment))
    tv, vv = targets.values[train_idx], targets.values[valid_idx]
    stats = target_stats(tv) if get_kind(targets.kind).standardized else None
    dev = torch.device(device)
    bs_train = min(bs, len(train_idx))
    train = BatchLoader(train_imgs, tv, pipeline, bs=bs_train, shuffle=True, drop_last=True, augment=aug, seed=seed,
                        device=dev)
    valid = BatchLoader(valid_imgs, vv, pipeline, bs=bs * 2, shuffle=False, device=dev)
    return DataLoaders(
        train, valid, targets.kind, targets.vocab, pipeline,
        [source.paths[i] for i in train_idx], [source.paths[i] for i in valid_idx], stats,
    )


@dataclass
class ImageItems:
    """The items of an image data set before any pixel is decoded: the files (and rows), their targets, which train
    and which validate (indices into `source`), and how messages name the data."""

    source: ItemSource
    targets: Targets
    train_idx: list[int]
    valid_idx: list[int]
    where: Any


def image_items(data: str | Path | pd.DataFrame, *, y: str | Callable[[Path], Any] | None = None,
                path_col: str | None = None, kind: KindName | None = None, label_delim: str | None = None,
                splitter: Splitter | str = "auto", valid_pct: float = 0.2, seed: int = 42) -> ImageItems:
    """Items -> labels -> split, as `image_dataloaders` does before decoding (and `quicklearn check` too, so that
    both decode the same files into the same cache entries). The split is not checked here: the caller refuses or
    reports a split that cannot train."""
    source = image_source(data, path_col)
    where = data if not isinstance(data, pd.DataFrame) else "the DataFrame"
    split = _resolve_splitter(splitter, source, valid_pct, seed)
    if not isinstance(split, (RandomSplitter, FolderSplitter, ColumnSplitter, IndexSplitter)):
        # stratified and user-written splitters need the targets; the built-ins below do not
        targets = get_targets(source, y, kind=kind, label_delim=label_delim)
        train_idx, valid_idx = split(source, targets)
    else:
        # Split first: items outside train/ and valid/ (e.g. an unlabelled test/ folder) must not become a class.
        train_idx, valid_idx = split(source, None)  # type: ignore[arg-type]
        keep = train_idx + valid_idx
        if len(keep) < len(source):
            source = ItemSource([source.paths[i] for i in keep], source.root,
                                None if source.frame is None else source.frame.iloc[keep].reset_index(drop=True), source.skipped,
                                source.name)
            train_idx, valid_idx = list(range(len(train_idx))), list(range(len(train_idx), len(keep)))
        targets = get_targets(source, y, kind=kind, label_delim=label_delim)
    return ImageItems(source, targets, train_idx, valid_idx, where)


def image_pipeline(size: int, presize: int | None = None, resize_mode: ResizeMode = "crop", channels: int = 3,
                   normalize: Normalize | None = None, arch: str = "tf_efficientnet_lite0") -> ImagePipeline:
    """The deterministic pipeline (and so the decoded-image cache entry) of these settings: pre-size to `presize`
    (default size/0.875), the arch's pretrained normalization."""
    return ImagePipeline(size, presize or default_presize(size), resize_mode, channels,
                         normalize or Normalize.for_arch(arch, channels))


def _resolve_splitter(splitter: Splitter | str, source: ItemSource, valid_pct: float, seed: int) -> Splitter:
    if not isinstance(splitter, str):
        return splitter
    if splitter == "auto":
        return auto_splitter(source, valid_pct, seed)
    if splitter == "random":
        return RandomSplitter(valid_pct, seed)
    if splitter == "stratified":
        return StratifiedSplitter(valid_pct, seed)
    raise DataError(f"splitter={splitter!r}: use 'auto', 'random', 'stratified' or a Splitter object.")
