"""`tabular_learner`: a CSV or DataFrame and a target column -> a Learner, in one call.

    learn = ql.tabular_learner("train.csv", y="Survived")
    learn.fine_tune(ql.auto_epochs(learn.dls), 2e-2, freeze_epochs=0, pct_start=0.05)   # what `quicklearn train` runs
    learn.export("titanic_model")
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from quicklearn.core.distributed import device_for_rank
from quicklearn.core.errors import ConfigError, DataError
from quicklearn.core.progress import console
from quicklearn.data.frames import drop_rows_without, read_frame
from quicklearn.data.kinds import get_kind
from quicklearn.data.labels import KindName, Targets, Vocab, target_stats
from quicklearn.data.sources import table_source
from quicklearn.data.split import ColumnSplitter, Splitter, check_split, resolve_tabular_splitter
from quicklearn.tasks.tabular.data import (
    TabularDataLoaders,
    TabularLoader,
    TabularProcessor,
    _cat_keys,
    infer_roles,
    tabular_target,
)
from quicklearn.tasks.tabular.model import TabularModel
from quicklearn.train.callbacks.base import Callback
from quicklearn.train.callbacks.monitor import EarlyStopping, SaveBest
from quicklearn.train.learner import Learner, Precision

__all__ = ["tabular_learner", "tabular_dataloaders", "resolve_tabular_splitter", "auto_epochs", "auto_bs"]

log = logging.getLogger("quicklearn")


def tabular_dataloaders(
    data: str | Path | pd.DataFrame,
    y: str,
    *,
    kind: KindName | None = None,
    cat_names: Sequence[str] | None = None,
    cont_names: Sequence[str] | None = None,
    drop: Sequence[str] = (),
    date_parts: bool = False,
    splitter: Splitter | str = "auto",
    valid_pct: float = 0.2,
    seed: int = 42,
    bs: int | str = "auto",
    scaling: str = "auto",
    device: torch.device | str = "cpu",
) -> TabularDataLoaders:
    """Read, split, infer the column roles and fit the pre-processing on the training rows, tensorize the table."""
    if bs != "auto" and (not isinstance(bs, int) or bs < 1):
        raise DataError(f"bs={bs!r}: the batch size must be a whole number of at least 1, or 'auto'.")
    if not isinstance(y, str) or not y:
        raise ConfigError("tabular data needs the target column: y='column' (--target column).")
    frame, where = read_frame(data)
    kind = tabular_target(frame, y, kind, where)
    frame = drop_rows_without(frame, y, where)
    if len(frame) < 2:
        raise DataError(f"{where}: needs at least 2 rows with a target {y!r}, found {len(frame)}.")
    split = resolve_tabular_splitter(splitter, frame, kind, valid_pct, seed, where)

    # targets
    if kind == "regression":
        values = pd.to_numeric(frame[y], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().nonzero()[0][0])
            raise DataError(f"{where}: target {y!r} must be numeric for regression, row {row} has {frame[y].tolist()[row]!r}. "
                            "Fix it, or pass kind='single' (--kind single) to classify.")
        target_t = torch.tensor(values.to_numpy(), dtype=torch.float32)
        if not torch.isfinite(target_t).all():  # inf, or beyond float32 (3.4e38): every loss would be inf
            row = int((~torch.isfinite(target_t)).nonzero()[0][0])
            raise DataError(f"{where}: target {y!r} row {row} has {frame[y].tolist()[row]!r}; regression needs finite numbers "
                            "(below 3.4e38). Fix the value or drop the row.")
        targets = Targets("regression", target_t, None)
        vocab = None
    else:
        keys = _cat_keys(frame[y])
        vocab = Vocab.from_labels(keys.tolist())
        if len(vocab) < 2:
            raise DataError(f"{where}: target {y!r} has one class only ({vocab.classes[0]!r}); a classifier needs two or more.")
        lookup = {c: i for i, c in enumerate(vocab.classes)}
        target_t = torch.tensor(keys.map(lookup).to_numpy(), dtype=torch.int64)
        targets = Targets("single", target_t, vocab)

    source = table_source(frame, where)
    train_idx, valid_idx = split(source, targets)
    check_split(train_idx, valid_idx, targets, where)
    train_frame = frame.iloc[train_idx]
    # roles from the training rows only, like the pre-processing: validation rows must not decide what a column is
    roles = infer_roles(train_frame, y, cat_names=cat_names, cont_names=cont_names, drop=drop, date_parts=date_parts,
                        where=where)
    split_col = split.column if isinstance(split, ColumnSplitter) else None
    for names in (roles.cat_names, roles.cont_names):
        if split_col in names:  # a column that says which rows validate must not be a feature
            names.remove(split_col)
            roles.dropped[split_col] = "the validation-split column"
    processor = TabularProcessor.fit(train_frame, roles, scaling=scaling)
    x = processor.transform(frame, where)
    tv = target_t[train_idx]
    stats = target_stats(tv) if get_kind(kind).standardized else None
    if get_kind(kind).classifier:
        _report_balance(targets, train_idx, vocab, where)
    dev = torch.device(device)
    bs = auto_bs(len(train_idx)) if bs == "auto" else int(bs)
    train = TabularLoader(x[train_idx], tv, bs=min(bs, len(train_idx)), shuffle=True, drop_last=True, seed=seed,
                          device=dev)
    valid = TabularLoader(x[valid_idx], target_t[valid_idx], bs=int(bs) * 2, shuffle=False, device=dev)
    return TabularDataLoaders(train, valid, kind, vocab, processor, roles, y, stats)


def _report_balance(targets: Targets, train_idx: list[int], vocab: Vocab, where: str) -> None:
    counts = torch.bincount(targets.values[train_idx], minlength=len(vocab)).tolist()
    total = sum(counts)
    desc = ", ".join(f"{c} {n} ({100 * n / total:.0f}%)" for c, n in zip(vocab.classes, counts))
    if min(counts) < 0.2 * max(counts):
        log.warning("%s: imbalanced classes in the training rows: %s. Consider class_weights='balanced' "
                    "(--class-weights balanced) and a metric such as f1_macro.", where, desc)
    else:
        log.info("classes in the training rows: %s", desc)


MIN_EPOCH_STEPS = 20  # auto_bs: below this many steps an epoch, a small table's batches are halved to 32 rows


def auto_bs(n_train: int) -> int:
    """64 rows a batch (fastai's default) up to 16,000 training rows, and 32 where that would leave an epoch fewer
    than MIN_EPOCH_STEPS steps (under 1,280 rows); above 16,000, the power of two nearest n/250, at most 1,024, so
    an epoch stays a few hundred steps.
    Why 32 on small tables: early stopping judges once an epoch, and 10 steps of 64 rows (a 700-row table) move
    the model a long way between two judgements; on the issue-19 suite it won oj, titanic and boston and lost
    college (benchmarks/README.md). Why n/250 on large ones: on 240,000 generated rows bs 64 took 39 s an epoch,
    per-step overhead dominating; bs 1,024 takes a few seconds at the same accuracy."""
    if n_train <= 16_000:
        return 64 if n_train >= 64 * MIN_EPOCH_STEPS else 32
    return int(min(1024, 2 ** round(math.log2(n_train / 250))))


def auto_epochs(dls: TabularDataLoaders, steps: int = 1000, min_epochs: int = 5, max_epochs: int = 100) -> int:
    """Epochs for a table: enough for about `steps` optimizer steps, between `min_epochs` and `max_epochs`; early
    stopping (tabular_learner's `patience`) ends most runs well before. A budget in steps, not epochs, holds across
    sizes: on the issue-19 suite 300 steps left Bikeshare (8,645 rows) at 1.09x gradient boosting's RMSE against 1.02x
    with 1,000, and the small tables stop early either way (benchmarks/README.md)."""
    return int(min(max_epochs, max(min_epochs, math.ceil(steps / max(len(dls.train), 1)))))


def tabular_learner(
    data: str | Path | pd.DataFrame,
    y: str,
    *,
    kind: KindName | None = None,
    cat_names: Sequence[str] | None = None,
    cont_names: Sequence[str] | None = None,
    drop: Sequence[str] = (),
    date_parts: bool = False,
    splitter: Splitter | str = "auto",
    valid_pct: float = 0.2,
    layers: Sequence[int] = (128, 64),
    dropout: float = 0.1,
    embed_dropout: float = 0.0,
    y_range: tuple[float, float] | str | None = None,
    scaling: str = "auto",
    num_embed: int = 8,
    n_frequencies: int = 16,
    frequency_scale: float = 0.1,
    embed_value: bool = True,
    ensemble: int = 6,
    patience: int | None = 2,
    bs: int | str = "auto",
    metrics: Sequence[str] | None = None,
    monitor: str | None = None,
    opt: str = "adamw",
    wd: float = 0.01,
    class_weights: Sequence[float] | str | None = None,
    label_smoothing: float = 0.0,
    grad_clip: float | None = None,
    precision: Precision = "fp32",
    device: str | torch.device | None = "auto",
    seed: int = 42,
    path: str | Path | None = None,
    cbs: Sequence[Callback] = (),
    progress: bool | None = None,
    recipe: dict | None = None,
    distributed: bool | None = None,
    sync_bn: bool = False,
) -> Learner:
    """A table -> roles -> split -> pre-processing -> embeddings + MLP -> a Learner ready to `fit_one_cycle`.

    The defaults were chosen on a suite of ten public tables and checked on titanic and penguins
    (benchmarks/tabular.py, issue 19): continuous columns standardized, heavy-tailed ones mapped to the normal
    quantile of their training rank (scaling="auto"; "standard", "quantile", "robust"), each embedded periodically
    beside its value (num_embed, n_frequencies, frequency_scale, embed_value; num_embed=0 feeds the values alone),
    a batched ensemble of `ensemble` MLPs sharing their weights (TabM-mini; 1 = one MLP), and early stopping after
    `patience` epochs without a better validation loss, the best epoch's weights restored (None = train every epoch).

    y_range: regression only; (lo, hi) in the target's units, or 'auto' (the training range widened by 5% each
    side): the output passes through a sigmoid scaled to it (fastai's y_range). Targets are standardized with
    the training mean and std in any case. class_weights: a list, or 'balanced' (inverse class frequency; the
    Learner computes it from the training rows).
    """
    from quicklearn.train.learner import resolve_device

    torch.manual_seed(seed)
    dev = resolve_device(device_for_rank(device))  # under torchrun: this rank's GPU
    dls = tabular_dataloaders(data, y, kind=kind, cat_names=cat_names, cont_names=cont_names, drop=drop,
                              date_parts=date_parts, splitter=splitter, valid_pct=valid_pct, seed=seed, bs=bs,
                              scaling=scaling)
    if progress is not False:  # what a user must check first: which columns the model will see
        console().print(f"column roles (change with cat_names/cont_names/drop, --cat/--cont/--drop):\n{dls.roles.describe()}",
                        highlight=False, markup=False)
    std_range = None
    if y_range is not None:
        if dls.target_kind.classifier:
            raise ConfigError("y_range is for regression targets only.")
        if y_range == "auto":
            lo, hi = float(dls.train.targets.min()), float(dls.train.targets.max())
            span = hi - lo or 1.0
            y_range = (lo - 0.05 * span, hi + 0.05 * span)
        lo, hi = (float(v) for v in y_range)  # type: ignore[union-attr]
        mean, std = dls.target_stats  # type: ignore[misc]
        std_range = ((lo - mean) / std, (hi - mean) / std)  # the model predicts standardized targets
    torch.manual_seed(seed)
    proc = dls.processor
    model = TabularModel(proc.cardinalities, len(proc.cont_names), dls.n_out, layers=layers, dropout=dropout,
                         embed_dropout=embed_dropout, y_range=std_range, num_embed=num_embed, n_frequencies=n_frequencies,
                         frequency_scale=frequency_scale, ensemble=ensemble, kind=dls.kind,
                         embed_value=embed_value)
    config = {"task": "tabular", "model": model.config, "recipe": recipe}
    if patience:  # stop when the validation loss has not improved for `patience` epochs; keep the best epoch's weights
        cbs = [*cbs, EarlyStopping("valid_loss", patience=patience), SaveBest("valid_loss")]
    return Learner(
        dls, model, metrics=metrics, monitor=monitor, opt=opt, wd=wd, device=dev, precision=precision,
        channels_last=False, grad_clip=grad_clip, label_smoothing=label_smoothing, class_weights=class_weights,
        path=path, cbs=cbs, seed=seed, progress=progress, config=config, distributed=distributed, sync_bn=sync_bn,
    )
