"""What every task's loaders share: the protocol the Learner uses (`LoaderPair`), epoch lengths, and the
data-parallel sharding rules (each rank takes a slice of every global training batch and a block of the
validation items). Each task's own loaders live in its folder (tasks/vision/loaders.py, ...).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import torch

from quicklearn.core.distributed import batch_slice, block_slice
from quicklearn.core.errors import ConfigError, DataError
from quicklearn.data.kinds import TargetKind, get_kind

__all__ = ["LoaderPair", "TensorLoader", "n_batches", "shard_batches", "sharded_len", "tensor_keys", "results_csv"]

log = logging.getLogger("quicklearn")


def n_batches(n: int, bs: int, drop_last: bool) -> int:
    """Batches in an epoch of `n` items: a short last batch counts unless `drop_last` (and there is a full one)."""
    if drop_last and n >= bs:
        return n // bs
    return (n + bs - 1) // bs


def sharded_len(n: int, bs: int, drop_last: bool, rank: int, world: int, whole_batches: bool) -> int:
    """Batches one rank iterates: every global batch (a slice of each) when `whole_batches`, else its block's."""
    if world <= 1 or whole_batches:
        return n_batches(n, bs, drop_last)
    block = block_slice(n, rank, world)
    return n_batches(block.stop - block.start, bs, False)


def shard_batches(batches: list[torch.Tensor], bs: int, rank: int, world: int,
                  whole_batches: bool) -> list[tuple[torch.Tensor, list[int] | None, int]]:
    """This rank's share of an epoch's global index batches, as (indices, positions in the global batch, global size).

    whole_batches (training): a contiguous slice of every global batch, the same count on every rank (see
    `distributed.batch_slice`). Otherwise (validation): one contiguous block of the items in their global order,
    batched by `bs`, so gathering the ranks' outputs in rank order restores that order."""
    if world <= 1:
        return [(b, None, len(b)) for b in batches]
    if whole_batches:
        out = []
        for b in batches:
            pos, _ = batch_slice(len(b), rank, world)
            out.append((b[pos], pos, len(b)))
        return out
    order = torch.cat(batches) if batches else torch.empty(0, dtype=torch.int64)
    block = order[block_slice(len(order), rank, world)]
    return [(block[k:k + bs], None, len(block[k:k + bs])) for k in range(0, len(block), bs)]


@dataclass
class TensorLoader:
    """Batches of (inputs, targets) by index from two whole tensors, no per-row Python and no collate: the loader of
    the tasks whose data fits in memory as tensors (tables, ratings). Shuffled with a seed per epoch, so a resumed
    run sees the batches an uninterrupted one would; under data parallelism each rank takes its share of every
    global batch (`shard_batches`)."""

    x: torch.Tensor
    targets: torch.Tensor
    bs: int = 64
    shuffle: bool = False
    drop_last: bool = False
    seed: int = 42
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    epoch: int = 0
    channels_last: bool = False  # set by the Learner like any loader's; tensors of rows have no channels
    rank: int = 0  # data-parallel shard: set by LoaderPair.shard
    world: int = 1
    whole_batches: bool = True

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sharded_len(len(self.x), self.bs, self.drop_last, self.rank, self.world, self.whole_batches)

    @property
    def n(self) -> int:
        return len(self.x)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)) \
            if self.shuffle else None
        x, t = self.x.to(self.device), self.targets.to(self.device)
        if self.world > 1:
            order = torch.arange(n) if order is None else order
            batches = [order[b * self.bs:(b + 1) * self.bs] for b in range(n_batches(n, self.bs, self.drop_last))]
            for idx, _, _ in shard_batches(batches, self.bs, self.rank, self.world, self.whole_batches):
                idx = idx.to(self.device)
                yield x.index_select(0, idx), t.index_select(0, idx)
            return
        if order is not None:
            order = order.to(self.device)
        for b in range(len(self)):
            if order is None:
                yield x[b * self.bs:(b + 1) * self.bs], t[b * self.bs:(b + 1) * self.bs]
            else:
                idx = order[b * self.bs:(b + 1) * self.bs]
                yield x.index_select(0, idx), t.index_select(0, idx)


def results_csv(learn: Any, items: Sequence[str], path: str | Path | None, n: int) -> Path:
    """`show_results` for rows and texts: the first `n` validation items (as described), actual, predicted (and
    the prediction's probability for one-label classifiers), written as a CSV; returns its path."""
    import pandas as pd

    from quicklearn.core.fileio import write_text

    preds, targets = learn.get_preds()
    preds, targets = preds[: len(items)], targets[: len(items)]
    kind, classes = learn.target_kind, learn.dls.vocab.classes if learn.dls.vocab else None
    frame = pd.DataFrame({"item": list(items), "actual": kind.readable(targets, classes),
                          "predicted": kind.readable(kind.decide(preds, classes), classes)})
    cols = kind.columns(preds, classes)
    if "probability" in cols:
        frame["probability"] = cols["probability"]
    target = Path(path) if path is not None else Path("results.csv")
    return write_text(target.with_suffix(".csv"), frame.to_csv(index=False))


def tensor_keys(rows: Sequence[torch.Tensor] | torch.Tensor, targets: torch.Tensor) -> list[bytes]:
    """One key per item: its row of values (a table row, a text's token ids) and its target, as bytes."""
    return [r.detach().cpu().numpy().tobytes() + b"\0" + t.detach().cpu().numpy().tobytes() for r, t in zip(rows, targets)]


class LoaderPair:
    """What the Learner needs of any data (images, tables, texts), given `train`, `valid`, `kind` and `vocab`:
    the output width, the device, and moving both loaders to a device (and memory format, where it applies).

    Each task's DataLoaders also says which task it is (`task`, the model folder's "task"), what of it the model
    folder keeps (`folder_parts`), what identifies its items (`item_keys`, for the checkpoint's fingerprint), and,
    where they mean something for its data, how to show results and average test-time augmentation views."""

    task: ClassVar[str | None] = None

    def folder_parts(self, learn: Any, folder: Path) -> tuple[dict[str, Any], list[str]]:
        """What the model folder needs of this data: keys for config.json (a pipeline, a fitted pre-processing),
        and the files written into `folder` (their checksums are recorded)."""
        return {}, []

    def show_results(self, learn: Any, path: str | Path | None, n: int) -> Path:
        """The first `n` validation items with their actual and predicted targets: a picture for images, a CSV for
        rows and texts; `path` None: results.png / results.csv."""
        raise ConfigError(f"show_results needs data that can show its items; this {self.task or 'other'} data cannot: "
                          "use quicklearn.interpret(learn).top_losses() to see predictions next to targets.")

    def tta(self, learn: Any, dl: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Test-time augmentation over `dl`: outputs averaged over fixed views of each item."""
        raise ConfigError(f"tta() needs views of an image (flips and crops); {self.task or 'this'} data has none.")

    @property
    def n_out(self) -> int:
        return get_kind(self.kind).n_out(len(self.vocab) if self.vocab else 0)  # type: ignore[attr-defined]

    @property
    def target_kind(self) -> TargetKind:
        """The target kind as an object (its loss, metrics, decoding)."""
        return get_kind(self.kind)  # type: ignore[attr-defined]

    @property
    def device(self) -> torch.device:
        return self.train.device  # type: ignore[attr-defined]

    def to(self, device: torch.device | str, channels_last: bool | None = None):  # noqa: ANN201 (returns self)
        for dl in (self.train, self.valid):  # type: ignore[attr-defined]
            dl.device = torch.device(device)
            if channels_last is not None:
                dl.channels_last = channels_last
        return self

    def item_keys(self) -> tuple[list[bytes], list[bytes]]:
        """Each training and validation item as bytes that change when the item or its target does (for
        `fingerprint`); each kind of data says what identifies its items."""
        raise NotImplementedError

    def fingerprint(self) -> dict[str, object]:
        """What a checkpoint records of the data, so that --resume can refuse other data: digests of the items
        (in any order), of the training and of the validation items (in order), and their counts."""
        train, valid = ([hashlib.sha256(k).digest() for k in keys] for keys in self.item_keys())
        digest = lambda parts: hashlib.sha256(b"".join(parts)).hexdigest()[:32]  # noqa: E731
        return {"items": digest(sorted(train + valid)), "train": digest(train), "valid": digest(valid),
                "n_train": len(train), "n_valid": len(valid)}

    def shard(self, rank: int, world: int):  # noqa: ANN201 (returns self)
        """Data-parallel sharding (quicklearn.distributed): training takes a slice of every global batch,
        validation a disjoint block of items; world=1 undoes it."""
        for dl, whole in ((self.train, True), (self.valid, False)):  # type: ignore[attr-defined]
            if world > 1 and not whole and dl.n < world:
                raise DataError(f"the validation set has {dl.n} items, fewer than the {world} processes training; "
                                "use fewer processes (--nproc_per_node) or a larger validation set.")
            dl.rank, dl.world, dl.whole_batches = rank, world, whole
        return self


