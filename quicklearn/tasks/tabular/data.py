"""Tabular data: a CSV or DataFrame and a target column -> column roles -> split -> pre-processing fitted on the
training rows only -> the whole processed table as one tensor, served in batches by index.

Column roles (inferred, printed, overridable with cat_names/cont_names/drop):
- the target and, for a split column such as `is_valid`, that column are not features;
- all values missing, or one value only -> dropped (nothing to learn from);
- booleans, strings, and integers with at most `max_card` (20) distinct values -> categorical;
- other numbers -> continuous;
- dates (datetime dtype, or strings that parse as dates) -> split into year, month, day of week and elapsed days
  when `date_parts=True`, else dropped with a note saying how to use them;
- strings that are unique for most rows (> 50% distinct, > 20 values: names, ids, tickets) and integer columns
  unique per row (row ids) -> dropped as identifier-like; long free text (> 30 characters on average) -> dropped.
  Where such a column is often empty (>= 5% missing), whether it is empty is kept as `<col>_na`.

Pre-processing (`TabularProcessor`, JSON round trip, fitted on the training rows):
- continuous: missing -> the training median, plus a `<col>_na` categorical when the training rows had missing
  values; then scaled (`scaling`): "standard" is (x - mean) / std; "quantile" maps each value to the standard
  normal quantile of its rank among the training rows, interpolated between 65 stored points, so skew and outliers
  vanish and any value, however extreme, lands within about +-2.6; "robust" is (x - median) / (IQR / 1.349),
  soft-clipped to +-3 (RealMLP's); "auto" (the default) is standard, and quantile for a heavy-tailed column (a
  training value more than 10 stds from the mean), whose standard scaling would squeeze every other value next to 0.
  On the issue-19 suite standard beat quantile and robust (linear tails such as College's applications matter;
  benchmarks/README.md has the ablation), and ranks protect against the outliers that break it;
- categorical: codes 0 = "unknown" (a level the training rows never had), 1 = "missing", 2.. = the training
  levels in sorted order. A new level at predict time maps to "unknown", never a crash.
The model input is one float tensor per row: the categorical codes, then the normalized continuous values.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from quicklearn.core.errors import ConfigError, DataError
from quicklearn.data.frames import check_column
from quicklearn.data.labels import KindName, Vocab, infer_kind
from quicklearn.data.loaders import LoaderPair, TensorLoader, results_csv, tensor_keys

__all__ = ["ColumnRoles", "infer_roles", "TabularProcessor", "TabularLoader", "TabularDataLoaders", "tabular_target", "UNKNOWN", "MISSING"]

log = logging.getLogger("quicklearn")

UNKNOWN, MISSING = "<unknown>", "<missing>"
DATE_PARTS = ("year", "month", "dayofweek", "elapsed")
_ID_SHARE, _TEXT_LEN, _NA_SHARE = 0.5, 30, 0.05


# ---- roles -----------------------------------------------------------------------------------------------
@dataclass
class ColumnRoles:
    """Which columns are categorical, continuous or dates, and which were dropped and why."""

    cat_names: list[str] = field(default_factory=list)
    cont_names: list[str] = field(default_factory=list)
    date_names: list[str] = field(default_factory=list)
    na_only: list[str] = field(default_factory=list)  # dropped columns whose emptiness is kept as <col>_na
    dropped: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"categorical ({len(self.cat_names)}): {', '.join(self.cat_names) or '-'}",
                 f"continuous ({len(self.cont_names)}): {', '.join(self.cont_names) or '-'}"]
        if self.date_names:
            lines.append(f"dates split into {'/'.join(DATE_PARTS)}: {', '.join(self.date_names)}")
        for col, why in self.dropped.items():
            kept = f"; kept whether it is empty as {col}_na" if col in self.na_only else ""
            lines.append(f"dropped {col}: {why}{kept}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ColumnRoles":
        return cls(**d)


def _looks_like_dates(s: pd.Series) -> bool:
    sample = s.dropna().astype(str).head(200)
    if len(sample) < 3 or not sample.str.contains(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}").mean() > 0.9:
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return parsed.notna().mean() > 0.9


def infer_roles(
    frame: pd.DataFrame,
    y: str | Sequence[str] | None,
    *,
    cat_names: Sequence[str] | None = None,
    cont_names: Sequence[str] | None = None,
    drop: Sequence[str] = (),
    date_parts: bool = False,
    max_card: int = 20,
    where: str = "the data",
) -> ColumnRoles:
    """Decide every column's role by dtype and cardinality (see the module docstring); explicit names win."""
    ys = [y] if isinstance(y, str) else list(y or [])
    for name in [*(cat_names or []), *(cont_names or []), *drop]:
        check_column(frame, name, "feature", where)
    roles = ColumnRoles()
    forced_cat, forced_cont = set(cat_names or []), set(cont_names or [])
    n = len(frame)
    for col in frame.columns:
        if col in ys:
            continue
        s = frame[col]
        if col in drop:
            roles.dropped[col] = "dropped as asked"
            continue
        if col in forced_cat:
            roles.cat_names.append(col)
            continue
        if col in forced_cont:
            roles.cont_names.append(col)
            continue
        nonnull = s.dropna()
        nunique = nonnull.nunique()
        if col == "is_valid" and nunique <= 2:
            roles.dropped[col] = "the validation-split flag"
            continue
        if nonnull.empty:
            roles.dropped[col] = "all values are missing"
            continue
        if nunique == 1 and not s.isna().any():
            roles.dropped[col] = f"one value only ({nonnull.iloc[0]!r})"
            continue
        if pd.api.types.is_bool_dtype(s):
            roles.cat_names.append(col)
        elif pd.api.types.is_datetime64_any_dtype(s) or (pd.api.types.is_string_dtype(s) and _looks_like_dates(s)):
            if date_parts:
                roles.date_names.append(col)
            else:
                roles.dropped[col] = "a date column; pass date_parts=True (--date-parts) to use its year/month/day of week"
        elif pd.api.types.is_numeric_dtype(s):
            integral = pd.api.types.is_integer_dtype(s) or bool((nonnull == nonnull.round()).all())
            if integral and nunique == n and n > max_card and _is_row_id(nonnull):
                roles.dropped[col] = f"identifier-like (a different whole number on each of the {n} rows)"
            elif integral and nunique <= max_card:
                roles.cat_names.append(col)
            else:
                roles.cont_names.append(col)
        else:
            text = nonnull.astype(str)
            share = nunique / max(len(nonnull), 1)
            if text.str.len().mean() > _TEXT_LEN and text.str.contains(" ").mean() > 0.5 and share > _ID_SHARE:
                roles.dropped[col] = f"free text ({text.str.len().mean():.0f} characters on average)"
            elif share > _ID_SHARE and nunique > max_card:
                roles.dropped[col] = f"identifier-like ({nunique} distinct values in {len(nonnull)} rows)"
            else:
                roles.cat_names.append(col)
                continue
            if s.isna().mean() >= _NA_SHARE:
                roles.na_only.append(col)
    if not (roles.cat_names or roles.cont_names or roles.date_names or roles.na_only):
        raise DataError(f"{where}: no usable feature columns besides the target {ys}: {roles.dropped or 'none at all'}. "
                        "Name them with cat_names/cont_names (--cat/--cont).")
    return roles


def _is_row_id(values: pd.Series) -> bool:
    """Whole numbers unique per row and (nearly) consecutive, like PassengerId: a row number, not a measurement."""
    v = np.sort(values.to_numpy(dtype=float))
    return bool(len(v) > 1 and (v[-1] - v[0]) <= 2 * len(v))


def _date_frame(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    d = pd.to_datetime(frame[col], errors="coerce", format="mixed")
    return pd.DataFrame({
        f"{col}_year": d.dt.year.astype("float64"),
        f"{col}_month": d.dt.month.astype("float64"),
        f"{col}_dayofweek": d.dt.day_of_week.astype("float64"),
        f"{col}_elapsed": (d - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0,
    }, index=frame.index)


def _cat_key(v: Any) -> str:
    """A category's string form, so that 3, 3.0 (an int column read with missing values) and '3' are one level."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    return str(v)


def _cat_keys(s: pd.Series) -> pd.Series:
    """`_cat_key` over a column, vectorized for the common dtypes (a 300,000-row table has no time for .map)."""
    present = s.notna()
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_integer_dtype(s):
        return s.astype(str).where(present)
    if pd.api.types.is_float_dtype(s):
        out = s.astype(str)
        whole = present & np.isfinite(s) & (s == s.round())  # inf is a level "inf", not a whole number
        out[whole] = s[whole].astype("int64").astype(str)
        return out.where(present)
    if pd.api.types.is_string_dtype(s) or pd.api.types.infer_dtype(s, skipna=True) == "string":  # object columns of str
        return s.astype(str).where(present)
    return s.map(_cat_key, na_action="ignore")


# ---- pre-processing ----------------------------------------------------------------------------------------
@dataclass
class TabularProcessor:
    """FillMissing + Categorify + Normalize, fitted on the training rows; a plain, JSON-able dataclass."""

    cat_names: list[str]  # in model order, <col>_na indicators and date parts included
    cont_names: list[str]
    date_names: list[str] = field(default_factory=list)
    na_only: list[str] = field(default_factory=list)
    levels: dict[str, list[str]] = field(default_factory=dict)  # the training levels (codes 2..)
    medians: dict[str, float] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)
    na_indicators: list[str] = field(default_factory=list)  # continuous columns with a <col>_na column
    inputs: list[str] = field(default_factory=list)  # the raw columns a prediction needs
    scaling: str = "standard"  # how continuous values are scaled: SCALINGS (folders written before: standard)
    # the quantile-scaled columns: [training values, their normal scores]
    quantiles: dict[str, list[list[float]]] = field(default_factory=dict)

    @classmethod
    def fit(cls, train: pd.DataFrame, roles: ColumnRoles, scaling: str = "auto") -> "TabularProcessor":
        """Fit on the training rows. scaling: "standard" ((x - mean) / std), "robust" ((x - median) / IQR-based
        scale, then a smooth clip to about +-3: RealMLP's), "quantile" (each value to the normal quantile of its
        training rank, interpolated between QUANTILES stored points: skew and outliers vanish, order stays), or
        "auto" (standard; quantile for the columns `_heavy_tailed` finds)."""
        if scaling not in SCALINGS:
            raise ConfigError(f"scaling={scaling!r}: use {', '.join(SCALINGS)}.")
        frame = _expand_dates(train, roles.date_names)
        cat = list(roles.cat_names)
        cont = list(roles.cont_names)
        for col in roles.date_names:
            cat += [f"{col}_month", f"{col}_dayofweek"]
            cont += [f"{col}_year", f"{col}_elapsed"]
        p = cls(cat_names=[], cont_names=cont, date_names=list(roles.date_names), na_only=list(roles.na_only),
                inputs=[*roles.cat_names, *roles.cont_names, *roles.date_names, *roles.na_only], scaling=scaling)
        for col in cont:
            values = pd.to_numeric(frame[col], errors="coerce").astype("float64")
            finite = values[np.isfinite(values)]  # an inf is refused by transform, naming its row; it sets no statistic
            median = float(finite.median()) if len(finite) else 0.0
            p.medians[col] = median
            if values.isna().any():
                p.na_indicators.append(col)
            filled = finite.reindex(values.index).fillna(median)
            p.means[col], std = _mean_std(filled)
            p.stds[col] = std if std > 1e-12 and math.isfinite(std) else 1.0
            if scaling == "robust":
                q25, q75 = (float(v) for v in filled.quantile([0.25, 0.75]))
                p.means[col] = median
                if (q75 - q25) / 1.349 > 1e-12:  # the IQR of a normal is 1.349 std: the same scale where both exist
                    p.stds[col] = (q75 - q25) / 1.349
            elif scaling == "quantile" or (scaling == "auto" and _heavy_tailed(filled, p.means[col], p.stds[col])):
                p.quantiles[col] = _quantile_points(filled.to_numpy())
        p.cat_names = cat + [f"{c}_na" for c in p.na_indicators] + [f"{c}_na" for c in roles.na_only]
        for col in cat:
            keys = _cat_keys(frame[col]).dropna()
            p.levels[col] = sorted(keys.unique().tolist())
        for col in [*p.na_indicators, *roles.na_only]:
            p.levels[f"{col}_na"] = ["False", "True"]
        return p

    @property
    def cardinalities(self) -> list[int]:
        """Levels per categorical column, "unknown" and "missing" included."""
        return [len(self.levels[c]) + 2 for c in self.cat_names]

    def transform(self, frame: pd.DataFrame, where: str = "the data") -> torch.Tensor:
        """Rows -> float32 (N, n_cat + n_cont): categorical codes, then normalized continuous values."""
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise DataError(f"{where}: column {missing[0]!r} is missing (the model was trained with {self.inputs}).")
        frame = _expand_dates(frame, self.date_names)
        n = len(frame)
        out = np.empty((n, len(self.cat_names) + len(self.cont_names)), dtype=np.float32)
        for j, col in enumerate(self.cat_names):
            if col.endswith("_na") and col not in frame.columns:
                source = col[:-3]
                out[:, j] = np.where(frame[source].isna().to_numpy(), 3, 2)  # levels [False, True] -> codes 2, 3
                continue
            s = frame[col]
            codes = pd.Index(self.levels[col]).get_indexer(_cat_keys(s))  # -1: missing or unseen (levels are unique)
            out[:, j] = np.where(codes >= 0, codes + 2, np.where(s.isna().to_numpy(), 1, 0))  # missing -> 1, unseen -> 0
        k = len(self.cat_names)
        for j, col in enumerate(self.cont_names):
            raw = frame[col]
            values = pd.to_numeric(raw, errors="coerce")
            bad = values.isna() & raw.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"{where}: column {col!r} must be numeric, but row {row} has {raw.tolist()[row]!r}. "
                                "Fix the value or leave it empty.")
            filled = values.astype("float64").fillna(self.medians[col])
            with np.errstate(over="ignore", invalid="ignore"):
                out[:, k + j] = self._scale(col, filled.to_numpy(dtype=np.float64)).astype(np.float32)
            if not np.isfinite(out[:, k + j]).all():  # inf, or so far from the training rows that float32 overflows
                row = int(np.flatnonzero(~np.isfinite(out[:, k + j]))[0])
                raise DataError(f"{where}: column {col!r} row {row} has {raw.tolist()[row]!r}, not a finite number on the scale "
                                f"of the training rows (mean {self.means[col]:.3g}, std {self.stds[col]:.3g}). "
                                "Fix the value or leave it empty.")
        return torch.from_numpy(out)

    def _scale(self, col: str, x: np.ndarray) -> np.ndarray:
        if col in self.quantiles:  # "quantile", or "auto" on a heavy-tailed column
            xs, ys = self.quantiles[col]
            return np.interp(x, xs, ys)
        z = (x - self.means[col]) / self.stds[col]
        return z / np.hypot(1.0, z / ROBUST_CLIP) if self.scaling == "robust" else z  # hypot: no overflow for huge z

    def unscale(self, col: str, z: np.ndarray) -> np.ndarray:
        """Scaled values of `col` back in the column's units (for describing rows)."""
        z = np.asarray(z, dtype=np.float64)
        if col in self.quantiles:
            xs, ys = self.quantiles[col]
            return np.interp(z, ys, xs)
        if self.scaling == "robust":
            z = z / np.sqrt(np.clip(1 - (z / ROBUST_CLIP) ** 2, 1e-12, None))
        return z * self.stds[col] + self.means[col]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TabularProcessor":
        return cls(**d)


SCALINGS = ("auto", "standard", "robust", "quantile")
SCALING_HOW = {  # what each scaling does to a continuous value, for readers of an exported graph's metadata
    "auto": "the columns in quantiles: as 'quantile'; the others: as 'standard'",
    "standard": "(value - means[col]) / stds[col]",
    "robust": "z = (value - means[col]) / stds[col] (median and IQR / 1.349), then z / sqrt(1 + (z / 3)^2)",
    "quantile": "linear interpolation of the value between quantiles[col][0] (training values) and quantiles[col][1] "
                "(their normal scores), clamped at the ends",
}
QUANTILES = 65  # stored points per column for scaling "quantile": the minimum, every 1/64 of the rows, the maximum
HEAVY_TAIL_Z = 10.0  # scaling "auto": a training value this many stds from the mean makes the column's scaling ranks
ROBUST_CLIP = 3.0  # scaling "robust": z / sqrt(1 + (z / 3)^2), smooth, about +-3 at most


def _normal_points(n: int) -> np.ndarray:
    """The standard normal's quantiles at n evenly spaced probabilities from 0 to 1, the ends held at 1/(2n) from
    0 and 1 (finite scores for the training minimum and maximum)."""
    from statistics import NormalDist

    probs = np.clip(np.linspace(0, 1, n), 0.5 / n, 1 - 0.5 / n)
    return np.array([NormalDist().inv_cdf(float(q)) for q in probs])


_NORMAL_POINTS = _normal_points(QUANTILES)


def _quantile_points(values: np.ndarray) -> list[list[float]]:
    """[values, normal scores]: QUANTILES training quantiles of a column, from its minimum to its maximum, and the
    normal quantile each maps to; a value repeated over several quantiles (a discrete column) keeps one point, at
    the mean of their scores."""
    qs = np.quantile(values, np.linspace(0, 1, QUANTILES)) if len(values) else np.zeros(QUANTILES)
    xs, inverse = np.unique(qs, return_inverse=True)
    ys = np.bincount(inverse, weights=_NORMAL_POINTS) / np.bincount(inverse)
    if len(xs) == 1:  # one value only: it maps to 0
        ys = np.zeros(1)
    return [[float(v) for v in xs], [float(v) for v in ys]]


def _heavy_tailed(values: pd.Series, mean: float, std: float) -> bool:
    """Whether a column has a value more than HEAVY_TAIL_Z stds from its mean: no light-tailed column does at any
    realistic size (a normal sample's largest |z| is about sqrt(2 ln n), 5 at 250,000 rows), and standard scaling of
    such a column squeezes all its other values next to 0."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(len(values)) and float(((values - mean) / std).abs().max()) > HEAVY_TAIL_Z


def _mean_std(values: pd.Series) -> tuple[float, float]:
    """Mean and population std of finite float64 values; computed again on values scaled to [-1, 1] when squares
    of values above ~1e154 overflow to inf (which would leave every normalized value infinite)."""
    scale = float(values.abs().max()) if len(values) else 0.0
    scale = scale if scale > 0 else 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(values.mean()), float(values.std(ddof=0))
        if not (math.isfinite(mean) and math.isfinite(std)):
            mean, std = float((values / scale).mean()) * scale, float((values / scale).std(ddof=0)) * scale
    return mean, std


def _expand_dates(frame: pd.DataFrame, date_names: Sequence[str]) -> pd.DataFrame:
    if not date_names:
        return frame
    parts = [_date_frame(frame, c) for c in date_names]
    return pd.concat([frame, *parts], axis=1)


# ---- targets -----------------------------------------------------------------------------------------------
def tabular_target(frame: pd.DataFrame, y: str, kind: KindName | None, where: str) -> KindName:
    """The target's kind: classification for strings, booleans and few whole numbers; regression for other numbers;
    multi-label is not supported for tables."""
    check_column(frame, y, "target", where)
    s = frame[y]
    if kind is None:
        kind = infer_kind(s).name  # the rule every task uses (data/labels.py)
    if kind == "multi":
        raise DataError(f"{where}: multi-label targets are not supported for tables yet; use one target column.")
    return kind


# ---- batches -----------------------------------------------------------------------------------------------
class TabularLoader(TensorLoader):
    """Batches of rows by index from whole-table tensors (x: float32 (N, n_cat + n_cont)): the shared
    `TensorLoader`, under the name the table API has always had."""


@dataclass
class TabularDataLoaders(LoaderPair):
    """Train and valid loaders of a table, plus what the model and export need (processor, roles, vocab, kind)."""

    train: TabularLoader
    valid: TabularLoader
    kind: KindName
    vocab: Vocab | None
    processor: TabularProcessor
    roles: ColumnRoles
    y: str
    target_stats: tuple[float, float] | None = None

    task = "tabular"

    def folder_parts(self, learn: Any, folder: Path) -> tuple[dict[str, Any], list[str]]:
        """config.json's target column, fitted pre-processing and column roles: all a loaded model needs."""
        return {"target": self.y, "processor": self.processor.to_dict(), "roles": self.roles.to_dict()}, []

    def show_results(self, learn: Any, path: str | Path | None, n: int) -> Path:
        """The first `n` validation rows, described as column=value, with the actual and predicted targets, as a
        CSV (a table is better read than looked at)."""
        return results_csv(learn, row_descriptions(self.processor, self.valid.x[:n].cpu()), path, n)

    def show_batch_text(self, n: int) -> str:
        """The first `n` training rows as the model reads them (column=value after pre-processing) and their targets."""
        rows = row_descriptions(self.processor, self.train.x[:n].cpu())
        labels = self.target_kind.readable(self.train.targets[:n].cpu(), self.vocab.classes if self.vocab else None)
        return "\n".join(f"[{label}] {row}" for label, row in zip(labels, rows))

    def item_keys(self) -> tuple[list[bytes], list[bytes]]:
        """Each row's processed values and target."""
        return tensor_keys(self.train.x, self.train.targets), tensor_keys(self.valid.x, self.valid.targets)


def row_descriptions(processor: Any, x: torch.Tensor) -> list[str]:
    """Pre-processed rows back to 'column=value, ...' (continuous values un-normalized; missing ones show the
    median they were filled with, and their <col>_na column says so)."""
    cols: list[list[str]] = []
    for j, name in enumerate(processor.cat_names):
        levels = [UNKNOWN, MISSING, *processor.levels[name]]
        cols.append([f"{name}={levels[int(c)]}" for c in x[:, j].tolist()])
    k = len(processor.cat_names)
    for j, name in enumerate(processor.cont_names):
        values = processor.unscale(name, x[:, k + j].double().numpy())
        cols.append([f"{name}={v:.4g}" for v in values.tolist()])
    return [", ".join(parts) for parts in zip(*cols)] if cols else [""] * len(x)
