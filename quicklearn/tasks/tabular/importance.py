"""Permutation feature importance for tables: how much the model's main metric drops when one raw input column
is shuffled across the rows (accuracy for classes, RMSE for numbers), averaged over a few shuffles.

A raw column is permuted as a whole: its `<col>_na` indicator and date parts move with it, so the table answers
"what does this column of my CSV contribute", not "what does one derived feature contribute".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
import torch

from quicklearn.core.errors import ConfigError
from quicklearn.core.progress import progress
from quicklearn.data.kinds import get_kind
from quicklearn.tasks.tabular.data import TabularLoader, TabularProcessor
from quicklearn.train.metrics import GREATER_IS_BETTER, get_metric

if TYPE_CHECKING:
    from quicklearn.tasks.tabular.predictor import TabularPredictor
    from quicklearn.train.learner import Learner

__all__ = ["permutation_importance", "learner_importance", "predictor_importance", "input_columns", "importance_label"]

# score(column or None, row permutation or None) -> the metric on the whole validation set
Scorer = Callable[[str | None, torch.Tensor | None], float]


def input_columns(processor: TabularProcessor) -> dict[str, list[int]]:
    """Each raw input column -> the positions of the model-input features derived from it (its own code or value,
    its `<col>_na` indicator, its date parts)."""
    cat, cont = processor.cat_names, processor.cont_names
    where = {name: j for j, name in enumerate(cat)} | {name: len(cat) + j for j, name in enumerate(cont)}
    out: dict[str, list[int]] = {}
    for col in processor.inputs:
        names = [col]
        if col in processor.date_names:
            names = [f"{col}_{part}" for part in ("year", "month", "dayofweek", "elapsed")]
        if col in processor.na_indicators or col in processor.na_only:
            names.append(f"{col}_na")
        out[col] = [where[n] for n in names if n in where]
    return out


def importance_label(kind: str) -> str:
    """What the importance number measures, for table headers and the chart's axis: the target kind's main metric,
    and whether shuffling makes it drop (accuracy) or rise (RMSE)."""
    name = _metric_name(kind)
    return f"{'RMSE' if name == 'rmse' else name} {'drop' if name in GREATER_IS_BETTER else 'increase'} when shuffled"


def permutation_importance(score: Scorer, columns: list[str], n_rows: int, kind: str, n_repeats: int = 3,
                           seed: int = 0) -> pd.DataFrame:
    """Importance of each column = mean (and std) over `n_repeats` shuffles of the metric's change for the worse:
    baseline accuracy - shuffled accuracy (classes), shuffled RMSE - baseline RMSE (regression). Sorted, largest first."""
    if n_repeats < 1:
        raise ConfigError(f"n_repeats={n_repeats}: shuffle each column at least once.")
    sign = -1.0 if _metric_name(kind) in GREATER_IS_BETTER else 1.0  # a change for the worse counts as importance
    base = score(None, None)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    with progress() as bar:
        task = bar.add_task("permutation importance", total=len(columns) * n_repeats, info="") if bar else None
        for col in columns:
            deltas = []
            for _ in range(n_repeats):
                perm = torch.randperm(n_rows, generator=gen)
                deltas.append(sign * (score(col, perm) - base))
                if bar:
                    bar.advance(task)
            rows.append({"column": col, "importance": float(np.mean(deltas)),
                         "std": float(np.std(deltas, ddof=1)) if len(deltas) > 1 else 0.0})
    frame = pd.DataFrame(rows, columns=["column", "importance", "std"])
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def _metric_name(kind: str) -> str:
    """The metric importance is measured with: the target kind's first default metric (accuracy, RMSE)."""
    return get_kind(kind).default_metrics[0]


def _metric(kind: str) -> Callable[[torch.Tensor, torch.Tensor], float]:
    return get_metric(_metric_name(kind))


def learner_importance(learn: "Learner", n_repeats: int = 3, seed: int = 0) -> pd.DataFrame:
    """Permutation importance on a tabular Learner's validation rows: the features derived from one raw column are
    shuffled together in the pre-processed validation tensor (the same as shuffling the raw column, since every
    step of the pre-processing works row by row)."""
    dls = learn.dls
    x, targets = dls.valid.x.cpu(), dls.valid.targets.cpu()
    positions = input_columns(dls.processor)
    metric = _metric(learn.kind)

    def score(col: str | None, perm: torch.Tensor | None) -> float:
        xs = x
        if col is not None:
            xs = x.clone()
            idx = positions[col]
            xs[:, idx] = x[perm][:, idx]
        loader = TabularLoader(xs, targets, bs=max(dls.valid.bs, 1024), device=learn.device)
        preds, ys = learn.get_preds(loader)
        return metric(preds, ys)

    return permutation_importance(score, list(positions), len(x), learn.kind, n_repeats, seed)


def predictor_importance(predictor: "TabularPredictor", frame: pd.DataFrame, targets: torch.Tensor,
                         n_repeats: int = 3, seed: int = 0) -> pd.DataFrame:
    """Permutation importance of a loaded tabular model on labelled rows: shuffle one raw column of `frame`, predict
    again."""
    metric = _metric(predictor.kind)
    frame = frame.reset_index(drop=True)

    def score(col: str | None, perm: torch.Tensor | None) -> float:
        data = frame
        if col is not None:
            data = frame.copy()
            data[col] = frame[col].to_numpy()[perm.numpy()]
        return metric(predictor.raw(data), targets)

    return permutation_importance(score, list(predictor.processor.inputs), len(frame), predictor.kind, n_repeats, seed)


