"""Collaborative filtering on movielens-small: quicklearn vs fastai 2.8 vs biases alone vs Surprise's SVD (issue 20).

Data: ../shared/data/movielens-small/ratings.csv (100,836 ratings by 610 users of 9,724 movies, half stars). For each
of 5 seeds one random 20% of the ratings validates, the same rows for every tool; the tools run alternating per
seed, in one process, with the same torch thread count.

- quicklearn: the collab recipe's defaults (what `quicklearn train --data ratings.csv` runs): collab_learner with
  the shared split (IndexSplitter), then fine_tune with the recipe's fit section (auto epochs: a 400-step budget)
- fastai: its documented collab settings: CollabDataLoaders.from_df's pipeline (TabularCollab, Categorify, bs 64)
  on the same split, collab_learner(n_factors=50, y_range=(0, 5.5)), fit_one_cycle(5, 5e-3, wd=0.1)
- biases: the global mean plus damped user and item biases (3 alternating passes, lambda 10 items / 15 users, as
  Surprise's BaselineOnly), no factors: what any model must beat
- svd: scikit-surprise's SVD with its defaults (100 factors, 20 epochs of SGD), if it is installed

Prints validation RMSE (mean ± std over the seeds) and wall time (data preparation + training, prediction of the
validation rows not included), per seed, and the ratios to fastai; targets: quicklearn's RMSE at least 1% below
fastai's, and its wall time no more than fastai's.

    benchmarks/.venv/bin/python benchmarks/collab.py [--seeds 0 1 2 3 4] [--threads 1] [--quick]

--threads (default 1): on the shared 2-core machine, two intra-op threads made these small-tensor steps 10-40x
slower whenever another process held a core (OpenMP waits for the descheduled thread); both tools get the same.
--quick: one seed on the ratings of the first 100 users, fastai for one epoch: checks that everything runs; its
figures mean nothing.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "movielens-small" / "ratings.csv"
USER, ITEM, RATING = "userId", "movieId", "rating"


def split(n: int, seed: int, valid_pct: float = 0.2) -> np.ndarray:
    """The validation rows of this seed, sorted: the same for every tool."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: round(n * valid_pct)])


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=float) - np.asarray(true, dtype=float)) ** 2)))


def run_quicklearn(frame: pd.DataFrame, valid: np.ndarray, seed: int, quick: bool) -> tuple[float, float]:
    import quicklearn as ql
    from quicklearn.config.schema import parse_recipe
    from quicklearn.tasks.collab.learner import collab_learner
    from quicklearn.tasks.registry import get_task

    t0 = time.perf_counter()
    learn = collab_learner(frame, splitter=ql.IndexSplitter(valid.tolist()), seed=seed, progress=False, titles="none")
    learn.fine_tune(**get_task("collab").fit_kwargs(parse_recipe({"task": "collab"}), learn))
    wall = time.perf_counter() - t0
    preds, targets = learn.get_preds()
    return rmse(preds.numpy(), targets.numpy()), wall


def run_fastai(frame: pd.DataFrame, valid: np.ndarray, seed: int, quick: bool) -> tuple[float, float]:
    from fastai.collab import TabularCollab, collab_learner
    from fastai.data.block import TransformBlock
    from fastai.tabular.core import Categorify
    from fastai.torch_core import set_seed

    set_seed(seed)
    t0 = time.perf_counter()
    train = np.setdiff1d(np.arange(len(frame)), valid)
    # CollabDataLoaders.from_df, with the shared split instead of its RandomSplitter
    to = TabularCollab(frame, [Categorify], [USER, ITEM], y_names=[RATING], y_block=TransformBlock(),
                       splits=(train.tolist(), valid.tolist()))
    dls = to.dataloaders(path=".", bs=64)
    learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1 if quick else 5, 5e-3, wd=0.1)
        wall = time.perf_counter() - t0
        preds, targets = learn.get_preds()
    return rmse(preds.flatten().numpy(), targets.flatten().numpy()), wall


def run_biases(frame: pd.DataFrame, valid: np.ndarray, seed: int, quick: bool) -> tuple[float, float]:
    t0 = time.perf_counter()
    is_valid = np.zeros(len(frame), bool)
    is_valid[valid] = True
    train, test = frame[~is_valid], frame[is_valid]
    mu = train[RATING].mean()
    bu = pd.Series(0.0, index=train[USER].unique())
    bi = pd.Series(0.0, index=train[ITEM].unique())
    for _ in range(3):
        resid = train[RATING] - mu - bu.reindex(train[USER]).to_numpy()
        g = resid.groupby(train[ITEM].to_numpy())
        bi = g.sum() / (10 + g.size())
        resid = train[RATING] - mu - bi.reindex(train[ITEM]).to_numpy()
        g = resid.groupby(train[USER].to_numpy())
        bu = g.sum() / (15 + g.size())
    wall = time.perf_counter() - t0
    pred = mu + bu.reindex(test[USER]).fillna(0).to_numpy() + bi.reindex(test[ITEM]).fillna(0).to_numpy()
    return rmse(np.clip(pred, 0.5, 5.0), test[RATING].to_numpy()), wall


def run_svd(frame: pd.DataFrame, valid: np.ndarray, seed: int, quick: bool) -> tuple[float, float]:
    from surprise import SVD, Dataset, Reader

    t0 = time.perf_counter()
    is_valid = np.zeros(len(frame), bool)
    is_valid[valid] = True
    train, test = frame[~is_valid], frame[is_valid]
    data = Dataset.load_from_df(train[[USER, ITEM, RATING]], Reader(rating_scale=(0.5, 5.0)))
    algo = SVD(random_state=seed)
    algo.fit(data.build_full_trainset())
    wall = time.perf_counter() - t0
    pred = [algo.predict(u, i).est for u, i in zip(test[USER], test[ITEM])]
    return rmse(np.array(pred), test[RATING].to_numpy()), wall


def tools() -> dict[str, Callable]:
    found: dict[str, Callable] = {"quicklearn": run_quicklearn, "fastai": run_fastai, "biases": run_biases}
    try:
        import surprise  # noqa: F401

        found["svd"] = run_svd
    except ImportError:
        print("scikit-surprise is not installed: no svd column (bash benchmarks/make_env.sh installs it)")
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    logging.getLogger("quicklearn").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(args.threads)
    frame = pd.read_csv(args.data)
    if args.quick:
        frame = frame[frame[USER] <= 100].reset_index(drop=True)
        args.seeds = args.seeds[:1]
    run = tools()
    warm = frame[frame[USER] <= 30].reset_index(drop=True)
    for fn in run.values():  # one untimed run each first: imports and one-time set-up are not per-model costs
        fn(warm, split(len(warm), 99), 99, True)
    print(f"{len(frame):,} ratings by {frame[USER].nunique()} users of {frame[ITEM].nunique():,} items; "
          f"{len(args.seeds)} seeds x a random 20% validation split shared by every tool; torch threads {args.threads}")
    results: dict[str, list[float]] = {t: [] for t in run}
    walls: dict[str, list[float]] = {t: [] for t in run}
    for seed in args.seeds:
        valid = split(len(frame), seed)
        for tool, fn in run.items():  # alternating, so the machine's noise hits every tool alike
            r, w = fn(frame, valid, seed, args.quick)
            results[tool].append(r)
            walls[tool].append(w)
            print(f"  seed {seed}  {tool:<11} rmse {r:.4f}  wall {w:6.1f} s", flush=True)
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
    print(f"\n{'tool':<12}{'rmse mean':>10}{'± std':>8}{'vs fastai':>10}{'wall s':>9}{'± std':>7}{'vs fastai':>10}"
          "   rmse per seed")
    for tool in run:
        r, w = results[tool], walls[tool]
        print(f"{tool:<12}{statistics.mean(r):>10.4f}{sd(r):>8.4f}"
              f"{statistics.mean(r) / statistics.mean(results['fastai']):>9.3f}x{statistics.mean(w):>9.1f}{sd(w):>7.1f}"
              f"{statistics.mean(w) / statistics.mean(walls['fastai']):>9.3f}x   " + " ".join(f"{v:.4f}" for v in r))
    q, f = statistics.mean(results["quicklearn"]), statistics.mean(results["fastai"])
    wq, wf = statistics.mean(walls["quicklearn"]), statistics.mean(walls["fastai"])
    print(f"\ntargets: RMSE at least 1% below fastai's: {q:.4f} vs {f:.4f} ({q / f - 1:+.1%}) "
          f"{'PASS' if q <= 0.99 * f else 'FAIL'};  wall time no more than fastai's: {wq:.1f} vs {wf:.1f} s "
          f"({wq / wf:.2f}x) {'PASS' if wq <= wf else 'FAIL'}")
    if args.quick:
        print("(--quick: one seed, 100 users, fastai 1 epoch: a smoke run, not a measurement)")


if __name__ == "__main__":
    main()
