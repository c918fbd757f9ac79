"""`text_learner`: labelled texts -> a pretrained encoder with a new head -> a Learner, in one call.

    learn = ql.text_learner("texts.csv", text="text", y="label")     # arch="minilm": offline all-MiniLM-L6-v2
    learn.fine_tune(2)                                                 # head first, then all with discriminative rates
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from quicklearn.core.distributed import device_for_rank
from quicklearn.core.errors import ConfigError
from quicklearn.core.progress import console
from quicklearn.data.frames import check_column, drop_rows_without, read_frame
from quicklearn.data.kinds import get_kind
from quicklearn.data.labels import KindName, get_targets, target_stats
from quicklearn.data.sources import table_source
from quicklearn.data.split import Splitter, check_split, resolve_tabular_splitter
from quicklearn.tasks.text.data import (
    TextDataLoaders,
    TextLoader,
    find_text_column,
    join_texts,
    text_separator,
    tokenize,
)
from quicklearn.tasks.text.model import DEFAULT_TEXT_ARCH, Pooling, TextModel, load_encoder
from quicklearn.train.callbacks.base import Callback
from quicklearn.train.learner import Learner, Precision

__all__ = ["text_learner", "text_dataloaders"]


def text_dataloaders(
    data: str | Path | pd.DataFrame,
    tokenizer: object,
    *,
    text: str | Sequence[str] | None = None,
    y: str | None = None,
    kind: KindName | None = None,
    label_delim: str | None = None,
    splitter: Splitter | str = "auto",
    valid_pct: float = 0.2,
    max_len: int = 256,
    bs: int = 32,
    bucket: bool = True,
    seed: int = 42,
    progress: bool | None = None,
) -> TextDataLoaders:
    """Read, pick the text column(s), label, split, and tokenize every text once."""
    if not y:
        raise ConfigError("texts need their label column: y='column' (--target column).")
    if int(bs) < 1 or int(max_len) < 2:
        raise ConfigError(f"bs={bs}, max_len={max_len}: both must be positive (max_len at least 2).")
    frame, where = read_frame(data)
    check_column(frame, y, "target", where)
    frame = drop_rows_without(frame, y, where)
    if text is None:
        cols = [find_text_column(frame, [y, "is_valid"], where)]
        if progress is not False:
            console().print(f"text column: {cols[0]!r} (the longest texts; choose with text= / --text-col)", highlight=False)
    else:
        cols = [text] if isinstance(text, str) else list(text)
        for c in cols:
            check_column(frame, c, "text", where)
    texts = join_texts(frame, cols, text_separator(tokenizer), where)
    source = table_source(frame, where)
    targets = get_targets(source, y, kind=kind, label_delim=label_delim)
    split = resolve_tabular_splitter(splitter, frame, targets.kind, valid_pct, seed, where)
    train_idx, valid_idx = split(source, targets)
    check_split(train_idx, valid_idx, targets, where)
    ids = tokenize(tokenizer, texts, int(max_len))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # type: ignore[attr-defined]
    tv = targets.values[train_idx]
    stats = target_stats(tv) if get_kind(targets.kind).standardized else None
    train = TextLoader([ids[i] for i in train_idx], tv, pad, bs=min(int(bs), len(train_idx)), shuffle=True,
                       bucket=bucket, drop_last=True, seed=seed)
    valid = TextLoader([ids[i] for i in valid_idx], targets.values[valid_idx], pad, bs=int(bs) * 2)
    return TextDataLoaders(train, valid, targets.kind, targets.vocab, tokenizer, cols, y, int(max_len), stats)


def text_learner(
    data: str | Path | pd.DataFrame,
    text: str | Sequence[str] | None = None,
    y: str | None = None,
    *,
    arch: str = DEFAULT_TEXT_ARCH,
    max_len: int = 256,
    pooling: Pooling = "mean",
    dropout: float = 0.1,
    kind: KindName | None = None,
    label_delim: str | None = None,
    splitter: Splitter | str = "auto",
    valid_pct: float = 0.2,
    bs: int = 32,
    bucket: bool = True,
    metrics: Sequence[str] | None = None,
    monitor: str | None = None,
    opt: str = "adamw",
    wd: float = 0.01,
    class_weights: Sequence[float] | str | None = None,
    label_smoothing: float = 0.0,
    grad_clip: float | None = 1.0,
    precision: Precision = "auto",
    device: str | torch.device | None = "auto",
    seed: int = 42,
    path: str | Path | None = None,
    cbs: Sequence[Callback] = (),
    progress: bool | None = None,
    recipe: dict | None = None,
    distributed: bool | None = None,
    sync_bn: bool = False,
) -> Learner:
    """A pretrained encoder (`arch`: 'minilm', a local model folder, or a hub name) with a pooled linear head.

    Layer groups: embeddings, the transformer blocks in two groups, the head; `freeze()` trains the head only and
    `fine_tune` runs the frozen phase, then all groups at discriminative rates.
    """
    from quicklearn.train.learner import resolve_device

    torch.manual_seed(seed)
    encoder, tokenizer, desc = load_encoder(arch)
    dls = text_dataloaders(data, tokenizer, text=text, y=y, kind=kind, label_delim=label_delim, splitter=splitter,
                           valid_pct=valid_pct, max_len=max_len, bs=bs, bucket=bucket, seed=seed, progress=progress)
    torch.manual_seed(seed)
    model = TextModel(encoder, dls.n_out, dls.train.pad_id, pooling=pooling, dropout=dropout)
    config = {
        "task": "text",
        "model": {"arch": arch, "weights": desc, "n_out": dls.n_out, "pooling": pooling, "dropout": dropout,
                  "max_len": int(max_len), "pad_id": dls.train.pad_id, "text_cols": dls.text_cols},
        "recipe": recipe,
    }
    return Learner(
        dls, model, metrics=metrics, monitor=monitor, opt=opt, wd=wd, device=resolve_device(device_for_rank(device)), precision=precision,
        channels_last=False, grad_clip=grad_clip, class_weights=class_weights, label_smoothing=label_smoothing, path=path, cbs=cbs, seed=seed,
        progress=progress, config=config, distributed=distributed, sync_bn=sync_bn,
    )
