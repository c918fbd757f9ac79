"""Text data: a CSV or DataFrame with a text column (or several, joined) and a label column -> token ids, made once
with the model's fast tokenizer -> padded batches.

Training batches are length-bucketed: the shuffled order is cut into pools of 50 batches, each pool is sorted by
length and cut into batches, and the batches are shuffled, so a batch holds texts of similar length and pads
little (fastai's SortishSampler idea). Validation batches run in length order. A batch is one int64 tensor
(B, 2, L): the token ids padded with the tokenizer's pad id, and the attention mask from each text's length.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd
import torch

from quicklearn.core.errors import DataError
from quicklearn.core.progress import progress
from quicklearn.data.labels import KindName, Vocab
from quicklearn.data.loaders import LoaderPair, results_csv, shard_batches, sharded_len, tensor_keys

__all__ = ["find_text_column", "join_texts", "text_separator", "tokenize", "TextLoader", "TextDataLoaders"]

log = logging.getLogger("quicklearn")

_POOL_BATCHES = 50


def find_text_column(frame: pd.DataFrame, exclude: Sequence[str], where: str) -> str:
    """The string column with the longest texts on average (the one a person would call "the text")."""
    lengths = {c: frame[c].dropna().astype(str).str.len().mean()
               for c in frame.columns if c not in exclude and pd.api.types.is_string_dtype(frame[c].dtype)}
    lengths = {c: n for c, n in lengths.items() if n == n}  # drop all-empty columns (NaN mean)
    if not lengths:
        raise DataError(f"{where}: no text column found among {list(frame.columns)}; name it with text= (--text-col).")
    return max(lengths, key=lambda c: lengths[c])


def text_separator(tokenizer: Any) -> str:
    """What joins several text columns: the tokenizer's separator token (BERT's [SEP]), else ' | '."""
    return f" {getattr(tokenizer, 'sep_token', None) or '|'} "


def join_texts(frame: pd.DataFrame, cols: Sequence[str], sep: str, where: str) -> list[str]:
    """Each row's text columns joined with `sep`; rows where all are empty are reported with their numbers."""
    parts = frame[list(cols)].astype("string").fillna("")
    texts = parts.iloc[:, 0] if len(cols) == 1 else parts.apply(lambda r: sep.join(v for v in r if v), axis=1)
    empty = [int(i) for i in (texts.str.strip() == "").to_numpy().nonzero()[0]]
    if empty:
        log.warning("%s: %d empty text(s) in %s, rows %s%s; they train as empty inputs.", where, len(empty),
                    ", ".join(cols), empty[:5], " ..." if len(empty) > 5 else "")
    return texts.tolist()


def tokenize(tokenizer: Any, texts: Sequence[str], max_len: int, chunk: int = 1000) -> list[torch.Tensor]:
    """Token ids of each text (special tokens added, truncated to `max_len`), once, in chunks with a progress bar."""
    out: list[torch.Tensor] = []
    with progress() as bar:
        task = bar.add_task("tokenizing", total=len(texts), info="") if bar else None
        for k in range(0, len(texts), chunk):
            enc = tokenizer(list(texts[k:k + chunk]), truncation=True, max_length=max_len, padding=False)
            out += [torch.tensor(ids, dtype=torch.int32) for ids in enc["input_ids"]]
            if bar:
                bar.advance(task, min(chunk, len(texts) - k))
    return out


@dataclass
class TextLoader:
    """Padded batches of token ids; length-bucketed when shuffling (training), in length order otherwise."""

    ids: list[torch.Tensor]
    targets: torch.Tensor
    pad_id: int
    bs: int = 32
    shuffle: bool = False
    bucket: bool = True
    drop_last: bool = False
    seed: int = 42
    device: torch.device = torch.device("cpu")
    epoch: int = 0
    channels_last: bool = False  # set by the Learner like any loader's; token ids have no channels
    rank: int = 0  # data-parallel shard: set by LoaderPair.shard (see data.loaders.shard_batches)
    world: int = 1
    whole_batches: bool = True

    def __post_init__(self) -> None:
        self.lengths = torch.tensor([len(t) for t in self.ids], dtype=torch.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def n(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return sharded_len(self.n, self.bs, self.drop_last, self.rank, self.world, self.whole_batches)

    def batches(self) -> list[torch.Tensor]:
        """The index batches of this epoch."""
        if not self.shuffle:
            order = torch.argsort(self.lengths, descending=True, stable=True)
            return [order[k:k + self.bs] for k in range(0, self.n, self.bs)]
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g)
        if self.bucket:
            pool = self.bs * _POOL_BATCHES
            chunks = []
            for k in range(0, self.n, pool):
                part = order[k:k + pool]
                chunks.append(part[torch.argsort(self.lengths[part], descending=True, stable=True)])
            order = torch.cat(chunks)
        batches = [order[k:k + self.bs] for k in range(0, self.n, self.bs)]
        if self.drop_last and len(batches) > 1 and len(batches[-1]) < self.bs:
            batches = batches[:-1]
        perm = torch.randperm(len(batches), generator=g).tolist()
        return [batches[i] for i in perm]

    def collate(self, idx: torch.Tensor) -> torch.Tensor:
        """Texts `idx` as one int64 tensor (B, 2, L): token ids padded with `pad_id`, and the attention mask,
        1 over each text's own tokens. The mask comes from the lengths the tokenizer gave, never from comparing
        ids with the pad id, which a tokenizer may share with a real token (GPT-2 pads with end-of-text)."""
        rows = [self.ids[int(i)] for i in idx]
        width = max(len(r) for r in rows)
        x = torch.full((len(rows), 2, width), self.pad_id, dtype=torch.int64)
        x[:, 1] = 0
        for j, r in enumerate(rows):
            x[j, 0, : len(r)] = r
            x[j, 1, : len(r)] = 1
        return x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx, _, _ in shard_batches(self.batches(), self.bs, self.rank, self.world, self.whole_batches):
            yield self.collate(idx).to(self.device), self.targets[idx].to(self.device)


@dataclass
class TextDataLoaders(LoaderPair):
    """Train and valid loaders of texts plus what the model and export need."""

    train: TextLoader
    valid: TextLoader
    kind: KindName
    vocab: Vocab | None
    tokenizer: Any
    text_cols: list[str]
    y: str
    max_len: int
    target_stats: tuple[float, float] | None = None

    task = "text"

    def folder_parts(self, learn: Any, folder: Path) -> tuple[dict[str, Any], list[str]]:
        """config.json's target column, and the encoder's architecture (config only: no code, no weights) and the
        tokenizer as files: the vocabulary and the encoder's shape matter as much as the weights."""
        learn.model.encoder.config.save_pretrained(str(folder / "encoder"))
        self.tokenizer.save_pretrained(str(folder / "tokenizer"))
        files = sorted(f.relative_to(folder).as_posix() for sub in ("encoder", "tokenizer")
                       for f in (folder / sub).rglob("*") if f.is_file())
        return {"target": self.y}, files

    def show_results(self, learn: Any, path: str | Path | None, n: int) -> Path:
        """The first `n` validation texts (in length order, as validation runs), actual and predicted, as a CSV."""
        ids = [self.valid.ids[int(i)] for i in torch.cat(self.valid.batches())[:n]]
        return results_csv(learn, [self.tokenizer.decode(t, skip_special_tokens=True) for t in ids], path, n)

    def item_keys(self) -> tuple[list[bytes], list[bytes]]:
        """Each text's token ids and target."""
        return tensor_keys(self.train.ids, self.train.targets), tensor_keys(self.valid.ids, self.valid.targets)

    def show_batch(self, n: int = 4) -> str:
        """A few decoded training examples with their labels, as text (printed by the CLI)."""
        idx = self.train.batches()[0][:n]
        lines = []
        for i in idx:
            text = self.tokenizer.decode(self.train.ids[int(i)], skip_special_tokens=True)
            y = self.train.targets[int(i)]
            label = self.target_kind.readable(y[None], self.vocab.classes if self.vocab else None)[0]
            lines.append(f"[{label}] {text[:200]}{'...' if len(text) > 200 else ''}")
        return "\n".join(lines)
