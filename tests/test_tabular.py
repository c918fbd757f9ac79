"""Tabular data and models: column roles, each pre-processing step against a hand computation, unknown and missing
values at predict time, export/load parity, bad inputs, and the recipe end to end on titanic."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import quicklearn as ql
from quicklearn.config.files import load_recipe
from quicklearn.config.run import run_recipe
from quicklearn.config.schema import merge_overrides
from quicklearn.core.errors import ConfigError, DataError
from quicklearn.tasks.tabular.data import TabularLoader, TabularProcessor, infer_roles
from quicklearn.tasks.tabular.model import TabularModel, emb_size

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def titanic() -> Path:
    from conftest import _need

    return _need(SHARED / "titanic" / "train.csv")


@pytest.fixture(scope="module")
def penguins() -> Path:
    from conftest import _need

    return _need(SHARED / "palmer-penguins" / "penguins.csv")


def tiny_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": range(100, 130),
        "color": ["red", "blue", "green"] * 10,
        "size": [1.5, np.nan, 3.0, 4.5, 2.0, 6.0] * 5,
        "flag": [True, False] * 15,
        "count": [0, 1, 2, 3, 4] * 6,
        "note": [f"free comment number {i} about nothing in particular" for i in range(30)],
        "empty": [np.nan] * 30,
        "const": [7] * 30,
        "when": [f"2024-0{1 + i % 9}-1{i % 10}" for i in range(30)],
        "y": ["a", "b", "a"] * 10,
    })


# ---- roles ---------------------------------------------------------------------------------------------
def test_roles_from_dtype_and_cardinality():
    roles = infer_roles(tiny_frame(), "y")
    assert roles.cat_names == ["color", "flag", "count"]
    assert roles.cont_names == ["size"]
    assert set(roles.dropped) == {"id", "note", "empty", "const", "when"}
    assert "identifier-like" in roles.dropped["id"] and "free text" in roles.dropped["note"]
    assert "missing" in roles.dropped["empty"] and "one value" in roles.dropped["const"]
    assert "date_parts=True" in roles.dropped["when"]
    text = roles.describe()
    assert "dropped note: free text" in text and "categorical (3): color, flag, count" in text


def test_roles_overrides_and_date_parts():
    roles = infer_roles(tiny_frame(), "y", cat_names=["size"], cont_names=["count"], drop=["color"], date_parts=True)
    assert roles.cat_names == ["size", "flag"] and roles.cont_names == ["count"] and roles.date_names == ["when"]
    assert roles.dropped["color"] == "dropped as asked"
    with pytest.raises(DataError, match=r"feature column 'colour' not found.*Did you mean 'color'"):
        infer_roles(tiny_frame(), "y", cat_names=["colour"])


# ---- pre-processing against hand computations --------------------------------------------------------------
def test_processor_matches_a_hand_computation():
    train = pd.DataFrame({"c": ["x", "y", None, "x"], "v": [1.0, np.nan, 3.0, 8.0]})
    roles = infer_roles(train.assign(t=[0, 1, 0, 1]), "t", cat_names=["c"], cont_names=["v"])
    p = TabularProcessor.fit(train, roles, scaling="standard")
    assert p.levels["c"] == ["x", "y"] and p.medians["v"] == 3.0 and p.na_indicators == ["v"]
    filled = np.array([1.0, 3.0, 3.0, 8.0])
    assert p.means["v"] == pytest.approx(filled.mean()) and p.stds["v"] == pytest.approx(filled.std())
    assert p.cat_names == ["c", "v_na"] and p.cardinalities == [4, 4]
    new = pd.DataFrame({"c": ["y", "z", None], "v": [np.nan, 5.0, 1.0]})  # z: never seen -> unknown
    x = p.transform(new).numpy()
    assert x[:, 0].tolist() == [3, 0, 1]  # y -> 2 + 1, unknown -> 0, missing -> 1
    assert x[:, 1].tolist() == [3, 2, 2]  # v_na: True -> code 3, False -> code 2
    expect = (np.array([3.0, 5.0, 1.0]) - filled.mean()) / filled.std()
    np.testing.assert_allclose(x[:, 2], expect, rtol=1e-6)
    again = TabularProcessor.from_dict(p.to_dict())
    assert torch.equal(again.transform(new), p.transform(new))


def test_quantile_and_robust_scaling_against_hand_computations():
    rng = np.random.default_rng(0)
    normal = rng.normal(5.0, 2.0, size=20_000)
    train = pd.DataFrame({"n": normal, "skew": np.exp(rng.normal(scale=3.0, size=20_000))})
    roles = infer_roles(train.assign(t=0).assign(t=lambda f: np.arange(len(f)) % 2), "t", cont_names=["n", "skew"])
    q = TabularProcessor.fit(train, roles, scaling="quantile")
    x = q.transform(train).numpy()
    bulk = np.abs(normal - 5) < 4  # within 2 std: the quantile map of a normal column is its standardization
    np.testing.assert_allclose(x[bulk, 0], (normal[bulk] - 5) / 2, atol=0.05)
    skew = x[:, 1]
    assert abs(np.mean(skew)) < 0.02 and abs(np.mean(skew**3)) < 0.05  # a lognormal column comes out symmetric
    assert np.all(np.diff(skew[np.argsort(train["skew"].to_numpy())]) >= 0)  # order kept
    ends = q.transform(pd.DataFrame({"n": [-1e300, 1e300], "skew": [0.0, np.inf]}).iloc[:1]).numpy()
    assert np.isfinite(ends).all() and ends[0, 0] == pytest.approx(x[:, 0].min())  # clamped at the training minimum
    r = TabularProcessor.fit(train, roles, scaling="robust")
    med, (q25, q75) = np.median(normal), np.quantile(normal, [0.25, 0.75])
    z = (np.array([5.0, 9.0, 1e9]) - med) / ((q75 - q25) / 1.349)
    got = r.transform(pd.DataFrame({"n": [5.0, 9.0, 1e9], "skew": [1.0] * 3})).numpy()[:, 0]
    np.testing.assert_allclose(got, z / np.sqrt(1 + (z / 3) ** 2), rtol=1e-5)
    assert got[-1] == pytest.approx(3.0, abs=1e-4)  # soft-clipped, however far out
    a = TabularProcessor.fit(train, roles, scaling="auto")  # the normal column standardized, the lognormal ranked
    assert list(a.quantiles) == ["skew"]
    got = a.transform(train.head(50)).numpy()
    np.testing.assert_allclose(got[:, 0], (normal[:50] - normal.mean()) / normal.std(), rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], x[:50, 1], rtol=1e-6)
    for p in (q, r, a):
        again = TabularProcessor.from_dict(p.to_dict())
        assert torch.equal(again.transform(train.head(50)), p.transform(train.head(50)))
        np.testing.assert_allclose(p.unscale("n", p.transform(train.head(50)).numpy()[:, 0]), normal[:50], rtol=0.02)


def test_integer_codes_read_as_floats_are_the_same_level():
    train = pd.DataFrame({"k": [1, 2, 3, 1]})
    roles = infer_roles(train.assign(t=[0, 1, 0, 1]), "t", cat_names=["k"])
    p = TabularProcessor.fit(train, roles)
    x = p.transform(pd.DataFrame({"k": [1.0, 3.0, np.nan]}))  # an int column with a gap reads as float
    assert x[:, 0].tolist() == [2, 4, 1]


def test_dates_split_into_parts():
    frame = pd.DataFrame({"d": ["2024-01-15", "2024-03-02", None, "2025-12-31"], "t": [0, 1, 0, 1]})
    roles = infer_roles(frame, "t", date_parts=True)
    p = TabularProcessor.fit(frame, roles)
    assert p.cat_names[:2] == ["d_month", "d_dayofweek"] and "d_year" in p.cont_names and "d_elapsed" in p.cont_names
    assert p.levels["d_month"] == ["1", "12", "3"]  # sorted as strings
    x = p.transform(frame)
    assert x[2, 0].item() == 1  # no date: missing month


def test_tabular_loader_batches_by_index_and_is_seeded():
    x, t = torch.arange(20, dtype=torch.float32)[:, None], torch.arange(20)
    dl = TabularLoader(x, t, bs=6, shuffle=True, drop_last=True, seed=1)
    first = [b[1].tolist() for b in dl]
    assert len(first) == 3 and all(len(b) == 6 for b in first)
    assert first == [b[1].tolist() for b in dl]  # same epoch: same order
    dl.set_epoch(1)
    assert first != [b[1].tolist() for b in dl]
    for xb, yb in dl:
        assert torch.equal(xb[:, 0].long(), yb)  # rows stay with their targets


def test_model_embedding_rule_and_shapes():
    assert [emb_size(n) for n in (2, 10, 100, 10**7)] == [2, 6, 21, 600]
    m = TabularModel([4, 12], n_cont=3, n_out=2, layers=(8, 4))
    x = torch.cat([torch.tensor([[1.0, 11.0], [3.0, 0.0]]), torch.randn(2, 3)], 1)
    assert m(x).shape == (2, 2)
    reg = TabularModel([4], n_cont=1, n_out=1, y_range=(-1.0, 2.0))
    out = reg(torch.tensor([[1.0, 5000.0], [2.0, -5000.0]]))
    assert bool(((out > -1) & (out < 2)).all())


# ---- learner, export, predict ----------------------------------------------------------------------------
def test_learner_trains_exports_and_predicts_unknown_and_missing(tmp_path, one_thread):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.choice(["u", "v", "w"], size=n),
                          "c": rng.normal(size=n)})
    frame["y"] = np.where(frame["a"] + (frame["b"] == "u") * 1.5 > 0.5, "yes", "no")
    frame.loc[::17, "a"] = np.nan
    valid = list(range(0, n, 5))
    learn = ql.tabular_learner(frame, y="y", progress=False, seed=0, layers=(32, 16), splitter=ql.IndexSplitter(valid))
    learn.fit_one_cycle(4, 1e-2)
    assert learn.validate()["accuracy"] > 0.8
    learn.export(tmp_path / "m")
    model = ql.load(tmp_path / "m")
    preds, _ = learn.get_preds()
    valid_rows = frame.iloc[valid]
    out = model.raw(valid_rows)
    np.testing.assert_allclose(out.numpy(), preds.numpy(), atol=1e-5)
    one = model.predict({"a": np.nan, "b": "never seen", "c": 0.1})  # missing and unknown: no crash
    assert one.label in ("yes", "no") and sum(one.probs.values()) == pytest.approx(1.0)
    table = model.predict(valid_rows.drop(columns="y"))
    assert list(table.columns) == ["a", "b", "c", "prediction", "probability", "prob_no", "prob_yes"]
    assert [p.label for p in model.predict(valid_rows.drop(columns="y").to_dict("records"))] == table["prediction"].tolist()
    with pytest.raises(DataError, match="column 'c' is missing"):
        model.predict({"a": 1.0, "b": "u"})
    with pytest.raises(DataError, match="column 'a' must be numeric.*'lots'"):
        model.predict({"a": "lots", "b": "u", "c": 1.0})


def test_regression_scales_targets_and_y_range(penguins, one_thread):
    learn = ql.tabular_learner(penguins, y="body_mass_g", progress=False, seed=0, y_range="auto")
    assert learn.dls.kind == "regression" and learn.metric_names == ["rmse", "mae"]
    lo, hi = learn.model.y_range
    mean, std = learn.dls.target_stats
    assert lo * std + mean < float(learn.dls.train.targets.min()) and hi * std + mean > float(learn.dls.train.targets.max())
    learn.fit_one_cycle(5, 1e-2)
    rmse = learn.validate()["rmse"]
    spread = float(learn.dls.valid.targets.std())
    assert rmse < 0.6 * spread, (rmse, spread)  # far better than predicting the mean


def test_time_splitter_validates_the_latest_rows():
    frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=50, freq="D").astype(str)[::-1],
                          "v": np.arange(50.0) * 0.37, "y": [0, 1] * 25})
    dls = ql.tabular_dataloaders(frame, "y", splitter="time:when", valid_pct=0.2)
    assert dls.valid.n == 10
    # the dates run backwards, so the latest dates are the first 10 rows
    expect = ((np.arange(10.0) * 0.37 - dls.processor.means["v"]) / dls.processor.stds["v"]).astype(np.float32)
    np.testing.assert_allclose(sorted(dls.valid.x[:, -1].tolist()), sorted(expect.tolist()), rtol=1e-5)
    assert "when" in dls.roles.dropped


# ---- bad inputs ------------------------------------------------------------------------------------------------
def test_missing_target_lists_columns_with_closest_match(titanic):
    with pytest.raises(DataError, match=r"train\.csv: target column 'Survive' not found; columns are .*Did you mean 'Survived'"):
        ql.tabular_dataloaders(titanic, "Survive")


def test_semicolon_latin1_bom_files_are_read(tmp_path):
    frame = pd.DataFrame({"städte": ["Köln", "Zürich", "Genève", "Málaga"] * 10, "x": np.arange(40.0), "y": [0, 1] * 20})
    (tmp_path / "semi.csv").write_bytes(frame.to_csv(index=False, sep=";").encode("latin-1"))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False).encode("utf-8"))
    for name in ("semi.csv", "bom.csv"):
        dls = ql.tabular_dataloaders(tmp_path / name, "y")
        assert dls.roles.cat_names == ["städte"] and dls.processor.levels["städte"] == ["Genève", "Köln", "Málaga", "Zürich"]


def test_rows_without_target_are_left_out_with_a_warning(tmp_path, caplog):
    frame = pd.DataFrame({"x": np.arange(30.0), "y": [0, 1, None] * 10})
    with caplog.at_level("WARNING", logger="quicklearn"):
        dls = ql.tabular_dataloaders(frame, "y")
    assert dls.train.n + dls.valid.n == 20 and "10 row(s) have no 'y'" in caplog.text


def test_single_class_and_no_features_are_clear_errors():
    with pytest.raises(DataError, match="one class only"):
        ql.tabular_dataloaders(pd.DataFrame({"x": range(10), "y": ["a"] * 10}), "y")
    with pytest.raises(DataError, match="no usable feature columns"):
        ql.tabular_dataloaders(pd.DataFrame({"e": [np.nan] * 10, "y": [0, 1] * 5}), "y")
    with pytest.raises(ConfigError, match="y_range is for regression"):
        ql.tabular_learner(pd.DataFrame({"x": range(10), "y": [0, 1] * 5}), "y", y_range=(0, 1), progress=False)


def test_cli_train_and_predict_on_titanic(titanic, tmp_path):
    from test_cli import assert_user_error, invoke

    r = invoke("train", "--data", titanic, "--target", "Survive", "--out", tmp_path / "bad")
    assert_user_error(r.exit_code, r.stderr, "Survive", "Did you mean 'Survived'")
    out = tmp_path / "run"
    r = invoke("train", "--data", titanic, "--target", "Survived", "--epochs", "3", "--out", out)
    assert r.exit_code == 0, r.stderr
    assert "task: tabular" in r.stdout and "dropped Name" in r.stderr
    metrics = __import__("json").loads((out / "metrics.json").read_text())
    assert metrics["valid"]["accuracy"] > 0.75
    test = pd.read_csv(titanic).drop(columns="Survived").head(25)
    test.loc[0, "Embarked"] = "Atlantis"  # an unknown category
    test.to_csv(tmp_path / "test.csv", index=False)
    r = invoke("predict", out, tmp_path / "test.csv", "--out", tmp_path / "pred.csv")
    assert r.exit_code == 0, r.stderr
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 25 and list(pred.columns[: len(test.columns)]) == list(test.columns)
    assert list(pred.columns[len(test.columns):]) == ["prediction", "probability", "prob_0", "prob_1"]
    assert set(pred["prediction"]) <= {0, 1} and pred["probability"].between(0.5, 1).all()


def test_recipe_runs_end_to_end_on_titanic(titanic, tmp_path):
    recipe = merge_overrides(load_recipe("tabular"), {"data.path": str(titanic), "data.y": "Survived", "fit.epochs": 3})
    result = run_recipe(recipe, out=tmp_path / "out", progress=False)
    assert result.metrics["accuracy"] > 0.75
    assert {"model.safetensors", "config.json", "metrics.json", "training_curves.png"} <= {p.name for p in (tmp_path / "out").iterdir()}
    model = ql.load(tmp_path / "out")
    assert math.isclose(sum(model.predict({"Pclass": 1, "Sex": "female", "Age": 30, "SibSp": 0, "Parch": 0, "Fare": 80.0,
                                           "Embarked": "C", "Cabin": "B5"}).probs.values()), 1.0, rel_tol=1e-5)


def test_auto_batch_size_and_epochs_follow_the_table_size():
    from quicklearn.tasks.tabular.learner import auto_bs, auto_epochs

    # 32 rows where 64 would leave an epoch under 20 steps (1,280 rows), 64 up to 16,000, then about n / 250
    assert [auto_bs(n) for n in (100, 712, 1_279, 1_280, 16_000, 50_000, 240_000, 10**7)] == \
        [32, 32, 32, 64, 64, 256, 1024, 1024]
    frame = pd.DataFrame({"x": np.linspace(0, 1, 340), "y": [0, 1] * 170})
    dls = ql.tabular_dataloaders(frame, "y")  # 272 training rows: 8 batches of 32
    assert len(dls.train) == 8 and auto_epochs(dls) == 100  # 1,000 steps would be 125 epochs: at most 100
    big = ql.tabular_dataloaders(pd.DataFrame({"x": np.linspace(0, 1, 5000), "y": [0, 1] * 2500}), "y")
    assert len(big.train) == 62 and auto_epochs(big) == 17  # ceil(1000 / 62)
    huge = ql.tabular_dataloaders(pd.DataFrame({"x": np.linspace(0, 1, 300_000), "y": [0, 1] * 150_000}), "y")
    assert len(huge.train) == 234 and auto_epochs(huge) == 5  # bs 1024: five epochs, the minimum, pass 1,000 steps
