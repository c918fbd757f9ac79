"""Image loaders: decode and pre-size every image once (worker processes), then serve uint8 batches that are
augmented and normalized on the device where they are used.

Why decode once: JPEG decoding and resizing of full-size photos cost more than a forward/backward pass of a
small backbone on a CPU; fastai repeats that work every epoch. Pre-sized uint8 images take
3*256*256 = 192 KiB each, so 10,000 images fit in 2 GiB of RAM.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from quicklearn.core.errors import DataError
from quicklearn.core.progress import progress
from quicklearn.data.loaders import n_batches, shard_batches, sharded_len
from quicklearn.tasks.vision.augment import AugmentConfig, augment_batch, resize_batch
from quicklearn.tasks.vision.images import UnreadableImage, decode_image
from quicklearn.tasks.vision.pipeline import ImagePipeline

__all__ = ["default_num_workers", "DecodeDataset", "decode_all", "BatchLoader"]


def default_num_workers() -> int:
    """Worker processes for the one decoding pass: one per core, at most 8.

    Measured on the 2-core dev machine (benchmarks/workers.py, decode + pre-size to 256 px, best of 3):
    398 hymenoptera photos: 0 workers 1.30 s, 1 worker 1.87 s (0.69x), 2 workers 1.22 s (1.07x), 3 workers 1.27 s;
    the same list x4 (1,592 decodes): 0 -> 5.29 s, 1 -> 7.16 s (0.74x), 2 -> 4.70 s (1.13x), 3 -> 4.69 s (1.13x).
    One worker is slower than none (the main process only waits), one per core is fastest, more adds nothing.
    Decoding happens once per run, so there are no per-epoch workers to keep alive (persistent workers are
    moot: the epochs read the in-memory uint8 tensor).
    """
    return min(8, os.cpu_count() or 1)


class DecodeDataset(Dataset):
    """Decode + item transforms of one path; an unreadable file yields None (counted and reported by the caller).
    decode: how a file becomes a uint8 (C, H, W) tensor (default: `decode_image` with `channels`; a mask decoder
    for segmentation); it raises UnreadableImage for a file it cannot read."""

    def __init__(self, paths: Sequence[Path], item_tfms: Sequence[Callable[[torch.Tensor], torch.Tensor]], channels: int,
                 decode: Callable[[Path], torch.Tensor] | None = None):
        self.paths, self.item_tfms, self.channels, self.decode = list(paths), list(item_tfms), channels, decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str]:
        try:
            img = self.decode(self.paths[i]) if self.decode is not None else decode_image(self.paths[i], self.channels)
            for tfm in self.item_tfms:
                img = tfm(img)
            # numpy, not a tensor: from a worker process an array is pickled by value through the pipe, while a
            # tensor travels as a shared-memory file descriptor, which cost 1.2 ms per image to receive (measured).
            return i, img.numpy(), ""
        except UnreadableImage as e:
            return i, None, str(e)


def _collate(batch: list) -> list:
    return batch


def decode_all(
    paths: Sequence[Path],
    item_tfms: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    channels: int,
    num_workers: int | None = None,
    description: str = "decoding images",
    out: torch.Tensor | None = None,
    decode: Callable[[Path], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[int], list[str]]:
    """Decode every path once into one uint8 tensor (N_ok, C, S, S); returns it, the indices that decoded, and the errors.

    Images are written one by one into `out` (N slots: RAM or a memory-mapped file, see `data.cache`), or into a
    buffer allocated at the first image's shape, never into a list that is stacked afterwards (which would need
    twice the memory). Unreadable files leave no gap: the result is the first N_ok slots.
    """
    if not paths:
        return torch.empty(0, dtype=torch.uint8), [], []
    nw = num_workers
    if nw is None:
        nw = min(default_num_workers(), len(paths) // 32)  # tiny sets: worker start-up costs more than it saves
        nw = 0 if nw == 1 else nw  # measured: a single worker is slower than decoding in the main process
    ds = DecodeDataset(paths, item_tfms, channels, decode)
    loader = DataLoader(ds, batch_size=16, num_workers=nw, collate_fn=_collate)  # yields in order
    ok: list[int] = []
    errors: list[str] = []
    with progress() as bar:
        task = bar.add_task(description, total=len(paths), info="") if bar else None
        for batch in loader:
            for i, img, err in batch:
                if img is None:
                    errors.append(err)
                    continue
                img = torch.from_numpy(img)
                if out is None:
                    out = torch.empty((len(paths), *img.shape), dtype=torch.uint8)
                if tuple(img.shape) != tuple(out.shape[1:]):
                    raise DataError(f"{paths[i]}: the item transforms gave shape {tuple(img.shape)}, but earlier images "
                                    f"gave {tuple(out.shape[1:])}; item transforms must end in one fixed size (e.g. Resize).")
                out[len(ok)] = img
                ok.append(i)
            if bar:
                bar.advance(task, len(batch))
    if out is None:
        return torch.empty(0, dtype=torch.uint8), [], errors
    return out[: len(ok)], ok, errors


@dataclass
class BatchLoader:
    """Batches of pre-sized uint8 images -> (normalized float batch, targets) on `device`.

    Shuffling and augmentation draw from generators seeded by (seed, epoch): the same seed gives the same
    batches, and a resumed run sees exactly the batches an uninterrupted one would.
    """

    images: torch.Tensor  # uint8 (N, C, S, S), CPU
    targets: torch.Tensor
    pipeline: ImagePipeline
    bs: int = 32
    shuffle: bool = False
    drop_last: bool = False
    augment: AugmentConfig | None = None
    seed: int = 42
    device: torch.device = torch.device("cpu")
    channels_last: bool = False
    epoch: int = 0
    size: int | None = None  # training size when set (progressive resizing); None = pipeline.size
    rank: int = 0  # data-parallel shard: set by LoaderPair.shard (see shard_batches)
    world: int = 1
    whole_batches: bool = True

    def __post_init__(self) -> None:
        # Two pinned staging buffers for host->GPU copies, used in turn: a batch is gathered into one while the
        # other's asynchronous copy may still run. (Pinning the whole image array would not help: indexing it
        # allocates a new, unpinned tensor; and it would load a memory-mapped cache into RAM.)
        self._staging: list[tuple[torch.Tensor, torch.cuda.Event | None]] = []
        self._slot = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sharded_len(len(self.images), self.bs, self.drop_last, self.rank, self.world, self.whole_batches)

    def _order(self) -> torch.Tensor:
        n = len(self.images)
        if not self.shuffle:
            return torch.arange(n)
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()
        aug_gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + 7_919)
        nb = n_batches(len(self.images), self.bs, self.drop_last)
        batches = [order[b * self.bs : (b + 1) * self.bs] for b in range(nb)]
        for idx, rows, n_draws in shard_batches(batches, self.bs, self.rank, self.world, self.whole_batches):
            yield self.make_batch(idx, aug_gen, rows, n_draws)

    def make_batch(self, idx: torch.Tensor, aug_gen: torch.Generator | None = None, rows: list[int] | None = None,
                   n_draws: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of items `idx`; rows/n_draws: they are these rows of a global batch of n_draws (one rank's slice)."""
        x = self._gather(idx)
        y = self.targets[idx].to(self.device, non_blocking=self.device.type == "cuda")
        if self.augment is not None and self.augment.enabled:
            x = self.pipeline.normalize(augment_batch(x, self.size or self.pipeline.size, self.augment,
                                                      aug_gen or torch.Generator(), rows, n_draws))
        elif self.size:
            x = self.pipeline.normalize(resize_batch(x, self.size))
        else:
            x = self.pipeline.valid_batch(x, channels_last=self.channels_last)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _gather(self, idx: torch.Tensor) -> torch.Tensor:
        """The uint8 images at `idx`, on the device (through a pinned staging buffer for CUDA)."""
        if self.device.type != "cuda":
            return self.images[idx].to(self.device)
        if not self._staging:
            shape = (max(self.bs, 1), *self.images.shape[1:])
            self._staging = [(torch.empty(shape, dtype=torch.uint8).pin_memory(), None) for _ in range(2)]
        self._slot = (self._slot + 1) % 2
        buf, done = self._staging[self._slot]
        if done is not None:
            done.synchronize()  # this buffer's previous copy has finished: safe to overwrite
        out = buf[: len(idx)]
        torch.index_select(self.images, 0, idx, out=out)
        x = out.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._staging[self._slot] = (buf, event)
        return x

    @property
    def n(self) -> int:
        return len(self.images)
