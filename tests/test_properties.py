"""Property-based tests (hypothesis): arbitrary recipes and arbitrary tables give a valid result or a clean error.

(a) The recipe loader: any nested mapping (keys biased towards the real ones, so validation goes deep) and any
    YAML text (fragments of real recipes, tags, aliases, random characters) give a validated recipe or a
    ConfigError whose message is one line naming the source, never another exception type.
(b) The table pre-processing: any small DataFrame (mixed types, NaN, inf, huge numbers, empty strings, unicode,
    look-alike column names), as a DataFrame or written to a CSV, gives finite float32 tensors of the right shape
    or a DataError/ConfigError, and so does transforming new rows with the fitted processor.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import IN_CI
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from quicklearn.config.files import load_recipe
from quicklearn.config.schema import _all_sections, parse_recipe
from quicklearn.config.sections import FitSection, OutputSection
from quicklearn.core.errors import ConfigError, DataError
from quicklearn.data.frames import read_frame
from quicklearn.tasks.tabular.data import TabularProcessor, infer_roles
from quicklearn.tasks.tabular.learner import tabular_dataloaders
from quicklearn.tasks.tabular.recipe import TabularRecipe
from quicklearn.tasks.text.recipe import TextRecipe
from quicklearn.tasks.vision.recipe import VisionRecipe

# No example database (no .hypothesis/ folder in the checkout); CI replays the same examples on every run, so a
# failure there is reproducible and never a flake, while local runs explore new ones.
SETTINGS = settings(max_examples=80, deadline=None, database=None, derandomize=IN_CI,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _quiet(caplog):
    """Tables with missing targets and imbalanced classes warn on every example; the warnings are not the point."""
    caplog.set_level(logging.ERROR, logger="quicklearn")


def assert_clean(e: Exception, source: str) -> None:
    """A user error: one line that names where it comes from."""
    msg = str(e)
    event(f"{type(e).__name__}: {msg[len(source):][:40] if msg.startswith(source) else msg[:40]}")
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.startswith(source) or source in msg, (source, msg)
    assert len(msg) < 2_000, msg[:300]


# ---- (a) recipes -------------------------------------------------------------------------------------------
KEYS = sorted({k for m in _all_sections() for k in m.model_fields} | {"task", "data", "model", "transforms"})
SCALARS = (
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["auto", "vision", "tabular", "text", "imagenet", "none", "crop", "avg",
                                              "adamw", "column:is_valid", "time:", "${QL_SURELY_UNSET_VAR}", "1e400"])
)
KEY = st.sampled_from(KEYS) | st.text(max_size=8) | st.sampled_from(["a\nb", "${X}", "é"]) | st.integers(-3, 3) | st.none()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=5),
                      max_leaves=25)
SECTIONS = st.fixed_dictionaries({}, optional={
    "task": st.sampled_from(["vision", "tabular", "text"] * 6) | SCALARS,
    "data": st.dictionaries(KEY, VALUES, max_size=5) | VALUES,
    "model": st.dictionaries(KEY, VALUES, max_size=4),
    "transforms": st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4),
    "training": st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=4),
    "fit": st.dictionaries(st.sampled_from(list(FitSection.model_fields)), SCALARS, max_size=4),
    "output": st.dictionaries(st.sampled_from(list(OutputSection.model_fields)), SCALARS, max_size=2),
}).flatmap(lambda d: st.dictionaries(KEY, VALUES, max_size=2).map(lambda extra: {**extra, **d}))


@SETTINGS
@given(raw=st.sampled_from([True] * 5 + [False]).flatmap(lambda recipe_like: SECTIONS if recipe_like else VALUES))
def test_any_mapping_gives_a_recipe_or_a_config_error(raw) -> None:
    try:
        recipe = parse_recipe(raw, "prop.yaml")
    except ConfigError as e:
        assert_clean(e, "prop.yaml")
        return
    assert isinstance(recipe, (VisionRecipe, TabularRecipe, TextRecipe))
    assert parse_recipe(recipe.model_dump(), "again") == recipe
    event("ok: a recipe")  # what validated dumps and validates the same


SENTINEL = Path(tempfile.gettempdir()) / "quicklearn-yaml-pwned"  # what the tags below would create if run
YAML_PIECES = st.sampled_from([
    "task: vision\n", "task: tabular\n", "task: [vision]\n", "data:\n", "  path: data/\n", "  y: label\n",
    "fit:\n", "  epochs: 3\n", "  epochs: -1\n", "  epochs: .inf\n", "  epochs: 1e400\n", "training:\n", "  bs: auto\n",
    "  bs: lots\n", "model: {arch: resnet18, weights: null}\n", "transforms: {augment: {flp: true}}\n",
    "a: &x [1, 2]\n", "b: *x\n", "c: &y\n  d: *y\n", f"!!python/object/apply:os.system [\"touch {SENTINEL}\"]\n",
    f"x: !!python/object/new:subprocess.Popen [[touch, {SENTINEL}]]\n",
    "e: !!python/name:os.system\n", "f: !!binary aGVsbG8=\n", "g: !!set {a, b}\n", "h: !!timestamp 2020-01-01\n",
    "? [a, b]\n: 1\n", "- 1\n", "---\n", "...\n", "%YAML 1.1\n", "\t\n", "'\n", "\"\\x\"\n", "{\n", "]\n",
    "  - ${QL_SURELY_UNSET_VAR}\n", "\x00\n", "\ufeff", "é: ü\n", "i: !!int abc\n", "j: !!bool maybe\n", "k: !!int\n",
    "l: !!float x\n", "m: !!timestamp 2020-13-45\n", "n: " + "9" * 5000 + "\n",
])


@SETTINGS
@given(text=st.lists(YAML_PIECES | st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=20), max_size=8).map("".join))
def test_any_yaml_text_gives_a_recipe_or_a_config_error(text: str, tmp_path_factory) -> None:
    path = tmp_path_factory.getbasetemp() / "prop-recipe.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        recipe = load_recipe(path)
    except ConfigError as e:
        assert_clean(e, str(path))
        assert not SENTINEL.exists()
        return
    assert isinstance(recipe, (VisionRecipe, TabularRecipe, TextRecipe))
    event("ok: a recipe")


@settings(max_examples=30, deadline=None, database=None, derandomize=IN_CI)
@given(data=st.binary(max_size=64))
def test_any_bytes_give_a_recipe_or_a_config_error(data: bytes, tmp_path_factory) -> None:
    path = tmp_path_factory.getbasetemp() / "prop-bytes.yaml"
    path.write_bytes(data)
    try:
        load_recipe(path)
    except ConfigError as e:
        assert_clean(e, str(path))


# ---- (b) tables --------------------------------------------------------------------------------------------
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.5, -2.25, 1e300, -1e300, 3.4e38])
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6) | st.sampled_from(
    ["", " ", "NaN", "nan", "None", "inf", "-inf", "1", "1.0", "2020-01-31", "true", "日本", "café au lait"])
CELL = {
    "int": st.integers(-5, 5) | st.integers(-10**12, 10**12),
    "float": FLOATS,
    "text": TEXT,
    "bool": st.booleans(),
    "mixed": st.none() | st.integers(-3, 3) | FLOATS | TEXT | st.booleans(),
    "empty": st.none(),
}
NAMES = st.sampled_from(["a", "a ", "A", "a.1", "b", "is_valid", "日本", "", " ", "0", "y_na", "nan"]) | st.text(max_size=5)


@st.composite
def frames(draw, allow_duplicate_names: bool = True) -> pd.DataFrame:
    n = draw(st.integers(1, 14) | st.integers(6, 14))
    kinds = draw(st.lists(st.sampled_from(sorted(CELL)), min_size=1, max_size=4))
    twice = allow_duplicate_names and draw(st.integers(0, 4)) == 0  # a name used twice: only in some frames
    names = draw(st.lists(NAMES, min_size=len(kinds), max_size=len(kinds), unique=not twice))
    names = [nm for nm in names if nm != "y"]
    columns = {}
    for name, kind in zip(names, kinds):
        values = draw(st.lists(CELL[kind], min_size=n, max_size=n))
        columns.setdefault(name, []).append(values)
    frame = pd.concat([pd.Series(v, name=k, dtype=object if kind == "mixed" else None)
                       for k, vs in columns.items() for v in vs] or [pd.Series([None] * n, name="a")], axis=1)
    target = draw(st.sampled_from(["classes"] * 3 + ["numbers"] * 3 + ["huge numbers", "one class", "with missing",
                                                                        "text numbers"]))
    y = {
        "classes": st.sampled_from(["cat", "dog", "日本"]),
        "numbers": st.floats(-1e6, 1e6, allow_nan=False),
        "huge numbers": st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.5, math.inf, 1e39, -1e300]),
        "one class": st.just("only"),
        "with missing": st.none() | st.sampled_from(["x", "y", "x", "y"]),
        "text numbers": st.sampled_from(["1", "2", "3.5", "", "n/a"]),
    }[target]
    frame["y"] = draw(st.lists(y, min_size=n, max_size=n))
    return frame


def check_tensor(x, rows: int, processor: TabularProcessor) -> None:
    assert x.dtype.is_floating_point and tuple(x.shape) == (rows, len(processor.cat_names) + len(processor.cont_names))
    assert bool(x.isfinite().all()), x


def check_loaders(dls, n_rows: int) -> None:
    proc = dls.processor
    check_tensor(dls.train.x, dls.train.n, proc)
    check_tensor(dls.valid.x, dls.valid.n, proc)
    assert dls.train.n + dls.valid.n <= n_rows and dls.train.n >= 1 and dls.valid.n >= 1
    assert bool(dls.train.targets.float().isfinite().all())
    card = proc.cardinalities
    for j in range(len(card)):  # codes index the embeddings: in [0, cardinality)
        col = dls.train.x[:, j]
        assert bool(((col >= 0) & (col < card[j]) & (col == col.round())).all()), (proc.cat_names[j], col)


@SETTINGS
@given(frame=frames())
def test_any_dataframe_gives_finite_tensors_or_a_clean_error(frame: pd.DataFrame) -> None:
    try:
        dls = tabular_dataloaders(frame, "y", bs=4, seed=0)
    except (DataError, ConfigError) as e:
        assert_clean(e, "")
        return
    check_loaders(dls, len(frame))
    event(f"ok: {dls.kind}")


@SETTINGS
@given(frame=frames(allow_duplicate_names=False), sep=st.sampled_from([",", ";", "\t"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
def test_any_csv_gives_finite_tensors_or_a_clean_error(frame: pd.DataFrame, sep: str, encoding: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "table.csv"
        try:
            frame.to_csv(path, sep=sep, index=False, encoding=encoding)
        except UnicodeEncodeError:
            assume(False)  # latin-1 cannot hold this frame's text: not a file a user could have
        try:
            dls = tabular_dataloaders(path, "y", bs=4, seed=0)
        except (DataError, ConfigError) as e:
            assert_clean(e, str(path))
            return
        check_loaders(dls, len(frame))
        event(f"ok: {dls.kind}")


@SETTINGS
@given(train=frames(allow_duplicate_names=False), new=st.data())
def test_fitted_processor_transforms_any_new_rows(train: pd.DataFrame, new) -> None:
    """infer_roles + TabularProcessor on the raw frame; then rows a user might send at predict time: the same
    columns with arbitrary values of any type."""
    try:
        frame, where = read_frame(train)
        roles = infer_roles(frame, "y", where=where)
        proc = TabularProcessor.fit(frame, roles)
        x = proc.transform(frame, where)
    except (DataError, ConfigError) as e:
        assert_clean(e, "")
        return
    check_tensor(x, len(frame), proc)
    n = new.draw(st.integers(1, 5))
    rows = pd.DataFrame({c: new.draw(st.lists(CELL["mixed"], min_size=n, max_size=n)) for c in proc.inputs}, dtype=object)
    try:
        x_new = proc.transform(rows, "the new rows")
    except DataError as e:
        assert_clean(e, "the new rows")
        return
    check_tensor(x_new, n, proc)
    event("ok: new rows transformed")
    assert np.array_equal(proc.transform(frame, where).numpy(), x.numpy())  # transforming is a pure function
