"""Tables: quicklearn vs fastai 2.8 vs scikit-learn's HistGradientBoosting vs LightGBM, each at its defaults, side
by side on the same splits of a suite of real tables nobody tuned on (issue 19; issue 7 had titanic and penguins).

The suite (targets and dropped columns in benchmarks/README.md): ten tables of the ISLP book, shipped as CSVs by the
PyPI package `islp` (installed in benchmarks/.venv by make_env.sh, never in the core), plus titanic and penguins from
../shared/data. Rows without a target are dropped first.

Protocol, for each of 5 seeds: one test split (20%, stratified by class for classification) that no tool sees
while training; of the other 80%, one validation split (20% of it, stratified), the same for every tool. The
networks train on the training part and watch the validation part (quicklearn stops early on it and keeps its
best epoch; fastai only reports it); the boosting models fit on the whole 80% as their defaults do (their own
early stopping holds out 10% of it above 10,000 rows). Every tool sees the same features: the column roles
quicklearn infers (categorical, continuous, and `<col>_na` for an identifier-like column it drops but whose
emptiness it keeps). Scores are on the test split: accuracy and log loss, or RMSE.

- quicklearn: ql.tabular_learner(train, y, splitter=IndexSplitter(valid)) + fine_tune with the tabular recipe's
  defaults: what `quicklearn train --data X.csv --target Y` runs
- fastai: TabularDataLoaders.from_df(same split, same roles, procs [Categorify, FillMissing, Normalize], bs=64),
  tabular_learner(dls), fit_one_cycle(5) at its default lr; no y_range for regression
- hgb: HistGradientBoostingClassifier/Regressor(categorical_features="from_dtype"), categoricals as pandas categories
- lgbm: LGBMClassifier/LGBMRegressor(verbose=-1), categoricals as pandas categories

Prints per task mean +- std over the seeds and the mean wall time (data prep + training + predicting the test rows),
then one summary line per tool: for classification the mean accuracy gap to the best boosting model of each task
(tables above 5,000 rows and smaller ones apart; on small ones also how many are within one standard error), for
regression the mean RMSE ratio to it, and the median wall time and its ratio to fastai's and to HGB's.

`--ablation` runs quicklearn alone under the configurations in ABLATION (each one change away from the defaults)
and prints the same summary for each: how much each part of the defaults moves it.

Then a scale run: a generated table of 300,000 rows x 30 mixed columns, quicklearn's defaults and fastai's
fit_one_cycle(5), each in a fresh process: pre-processing and training seconds, test accuracy, peak RSS.

    benchmarks/.venv/bin/python benchmarks/tabular.py [--seeds 0 1 2 3 4] [--tasks oj wage] [--tools quicklearn hgb]
        [--ablation] [--skip-scale | --only-scale]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
LARGE = 5_000  # rows: the suite's "large" tables


def islp(name: str) -> Path:
    import ISLP  # noqa: F401  (the package ships the book's tables as CSVs)

    return Path(ISLP.__file__).parent / "data" / f"{name}.csv"


@dataclass
class Table:
    name: str
    csv: Callable[[], Path]
    y: str
    kind: str  # "single" or "regression"
    drop: tuple[str, ...] = ()
    note: str = ""


SUITE = [
    Table("default", lambda: islp("Default"), "default", "single", note="credit-card default, 3% positives"),
    Table("caravan", lambda: islp("Caravan"), "Purchase", "single", note="insurance purchase, 6% positives, 85 columns"),
    Table("oj", lambda: islp("OJ"), "Purchase", "single", note="Citrus Hill or Minute Maid"),
    Table("weekly", lambda: islp("Weekly"), "Direction", "single", ("Today",), "market up/down; Today is the answer"),
    Table("bikeshare", lambda: islp("Bikeshare"), "bikers", "regression", ("casual", "registered"),
          "hourly rentals; casual + registered = bikers"),
    Table("wage", lambda: islp("Wage"), "wage", "regression", ("logwage",), "logwage is log(wage)"),
    Table("boston", lambda: islp("Boston"), "medv", "regression", note="median house value"),
    Table("carseats", lambda: islp("Carseats"), "Sales", "regression", note="child car seat sales"),
    Table("auto", lambda: islp("Auto"), "mpg", "regression", ("name",), "fuel economy; name is an identifier"),
    Table("college", lambda: islp("College"), "Apps", "regression", note="applications received, heavy-tailed"),
    Table("titanic", lambda: SHARED / "titanic" / "train.csv", "Survived", "single"),
    Table("penguins", lambda: SHARED / "palmer-penguins" / "penguins.csv", "species", "single"),
    Table("penguins-mass", lambda: SHARED / "palmer-penguins" / "penguins.csv", "body_mass_g", "regression"),
]
BOOSTERS = ("hgb", "lgbm")

# each one change away from the defaults (tabular_learner, fine_tune or auto_epochs keywords); the last undoes all
ABLATION: dict[str, dict[str, Any]] = {
    "defaults": {},
    "scaling standard": {"scaling": "standard"},
    "scaling quantile": {"scaling": "quantile"},
    "scaling robust": {"scaling": "robust"},
    "no numerical embeddings": {"num_embed": 0},
    "embeddings without the value": {"embed_value": False},
    "one MLP (ensemble 1)": {"ensemble": 1},
    "ensemble 8, num_embed 16": {"ensemble": 8, "num_embed": 16},
    "no early stopping": {"patience": None},
    "patience 3": {"patience": 3},
    "warm-up 25% (pct_start 0.25)": {"pct_start": 0.25},
    "layers 200, 100": {"layers": (200, 100)},
    "before issue 19": {"scaling": "standard", "num_embed": 0, "ensemble": 1, "patience": None, "base_lr": 5e-2,
                        "steps": 50, "min_epochs": 5, "max_epochs": 10**6, "pct_start": 0.25, "layers": (200, 100)},
}


# ---- data ----------------------------------------------------------------------------------------------------
def load(table: Table) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The table with quicklearn's inferred roles as plain columns every tool can take (adds <col>_na)."""
    from quicklearn.tasks.tabular.data import infer_roles

    raw = pd.read_csv(table.csv())
    raw = raw[raw[table.y].notna()].drop(columns=list(table.drop)).reset_index(drop=True)
    if table.kind == "single":
        raw[table.y] = raw[table.y].astype(str)
    roles = infer_roles(raw, table.y)
    out = raw[[*roles.cat_names, *roles.cont_names, table.y]].copy()
    for col in roles.na_only:
        out[f"{col}_na"] = raw[col].isna()
    return out, [*roles.cat_names, *(f"{c}_na" for c in roles.na_only)], list(roles.cont_names)


def splits(frame: pd.DataFrame, table: Table, seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(fit rows, test rows, validation positions within the fit rows)."""
    from sklearn.model_selection import train_test_split

    strat = frame[table.y] if table.kind == "single" else None
    fit, test = train_test_split(np.arange(len(frame)), test_size=0.2, random_state=seed, stratify=strat)
    strat_fit = frame[table.y].iloc[fit] if table.kind == "single" else None
    _, valid = train_test_split(np.arange(len(fit)), test_size=0.2, random_state=seed, stratify=strat_fit)
    return fit, test, sorted(int(i) for i in valid)


@dataclass
class Case:
    """What every tool gets: the fit rows (with the validation positions in them), the test rows, the roles."""

    table: Table
    fit: pd.DataFrame
    test: pd.DataFrame
    valid: list[int]
    cats: list[str]
    conts: list[str]
    seed: int
    classes: list[str] = field(default_factory=list)


# ---- tools: each returns class probabilities (n_test, n_classes, columns in case.classes) or values -------------
def run_quicklearn(case: Case, **overrides: Any) -> np.ndarray:
    import torch

    import quicklearn as ql
    from quicklearn.config.schema import parse_recipe
    from quicklearn.tasks.registry import get_task
    from quicklearn.tasks.tabular.data import TabularLoader
    from quicklearn.tasks.tabular.learner import auto_epochs
    from quicklearn.tasks.tabular.recipe import learner_kwargs

    fit_keys = {"epochs", "base_lr", "pct_start", "div"}
    budget_keys = {"steps", "min_epochs", "max_epochs"}  # auto_epochs' rule
    recipe = parse_recipe({"task": "tabular"})
    kw = {k: v for k, v in learner_kwargs(recipe).items() if k not in ("path", "y", "splitter", "valid_pct")}
    kw.update({k: v for k, v in overrides.items() if k not in fit_keys | budget_keys})
    t = case.table
    learn = ql.tabular_learner(case.fit, y=t.y, **{**kw, "kind": t.kind, "cat_names": case.cats, "cont_names": case.conts,
                                                   "splitter": ql.IndexSplitter(case.valid), "seed": case.seed,
                                                   "progress": False})
    fit_kw = get_task("tabular").fit_kwargs(recipe, learn)
    fit_kw.update({k: v for k, v in overrides.items() if k in fit_keys})
    if budget_keys & set(overrides):
        fit_kw["epochs"] = auto_epochs(learn.dls, **{k: v for k, v in overrides.items() if k in budget_keys})
    learn.fine_tune(**fit_kw)
    x = learn.dls.processor.transform(case.test, "test")
    preds, _ = learn.get_preds(TabularLoader(x, torch.zeros(len(x)), bs=4096, shuffle=False, device=learn.device))
    if t.kind == "regression":
        return preds.numpy()
    probs = preds.softmax(-1).numpy()
    order = [list(learn.dls.vocab.classes).index(c) for c in case.classes]
    return probs[:, order]


def run_fastai(case: Case) -> np.ndarray:
    from fastai.tabular.all import Categorify, FillMissing, Normalize, TabularDataLoaders, set_seed, tabular_learner

    set_seed(case.seed)
    t = case.table
    dls = TabularDataLoaders.from_df(case.fit.reset_index(drop=True), y_names=t.y, cat_names=list(case.cats),
                                     cont_names=list(case.conts), procs=[Categorify, FillMissing, Normalize],
                                     valid_idx=case.valid, bs=64)
    learn = tabular_learner(dls)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(5)
        preds, _ = learn.get_preds(dl=learn.dls.test_dl(case.test))
    if t.kind == "regression":
        return preds.numpy().ravel()
    vocab = list(learn.dls.vocab)
    return preds.numpy()[:, [vocab.index(c) for c in case.classes]]


def _gbm_frame(case: Case, frame: pd.DataFrame) -> pd.DataFrame:
    x = frame[case.cats + case.conts].copy()
    for c in case.cats:
        levels = sorted(case.fit[c].dropna().astype(str).unique())
        x[c] = pd.Categorical(x[c].astype(str).where(frame[c].notna()), categories=levels)
    return x


def _boost(case: Case, classifier: Any, regressor: Any) -> np.ndarray:
    t = case.table
    model = regressor if t.kind == "regression" else classifier
    model.fit(_gbm_frame(case, case.fit), case.fit[t.y])
    x = _gbm_frame(case, case.test)
    if t.kind == "regression":
        return model.predict(x)
    probs = model.predict_proba(x)
    classes = [str(c) for c in model.classes_]
    return probs[:, [classes.index(c) for c in case.classes]]


def run_hgb(case: Case) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    kw = {"categorical_features": "from_dtype", "random_state": case.seed}
    return _boost(case, HistGradientBoostingClassifier(**kw), HistGradientBoostingRegressor(**kw))


def run_lgbm(case: Case) -> np.ndarray:
    from lightgbm import LGBMClassifier, LGBMRegressor

    kw = {"verbose": -1, "random_state": case.seed}
    return _boost(case, LGBMClassifier(**kw), LGBMRegressor(**kw))


TOOLS: dict[str, Callable[..., np.ndarray]] = {"quicklearn": run_quicklearn, "fastai": run_fastai, "hgb": run_hgb,
                                               "lgbm": run_lgbm}


# ---- scoring and the table -------------------------------------------------------------------------------------
def scores(case: Case, out: np.ndarray) -> dict[str, float]:
    true = case.test[case.table.y]
    if case.table.kind == "regression":
        return {"rmse": float(np.sqrt(np.mean((out.astype(float) - true.to_numpy(dtype=float)) ** 2)))}
    idx = true.map({c: i for i, c in enumerate(case.classes)}).to_numpy()
    p = np.clip(out.astype(float), 1e-15, 1)
    p = p / p.sum(1, keepdims=True)
    return {"accuracy": float((out.argmax(1) == idx).mean()), "logloss": float(-np.log(p[np.arange(len(idx)), idx]).mean())}


@dataclass
class Result:
    table: Table
    rows: int
    metric: str  # accuracy or rmse
    values: dict[str, list[float]] = field(default_factory=dict)  # tool -> per seed (the main metric)
    logloss: dict[str, list[float]] = field(default_factory=dict)
    walls: dict[str, list[float]] = field(default_factory=dict)

    def mean(self, tool: str) -> float:
        return statistics.mean(self.values[tool])

    def se(self, tool: str) -> float:
        v = self.values[tool]
        return statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else 0.0

    def best_booster(self) -> str:
        boosters = [b for b in BOOSTERS if b in self.values]
        if not boosters:
            return ""
        pick = max if self.metric == "accuracy" else min
        return pick(boosters, key=self.mean)


def run_suite(tables: list[Table], tools: dict[str, Callable[..., np.ndarray]], seeds: list[int],
              print_rows: bool = True) -> list[Result]:
    results = []
    if print_rows:
        print(f"{'task':<14}{'rows':>6} {'tool':<12}{'metric':>9}{'mean':>9}{'std':>8}{'logloss':>9}{'wall s':>8}   per seed",
              flush=True)
    for table in tables:
        frame, cats, conts = load(table)
        res = Result(table, len(frame), "accuracy" if table.kind == "single" else "rmse")
        for seed in seeds:
            fit, test, valid = splits(frame, table, seed)
            case = Case(table, frame.iloc[fit].reset_index(drop=True), frame.iloc[test].reset_index(drop=True), valid,
                        list(cats), list(conts), seed, sorted(frame[table.y].unique()) if table.kind == "single" else [])
            for tool, fn in tools.items():  # alternating, so the machine's noise hits every tool alike
                t0 = time.perf_counter()
                s = scores(case, fn(case))
                res.walls.setdefault(tool, []).append(time.perf_counter() - t0)
                res.values.setdefault(tool, []).append(s[res.metric])
                if "logloss" in s:
                    res.logloss.setdefault(tool, []).append(s["logloss"])
        results.append(res)
        if print_rows:
            for tool in tools:
                v = res.values[tool]
                ll = f"{statistics.mean(res.logloss[tool]):>9.4f}" if tool in res.logloss else f"{'':>9}"
                std = statistics.stdev(v) if len(v) > 1 else 0.0
                print(f"{table.name:<14}{res.rows:>6} {tool:<12}{res.metric:>9}{statistics.mean(v):>9.4f}{std:>8.4f}{ll}"
                      f"{statistics.mean(res.walls[tool]):>8.2f}   " + " ".join(f"{x:.4f}" for x in v), flush=True)
    return results


def summary_line(results: list[Result], tool: str) -> dict[str, Any]:
    """The tool's figures against each task's best boosting model (acc gaps in points, RMSE ratios)."""
    large, small, within, n_small, ratios = [], [], 0, 0, []
    for r in results:
        best = r.best_booster()
        if not best or tool not in r.values:
            continue
        if r.metric == "accuracy":
            gap = 100 * (r.mean(best) - r.mean(tool))
            if r.rows > LARGE:
                large.append(gap)
            else:
                small.append(gap)
                n_small += 1
                within += r.mean(tool) >= r.mean(best) - max(r.se(tool), r.se(best))
        else:
            ratios.append(r.mean(tool) / r.mean(best))
    walls = [statistics.mean(r.walls[tool]) for r in results if tool in r.walls]
    return {"gap_large": statistics.mean(large) if large else float("nan"),
            "gap_small": statistics.mean(small) if small else float("nan"), "within": within, "n_small": n_small,
            "rmse_ratio": statistics.mean(ratios) if ratios else float("nan"),
            "median_wall": statistics.median(walls) if walls else float("nan")}


def print_summary(results: list[Result], tools: list[str]) -> None:
    print("\nsummary (against each task's best boosting model; accuracy gap in points, + = below it):")
    s = {t: summary_line(results, t) for t in tools}
    for tool in tools:
        v = s[tool]
        rel = "".join(f", x{v['median_wall'] / s[o]['median_wall']:.2f} {o}" for o in ("fastai", "hgb") if o in s and o != tool)
        print(f"  {tool:<11} acc gap: {v['gap_large']:+.2f} pts on tables > {LARGE:,} rows, {v['gap_small']:+.2f} pts on "
              f"smaller ({v['within']}/{v['n_small']} within one std error);  RMSE ratio {v['rmse_ratio']:.3f};  "
              f"median wall {v['median_wall']:.2f} s{rel}")
    if "quicklearn" in s and "fastai" in tools:
        print("\ntargets:")
        q = s["quicklearn"]
        print(f"  acc gap on tables > {LARGE:,} rows <= 0.5 pts: {q['gap_large']:+.2f}  {'PASS' if q['gap_large'] <= 0.5 else 'FAIL'}")
        print(f"  smaller tables within one std error: {q['within']}/{q['n_small']}  {'PASS' if q['within'] == q['n_small'] else 'FAIL'}")
        print(f"  RMSE ratio <= 1.03: {q['rmse_ratio']:.3f}  {'PASS' if q['rmse_ratio'] <= 1.03 else 'FAIL'}")
        lost = [r.table.name for r in results if not _beats(r, "quicklearn", "fastai")]
        print(f"  quicklearn beats fastai on every task: {len(results) - len(lost)}/{len(results)}"
              f"{' (not on ' + ', '.join(lost) + ')' if lost else ''}  {'PASS' if not lost else 'FAIL'}")
        wq, wf = q["median_wall"], s["fastai"]["median_wall"]
        print(f"  median wall <= fastai's: {wq:.2f} vs {wf:.2f} s (x{wq / wf:.2f})  {'PASS' if wq <= wf else 'FAIL'}")


def _beats(r: Result, a: str, b: str) -> bool:
    return r.mean(a) > r.mean(b) if r.metric == "accuracy" else r.mean(a) < r.mean(b)


def ablation(tables: list[Table], seeds: list[int]) -> None:
    print("ablation: quicklearn under each configuration, the boosting models once (same splits)")
    base = run_suite(tables, {b: TOOLS[b] for b in BOOSTERS}, seeds, print_rows=False)
    print(f"{'configuration':<30}{'gap >5k':>9}{'gap small':>10}{'within':>8}{'RMSE ratio':>11}{'median s':>10}   per task")
    for name, overrides in ABLATION.items():
        res = run_suite(tables, {"quicklearn": lambda c, o=overrides: run_quicklearn(c, **o)}, seeds, print_rows=False)
        for r, b in zip(res, base):
            r.values.update(b.values)
        v = summary_line(res, "quicklearn")
        per = " ".join(f"{r.table.name}={r.mean('quicklearn'):.4g}" for r in res)
        print(f"{name:<30}{v['gap_large']:>+9.2f}{v['gap_small']:>+10.2f}{v['within']:>5}/{v['n_small']:<2}"
              f"{v['rmse_ratio']:>11.3f}{v['median_wall']:>10.2f}   {per}", flush=True)
    print("boosting: " + " ".join(f"{r.table.name}={r.mean(r.best_booster()):.4g}({r.best_booster()})" for r in base))


# ---- scale -----------------------------------------------------------------------------------------------------
def scale_frame(rows: int) -> pd.DataFrame:
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
    return frame


def scale_worker(tool: str, rows: int) -> None:
    """One tool on the generated table, in this (fresh) process; prints one JSON line."""
    frame = scale_frame(rows)
    table = Table("scale", lambda: Path("-"), "target", "single")
    fit, test = np.arange(0, int(rows * 0.8)), np.arange(int(rows * 0.8), rows)
    cats = [c for c in frame.columns if c.startswith(("cat", "int"))]
    conts = [c for c in frame.columns if c.startswith("num")]
    valid = list(range(int(len(fit) * 0.8), len(fit)))
    case = Case(table, frame.iloc[fit].reset_index(drop=True), frame.iloc[test].reset_index(drop=True), valid,
                cats, conts, 0, ["no", "yes"])
    t0 = time.perf_counter()
    out = TOOLS[tool](case)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tool": tool, "wall_s": wall, "accuracy": scores(case, out)["accuracy"], "peak_rss_mb": peak}))


def scale(rows: int = 300_000, threads: int = 1) -> None:
    print(f"\nscale: {rows:,} generated rows x 30 columns (15 continuous with 5% missing, 15 categorical up to 5,000 "
          f"levels); 64% train, 16% valid, 20% test; each tool in a fresh process")
    got = {}
    for tool in ("quicklearn", "fastai"):
        proc = subprocess.run([sys.executable, __file__, "--scale-worker", tool, "--rows", str(rows), "--threads", str(threads)],
                              capture_output=True, text=True, check=False)
        line = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode or not line.startswith("{"):
            print(f"  {tool}: failed\n{proc.stderr[-2000:]}")
            continue
        got[tool] = json.loads(line)
        g = got[tool]
        print(f"  {tool:<11} wall {g['wall_s']:7.1f} s (pre-processing + training + test predictions)  test accuracy "
              f"{g['accuracy']:.4f}  peak RSS {g['peak_rss_mb']:.0f} MB", flush=True)
    if len(got) == 2:
        q, f = got["quicklearn"], got["fastai"]
        print(f"  quicklearn / fastai fit_one_cycle(5): wall x{q['wall_s'] / f['wall_s']:.2f} "
              f"{'PASS' if q['wall_s'] <= f['wall_s'] else 'FAIL'}, peak RSS x{q['peak_rss_mb'] / f['peak_rss_mb']:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--tasks", nargs="+", default=[t.name for t in SUITE], choices=[t.name for t in SUITE])
    p.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    p.add_argument("--ablation", action="store_true", help="quicklearn under each ABLATION configuration")
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--only-scale", action="store_true")
    p.add_argument("--scale-worker", choices=list(TOOLS), help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, default=300_000)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads for every tool (default 1: these "
                   "models are small, and on a shared 2-core machine 2 threads ran 30x slower than 1)")
    args = p.parse_args()
    logging.getLogger("quicklearn").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(args.threads)
    if args.scale_worker:
        return scale_worker(args.scale_worker, args.rows)
    tables = [t for t in SUITE if t.name in args.tasks]
    if args.ablation:
        return ablation(tables, args.seeds)
    if not args.only_scale:
        tools = {t: TOOLS[t] for t in args.tools}
        warm = Case(tables[0], *_warm_case(tables[0]))  # imports and one-time set-up are not per-model costs
        for fn in tools.values():
            fn(warm)
        results = run_suite(tables, tools, args.seeds)
        print_summary(results, list(tools))
    if not args.skip_scale:
        scale(args.rows, args.threads)


def _warm_case(table: Table) -> tuple:
    frame, cats, conts = load(table)
    fit, test, valid = splits(frame, table, 99)
    return (frame.iloc[fit].reset_index(drop=True), frame.iloc[test].reset_index(drop=True), valid, cats, conts, 99,
            sorted(frame[table.y].unique()) if table.kind == "single" else [])


if __name__ == "__main__":
    main()
