"""What `quicklearn check` looks for in a table, and the cheap part `quicklearn train` runs first.

- duplicate rows, within a split and across train/valid (leakage); the cheap pass;
- columns that predict the target almost perfectly on their own (leakage suspects), with their single-column score:
  a small gradient-boosted model of that column alone, cross-validated;
- constant and identifier-like columns, high missingness, mixed types in a column;
- target imbalance; likely label errors (a cross-validated gradient-boosted model of all columns, ranked by cleanlab).

Rows are named `row N`: the 0-based row of the CSV's data (the header is not a row), as `frame.iloc[N]` reads it.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from quicklearn.analysis.check.classes import class_findings, count_classes
from quicklearn.analysis.check.duplicates import exact_groups
from quicklearn.analysis.check.findings import (
    SHARED_KINDS,
    CheckContext,
    Checker,
    DataChecks,
    Finding,
    Kind,
    labelled_rows,
    split_names,
)
from quicklearn.analysis.check.leakage import group_findings

__all__ = ["TABULAR_KINDS", "tabular_checks", "LEAK_SCORE", "MISSING_SHARE"]

LEAK_SCORE = 0.95  # a column alone reaching this balanced accuracy (classes) or R^2 (numbers) is a leakage suspect
MISSING_SHARE = 0.5
ID_SHARE = 0.95  # distinct values on at least this share of the rows: an identifier (copied rows repeat theirs)
MIXED_SHARE = 0.05  # a text column whose values are numbers for between 5% and 95% of its rows holds mixed types

TABULAR_KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("leak_column", "columns that predict the target alone (leakage suspects)", strict=True),
    Kind("constant", "constant columns"),
    Kind("id_like", "identifier-like columns"),
    Kind("missing", "columns with high missingness"),
    Kind("mixed_types", "columns of mixed types"),
)}


def _k(name: str) -> Kind:
    return TABULAR_KINDS.get(name) or SHARED_KINDS[name]


class _TableData:
    """One recipe's table, its target, split and features, each computed once when first asked for."""

    def __init__(self, recipe: Any):
        from quicklearn.tasks.tabular.data import tabular_target

        d = recipe.data
        self.recipe = recipe
        self.frame, self.y, self.where = labelled_rows(d, "a table needs its target column")
        self.kind = tabular_target(self.frame, self.y, d.kind, self.where)
        self.names = [f"row {i}" for i in self.frame.index]

    @cached_property
    def split(self) -> tuple[list[str], Any, str | None]:
        """(each row's split, the targets, the split column or None)."""
        from quicklearn.data.labels import get_targets
        from quicklearn.data.sources import table_source
        from quicklearn.data.split import ColumnSplitter, resolve_tabular_splitter

        d = self.recipe.data
        frame = self.frame.reset_index(drop=True)
        source = table_source(frame, self.where)
        targets = get_targets(source, self.y, kind="regression" if self.kind == "regression" else "single")
        splitter = resolve_tabular_splitter(d.splitter, frame, self.kind, d.valid_pct, self.recipe.training.seed,
                                            self.where)
        train, valid = splitter(source, targets)
        splits = split_names(len(frame), train, valid)
        return splits, targets, splitter.column if isinstance(splitter, ColumnSplitter) else None

    @cached_property
    def features(self) -> list[str]:
        split_col = self.split[2]
        return [c for c in self.frame.columns if c not in (self.y, split_col)]

    # ---- the checkers ----------------------------------------------------------------------------------------
    def duplicates(self, ctx: CheckContext) -> list[Finding]:
        """Rows equal in every column but the split flag: within a split, and across train/valid (leakage)."""
        splits = self.split[0]
        keys = pd.util.hash_pandas_object(self.frame[[*self.features, self.y]], index=False).to_numpy()
        groups = exact_groups(keys.tolist())
        return group_findings(groups, self.names, splits, within="duplicate", across="leakage", what="identical rows",
                              score=lambda g: 1.0)

    def columns(self, ctx: CheckContext) -> list[Finding]:
        """Constant, identifier-like, mostly missing and mixed-type columns."""
        out: list[Finding] = []
        n = len(self.frame)
        for col in self.features:
            s = self.frame[col]
            nonnull = s.dropna()
            missing = 1 - len(nonnull) / max(n, 1)
            if missing >= MISSING_SHARE:
                out.append(Finding("missing", [col], missing, f"drop {col!r} or fill it (training keeps whether it is "
                                   "empty)", f"{missing:.0%} of rows are empty"))
            nunique = nonnull.nunique()
            if nunique == 0 or (nunique == 1 and missing == 0):  # one value and some empty: it says which are empty
                out.append(Finding("constant", [col], float(nunique), f"drop {col!r}: it says nothing",
                                   f"one value only ({nonnull.iloc[0]!r})" if nunique else "all values are missing"))
                continue
            if nunique >= ID_SHARE * len(nonnull) and len(nonnull) > 20 and _id_like(nonnull):
                out.append(Finding("id_like", [col], nunique / max(n, 1), f"drop {col!r} (--drop {col}): an identifier "
                                   "cannot generalize", f"{nunique} distinct values in {len(nonnull)} rows"))
            if pd.api.types.is_string_dtype(s) or s.dtype == object:
                as_num = pd.to_numeric(nonnull, errors="coerce")
                share = float(as_num.notna().mean())
                if MIXED_SHARE <= share <= 1 - MIXED_SHARE:
                    text = nonnull[as_num.isna()].astype(str)
                    examples = ", ".join(repr(v) for v in text.value_counts().index[:3])
                    out.append(Finding("mixed_types", [col], share, f"clean {col!r}: make its values all numbers (with "
                                       "missing values empty) or all categories", f"{share:.0%} numbers, the rest text "
                                       f"such as {examples}"))
        return out

    def leak_columns(self, ctx: CheckContext) -> list[Finding]:
        """Each column alone, a small gradient-boosted model of it cross-validated: a score near perfect is a leak."""
        from sklearn.model_selection import cross_val_score

        y = self._y()
        scoring = "r2" if self.kind == "regression" else "balanced_accuracy"
        scores = {}
        for col in self.features:
            x, cat = _encode(self.frame[[col]])
            model = _boosting(self.kind, cat, max_iter=30)
            scores[col] = float(np.mean(cross_val_score(model, x, y, cv=self._cv(), scoring=scoring)))
        top = sorted(scores.items(), key=lambda kv: -kv[1])
        ctx.facts.append(f"single-column {scoring.replace('_', ' ')} (leakage probe): "
                         + ", ".join(f"{c} {s:.3f}" for c, s in top[:5]))
        return [Finding("leak_column", [c], s, f"check how {c!r} is made: if it is known only after {self.y!r} is, "
                        f"drop it (--drop {c})", f"alone it reaches {scoring.replace('_', ' ')} {s:.3f}")
                for c, s in top if s >= LEAK_SCORE]

    def classes(self, ctx: CheckContext) -> list[Finding]:
        """Target imbalance, classes too small to split, classes in only one split."""
        if self.kind == "regression":
            return []
        splits, targets, _ = self.split
        labels = [targets.vocab.classes[int(v)] for v in targets.values]
        counts = count_classes(labels, splits, targets.vocab.classes)
        ctx.facts.append("rows per class (train/valid): " + ", ".join(f"{c} {a}/{b}" for c, (a, b) in counts.items()))
        return class_findings(counts, "rows")

    def labels(self, ctx: CheckContext) -> list[Finding]:
        """Likely label errors: 5-fold out-of-fold probabilities of a gradient-boosted model, ranked by cleanlab."""
        from quicklearn.analysis.check.labels import label_findings, out_of_fold

        if self.kind == "regression":
            return []
        splits, targets, _ = self.split
        labels = targets.values.numpy()
        x, cat = _encode(self.frame[self.features])

        def fit_predict(train: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
            return _boosting("single", cat, max_iter=100).fit(train, y).predict_proba(test)

        probs = out_of_fold(fit_predict, x, labels, folds=5, seed=self.recipe.training.seed,
                            n_classes=len(targets.vocab.classes))
        return label_findings(probs, labels, targets.vocab.classes, self.names, splits)

    def _y(self) -> np.ndarray:
        return self.split[1].values.numpy()

    def _cv(self) -> Any:
        from sklearn.model_selection import KFold, StratifiedKFold

        if self.kind == "regression":
            return KFold(3, shuffle=True, random_state=0)
        from quicklearn.analysis.check.labels import usable_classes

        _, folds = usable_classes(self._y(), 3)
        return StratifiedKFold(folds, shuffle=True, random_state=0)


def tabular_checks(recipe: Any) -> DataChecks:
    """The table checkers over the recipe's CSV (its target, split and columns as training reads them)."""
    d = _TableData(recipe)
    needs = ("sklearn",)
    checkers = [
        Checker("duplicate rows", (_k("leakage"), _k("duplicate")), d.duplicates, cheap=True),
        Checker("columns", (_k("constant"), _k("id_like"), _k("missing"), _k("mixed_types")), d.columns),
        Checker("leakage columns", (_k("leak_column"),), d.leak_columns, needs=needs),
        Checker("classes", (_k("few_items"), _k("imbalance"), _k("split_classes")), d.classes),
        Checker("label errors", (_k("label_error"),), d.labels, needs=("sklearn", "cleanlab")),
    ]
    return DataChecks("tabular", str(recipe.data.path), "rows", len(d.frame), checkers, None, None)


def _id_like(values: pd.Series) -> bool:
    """Unique per row and not a measurement: nearly consecutive whole numbers (a row number, an account number) or
    short strings."""
    if pd.api.types.is_numeric_dtype(values):
        v = values.to_numpy(dtype=float)
        return bool((v == np.round(v)).all() and v.max() - v.min() <= 2 * len(v))
    return bool(values.astype(str).str.len().mean() < 40)


def _encode(frame: pd.DataFrame) -> tuple[np.ndarray, list[bool]]:
    """Numbers as they are (missing as NaN, which gradient boosting handles); anything else as category codes."""
    cols, cat = [], []
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            codes = pd.Series(pd.Categorical(s.astype("string"))).cat.codes.to_numpy().astype(float)
            codes[codes < 0] = np.nan
            cat.append(bool(np.nanmax(codes, initial=0) < 250))  # HistGradientBoosting's category limit
            cols.append(codes)
        else:
            cols.append(s.to_numpy(dtype=float, na_value=np.nan))
            cat.append(False)
    return np.column_stack(cols) if cols else np.zeros((len(frame), 0)), cat


def _boosting(kind: str, categorical: list[bool], max_iter: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if kind == "regression" else HistGradientBoostingClassifier
    return cls(max_iter=max_iter, max_depth=4, learning_rate=0.2, categorical_features=categorical or None,
               early_stopping=False, random_state=0)
