"""Tabular: quicklearn vs fastai 2.8 vs scikit-learn's HistGradientBoosting, side by side on the same splits (issue 7).

Data sets: ../shared/data/titanic/train.csv (Survived), ../shared/data/palmer-penguins/penguins.csv (species, and a
regression on body_mass_g). Rows without a target are dropped first. For each of 5 seeds, one validation split
(20%, stratified by class for classification; sklearn's train_test_split) is shared by all three tools, and all
three see the same features: the column roles quicklearn infers (categorical, continuous, and `<col>_na` for an
identifier-like column it drops but whose emptiness it keeps).

- quicklearn: ql.tabular_learner(frame, y, splitter=IndexSplitter(valid)) + fine_tune with the tabular recipe's
  defaults (what `quicklearn train --data X.csv --target Y` runs)
- fastai: TabularDataLoaders.from_df(same split, same roles, procs [Categorify, FillMissing, Normalize], bs=64),
  tabular_learner(dls), fit_one_cycle(5) at its default lr; no y_range for regression
- gbm: HistGradientBoostingClassifier/Regressor(categorical_features="from_dtype"), categoricals as pandas categories

Prints mean and spread (std) of accuracy (RMSE for regression) and of wall time (data prep + training + scoring).
Then a scale run: a generated table of 300,000 rows x 30 mixed columns through quicklearn: seconds for the
pre-processing, seconds per epoch, and peak memory.

    benchmarks/.venv/bin/python benchmarks/tabular.py [--seeds 0 1 2 3 4] [--skip-scale]
"""

from __future__ import annotations

import argparse
import logging
import warnings
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
TASKS = [  # (name, csv, target, kind)
    ("titanic", SHARED / "titanic" / "train.csv", "Survived", "single"),
    ("penguins", SHARED / "palmer-penguins" / "penguins.csv", "species", "single"),
    ("penguins-mass", SHARED / "palmer-penguins" / "penguins.csv", "body_mass_g", "regression"),
]


def features(frame: pd.DataFrame, y: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """quicklearn's inferred roles, as plain columns every tool can take (adds <col>_na for na-only columns)."""
    from quicklearn.tasks.tabular.data import infer_roles

    roles = infer_roles(frame, y)
    out = frame[[*roles.cat_names, *roles.cont_names, y]].copy()
    for col in roles.na_only:
        out[f"{col}_na"] = frame[col].isna()
    return out, [*roles.cat_names, *(f"{c}_na" for c in roles.na_only)], list(roles.cont_names)


def split(frame: pd.DataFrame, y: str, kind: str, seed: int) -> list[int]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(frame))
    _, valid = train_test_split(idx, test_size=0.2, random_state=seed, stratify=frame[y] if kind == "single" else None)
    return sorted(int(i) for i in valid)


def score(kind: str, pred: np.ndarray, true: np.ndarray) -> float:
    if kind == "single":
        return float((pred == true).mean())
    return float(np.sqrt(np.mean((pred.astype(float) - true.astype(float)) ** 2)))


def run_quicklearn(frame: pd.DataFrame, y: str, kind: str, cats: list[str], conts: list[str], valid: list[int], seed: int) -> float:
    import quicklearn as ql
    from quicklearn.config.schema import parse_recipe
    from quicklearn.tasks.registry import get_task

    learn = ql.tabular_learner(frame, y=y, kind=kind, cat_names=cats, cont_names=conts, splitter=ql.IndexSplitter(valid),
                               seed=seed, progress=False)
    learn.fine_tune(**get_task("tabular").fit_kwargs(parse_recipe({"task": "tabular"}), learn))
    m = learn.validate()
    return m["accuracy"] if kind == "single" else m["rmse"]


def run_fastai(frame: pd.DataFrame, y: str, kind: str, cats: list[str], conts: list[str], valid: list[int], seed: int) -> float:
    from fastai.tabular.all import (
        Categorify, FillMissing, Normalize, TabularDataLoaders, accuracy, rmse, set_seed, tabular_learner,
    )

    set_seed(seed)
    df = frame.copy()
    if kind == "single":
        df[y] = df[y].astype(str)
    dls = TabularDataLoaders.from_df(df, y_names=y, cat_names=cats, cont_names=conts,
                                     procs=[Categorify, FillMissing, Normalize], valid_idx=valid, bs=64)
    learn = tabular_learner(dls, metrics=accuracy if kind == "single" else rmse)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(5)
        return float(learn.validate()[1])


def run_gbm(frame: pd.DataFrame, y: str, kind: str, cats: list[str], conts: list[str], valid: list[int], seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x = frame[cats + conts].copy()
    for c in cats:
        x[c] = x[c].astype(str).where(frame[c].notna()).astype("category")
    train = np.setdiff1d(np.arange(len(frame)), valid)
    cls = HistGradientBoostingClassifier if kind == "single" else HistGradientBoostingRegressor
    model = cls(categorical_features="from_dtype", random_state=seed)
    target = frame[y].astype(str) if kind == "single" else frame[y]
    model.fit(x.iloc[train], target.iloc[train])
    return score(kind, model.predict(x.iloc[valid]), target.iloc[valid].to_numpy())


TOOLS: dict[str, Callable] = {"quicklearn": run_quicklearn, "fastai": run_fastai, "gbm": run_gbm}


def compare(seeds: list[int]) -> None:
    import torch

    torch.set_num_threads(2)
    print(f"{'task':<14}{'tool':<11}{'metric':>8}{'mean':>9}{'std':>8}{'wall mean':>11}{'std':>7}   per seed")
    summary: dict[tuple[str, str], float] = {}
    walls: dict[tuple[str, str], float] = {}
    for name, csv, y, kind in TASKS:
        raw = pd.read_csv(csv)
        raw = raw[raw[y].notna()].reset_index(drop=True)
        frame, cats, conts = features(raw, y)
        results: dict[str, list[float]] = {t: [] for t in TOOLS}
        times: dict[str, list[float]] = {t: [] for t in TOOLS}
        if name == TASKS[0][0]:  # one untimed run each first: imports and one-time set-up are not per-model costs
            for fn in TOOLS.values():
                fn(frame, y, kind, list(cats), list(conts), split(frame, y, kind, 99), 99)
        for seed in seeds:
            valid = split(frame, y, kind, seed)
            for tool, fn in TOOLS.items():  # alternating, so noise hits all alike
                t0 = time.perf_counter()
                results[tool].append(fn(frame, y, kind, list(cats), list(conts), valid, seed))  # fastai extends the lists
                times[tool].append(time.perf_counter() - t0)
        metric = "accuracy" if kind == "single" else "rmse"
        for tool in TOOLS:
            r, w = results[tool], times[tool]
            summary[(name, tool)], walls[(name, tool)] = statistics.mean(r), statistics.mean(w)
            print(f"{name:<14}{tool:<11}{metric:>8}{statistics.mean(r):>9.4f}{statistics.stdev(r):>8.4f}"
                  f"{statistics.mean(w):>10.2f}s{statistics.stdev(w):>7.2f}   " + " ".join(f"{v:.4f}" for v in r), flush=True)
        print(f"{'':<14}roles: categorical {cats}, continuous {conts}")
    print("\ntargets:")
    for name, _, _, kind in TASKS:
        q, f, g = (summary[(name, t)] for t in ("quicklearn", "fastai", "gbm"))
        if kind == "single":
            print(f"  {name:<14} accuracy quicklearn >= fastai: {q:.4f} vs {f:.4f} {'PASS' if q >= f else 'FAIL'};  "
                  f"within 1 point of gbm: {q - g:+.4f} {'PASS' if q >= g - 0.01 else 'FAIL'}")
        else:
            print(f"  {name:<14} RMSE quicklearn within 5% of gbm: {q:.1f} vs {g:.1f} ({q / g - 1:+.1%}) "
                  f"{'PASS' if q <= 1.05 * g else 'FAIL'};  fastai (no y_range) {f:.1f} ({f / g - 1:+.1%})")
        wq, wf = walls[(name, "quicklearn")], walls[(name, "fastai")]
        print(f"  {'':<14} wall quicklearn < fastai: {wq:.2f} vs {wf:.2f} s {'PASS' if wq < wf else 'FAIL'}")


def scale(rows: int = 300_000) -> None:
    import torch

    import quicklearn as ql

    rng = np.random.default_rng(0)
    data: dict[str, np.ndarray] = {}
    for i in range(15):
        col = rng.normal(size=rows) * (i + 1)
        col[rng.random(rows) < 0.05] = np.nan
        data[f"num{i}"] = col
    for i, card in enumerate([3, 5, 10, 20, 50, 100, 300, 1000, 5000, 12]):
        data[f"cat{i}"] = np.array([f"level{j}" for j in range(card)], dtype=object)[rng.integers(0, card, rows)]
    for i in range(5):
        data[f"int{i}"] = rng.integers(0, 8, rows)
    frame = pd.DataFrame(data)
    logit = frame["num0"].fillna(0) * 0.8 + (frame["cat0"] == "level1") * 1.5 - frame["int0"] * 0.2
    frame["target"] = np.where(logit + rng.normal(size=rows) > 0, "yes", "no")
    t0 = time.perf_counter()
    learn = ql.tabular_learner(frame, y="target", progress=False, seed=0)
    prep = time.perf_counter() - t0
    learn.fit_one_cycle(2, 1e-2)
    epochs = [h["time_s"] for h in learn.history]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nscale: {rows:,} rows x {frame.shape[1] - 1} columns ({len(learn.dls.roles.cat_names)} categorical, "
          f"{len(learn.dls.roles.cont_names)} continuous), bs {learn.dls.train.bs} (auto), {torch.get_num_threads()} threads")
    print(f"  roles + split + pre-processing: {prep:.1f} s;  seconds per epoch (train {learn.dls.train.n:,} + valid "
          f"{learn.dls.valid.n:,} rows): {', '.join(f'{e:.1f}' for e in epochs)};  valid accuracy "
          f"{learn.history[-1]['accuracy']:.4f};  peak RSS {peak:.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--only-scale", action="store_true")
    args = p.parse_args()
    logging.getLogger("quicklearn").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    if not args.only_scale:
        compare(args.seeds)
    if not args.skip_scale:
        scale()


if __name__ == "__main__":
    main()
