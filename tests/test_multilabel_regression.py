"""Multi-label and regression vision end to end on real digits: 2x2 mosaics of mnist-tiny 3s and 7s.

Each 56x56 mosaic holds four digit images; its multi-label target is the set of digits present ("3", "7" or
"3 7") and its regression target the number of 7s (0-4). The number of 7s is drawn uniformly, so each label is
present in 4/5 of the mosaics: the majority baseline of accuracy_multi is about 0.8, and predicting the mean
count leaves an RMSE of about 1.4. One small model per target is trained once per module (default arch with the
offline ImageNet weights, 56 px).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.analysis.evaluate import evaluate_model
from quicklearn.analysis.thresholds import best_thresholds
from quicklearn.data.labels import detect_delim, get_targets, split_labels
from quicklearn.data.thresholds import parse_thresh
from quicklearn.tasks.vision.augment import AugmentConfig
from quicklearn.tasks.vision.sources import csv_source
from quicklearn.train.metrics import f1_multi

pytestmark = pytest.mark.usefixtures("one_thread")

N_TRAIN, N_VALID, SIZE = 384, 128, 56
# No random crop: a crop could cut the only 7 out of a mosaic and make its label wrong.
AUG = AugmentConfig(min_scale=1.0, max_rotate=5.0, max_warp=0.0)


def make_mosaics(src: Path, root: Path, seed: int = 0) -> Path:
    """Write N_TRAIN + N_VALID mosaic PNGs (training mosaics from mnist-tiny's train/, validation ones from its
    valid/) and mosaics.csv: image, labels ("3 7"), labels_comma ("3,7"), sevens (float), is_valid."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in (("train", N_TRAIN), ("valid", N_VALID)):
        pools = {d: sorted((src / split / d).glob("*.png")) for d in ("3", "7")}
        for i in range(n):
            k = int(rng.integers(0, 5))  # how many 7s
            digits = rng.permutation(["7"] * k + ["3"] * (4 - k))
            tiles = [np.asarray(Image.open(pools[d][rng.integers(len(pools[d]))]).convert("L")) for d in digits]
            Image.fromarray(np.block([[tiles[0], tiles[1]], [tiles[2], tiles[3]]]).astype(np.uint8), "L").save(
                root / f"{split}_{i:04d}.png")
            present = sorted(set(digits))
            rows.append({"image": f"{split}_{i:04d}.png", "labels": " ".join(present), "labels_comma": ",".join(present),
                         "sevens": float(k), "is_valid": split == "valid"})
    frame = pd.DataFrame(rows)
    frame.to_csv(root / "mosaics.csv", index=False)
    frame[frame.is_valid].drop(columns="is_valid").to_csv(root / "valid.csv", index=False)
    return root / "mosaics.csv"


@pytest.fixture(scope="module")
def mosaics(mnist_tiny: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mosaics")
    return make_mosaics(mnist_tiny, root)


@pytest.fixture(scope="module")
def multi_learn(mosaics: Path, env):
    learn = ql.vision_learner(mosaics, y="labels", size=SIZE, augment=AUG, progress=False, seed=0)
    learn.fine_tune(3, base_lr=5e-3)
    return learn


@pytest.fixture(scope="module")
def reg_learn(mosaics: Path, env):
    learn = ql.vision_learner(mosaics, y="sevens", kind="regression", size=SIZE, augment=AUG, progress=False, seed=0)
    learn.fine_tune(3, base_lr=5e-3)
    return learn


# ---- labels: one separator per column ---------------------------------------------------------------------
def test_space_and_comma_separated_columns_give_the_same_multi_hot_targets(mosaics: Path) -> None:
    src = csv_source(mosaics)
    spaced, comma = get_targets(src, "labels"), get_targets(src, "labels_comma")
    assert spaced.kind == comma.kind == "multi" and spaced.vocab.classes == comma.vocab.classes == ("3", "7")
    assert torch.equal(spaced.values, comma.values)
    frame = pd.read_csv(mosaics)
    assert spaced.values[:, 1].tolist() == (frame.sevens > 0).astype(float).tolist()  # "7" present <=> a 7 in it


def test_a_comma_column_keeps_spaces_inside_labels() -> None:
    raw = ["traffic light, person", "person", "traffic light", float("nan")]
    assert detect_delim(raw) == ","
    assert split_labels(raw) == [["traffic light", "person"], ["person"], ["traffic light"], []]
    assert detect_delim(["cat dog", "dog"]) is None and split_labels(["cat dog", "dog"]) == [["cat", "dog"], ["dog"]]
    assert split_labels(["a;b c"]) == [["a", "b c"]] and split_labels(["a|b", "c"]) == [["a", "b"], ["c"]]


# ---- multi-label: learning, export, thresholds ------------------------------------------------------------
def test_multi_label_learns_well_above_the_baselines(multi_learn) -> None:
    preds, targets = multi_learn.get_preds()
    assert multi_learn.dls.kind == "multi" and preds.shape == (N_VALID, 2)
    pos_rate = targets.mean(0)
    majority = torch.maximum(pos_rate, 1 - pos_rate).mean().item()  # each label's more common state, ~0.8
    all_negative = 1 - targets.mean().item()
    all_positive_f1 = f1_multi(torch.full_like(targets, 10.0), targets)  # "both digits" for every mosaic
    metrics = multi_learn.validate()
    assert max(majority, all_negative) < 0.86, (majority, all_negative)
    assert metrics["accuracy_multi"] > majority + 0.07, (metrics, majority)
    assert metrics["f1"] > all_positive_f1 + 0.05, (metrics, all_positive_f1)


def test_multi_label_export_load_predict_round_trip(multi_learn, mosaics: Path, tmp_path: Path) -> None:
    model = ql.load(multi_learn.export(tmp_path / "model"))
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert (config["kind"], config["classes"], config["thresh"]) == ("multi", ["3", "7"], 0.5)
    paths = multi_learn.dls.valid_paths
    preds, _ = multi_learn.get_preds()
    probs = preds.sigmoid()
    got = model.predict(paths)
    assert [sorted(p.probs) for p in got[:1]] == [["3", "7"]]
    np.testing.assert_allclose([[p.probs["3"], p.probs["7"]] for p in got], probs.numpy(), atol=1e-4)
    assert [p.label for p in got] == [[c for c, v in zip("37", row) if v > 0.5] for row in probs.tolist()]
    one = model.predict(str(paths[0]))
    assert isinstance(one, ql.Prediction) and one.label == got[0].label

    ev = evaluate_model(model, mosaics.parent / "valid.csv", y="labels")
    expected = multi_learn.validate()
    assert ev["n"] == N_VALID and set(ev["metrics"]) == {"loss", "accuracy_multi", "f1"}
    for name in ("loss", "accuracy_multi", "f1"):
        assert ev["metrics"][name] == pytest.approx(expected[name], abs=2e-4), name


def _labels_by_rule(probs: dict[str, float], thresh: dict[str, float]) -> list[str]:
    return [c for c in ("3", "7") if probs[c] > thresh[c]]


def test_thresholds_change_the_predicted_label_sets(multi_learn, tmp_path: Path) -> None:
    per_label = {"3": 0.9, "7": 0.2}
    model = ql.load(multi_learn.export(tmp_path / "model", thresh=per_label))
    assert json.loads((tmp_path / "model" / "config.json").read_text())["thresh"] == per_label
    paths = multi_learn.dls.valid_paths[:40]
    saved = model.predict(paths)
    assert [p.label for p in saved] == [_labels_by_rule(p.probs, per_label) for p in saved]

    low, high = model.predict(paths, thresh=0.02), model.predict(paths, thresh=0.98)
    assert all(set(h.label) <= set(lo.label) for lo, h in zip(low, high))
    assert sum(map(len, (p.label for p in low))) > sum(map(len, (p.label for p in high)))  # the threshold matters
    assert [p.label for p in high] == [_labels_by_rule(p.probs, {"3": 0.98, "7": 0.98}) for p in high]

    # a dict overrides only the labels it names; the others keep the exported threshold
    partial = model.predict(paths, thresh={"3": 0.02})
    assert [p.label for p in partial] == [_labels_by_rule(p.probs, {"3": 0.02, "7": 0.2}) for p in partial]
    assert model.predict(paths) == saved  # an override lasts one call


@pytest.mark.parametrize(("thresh", "needles"), [
    ({"9": 0.3}, ("label '9'", "labels: 3, 7")),
    ({"3": 1.5}, ("1.5", "strictly between 0 and 1")),
    (0.0, ("0.0", "strictly between 0 and 1")),
    ({"3": True}, ("True", "strictly between 0 and 1")),
])
def test_bad_thresholds_are_refused_with_the_label_or_value(multi_learn, tmp_path: Path, thresh, needles) -> None:
    with pytest.raises(ql.ConfigError) as e:
        multi_learn.export(tmp_path / "model", thresh=thresh)
    assert all(n in str(e.value) for n in needles), str(e.value)
    assert not (tmp_path / "model" / "config.json").exists()
    model = ql.load(multi_learn.export(tmp_path / "ok"))
    with pytest.raises(ql.ConfigError) as e:
        model.predict(multi_learn.dls.valid_paths[:1], thresh=thresh)
    assert all(n in str(e.value) for n in needles), str(e.value)


def test_a_hand_edited_config_threshold_is_checked_at_load(multi_learn, tmp_path: Path) -> None:
    path = multi_learn.export(tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "thresh": {"8": 0.4}}))
    with pytest.raises(ql.ConfigError, match=r"config.json 'thresh': label '8' is not one of the model's labels: 3, 7"):
        ql.load(path)


def test_best_thresholds_on_a_hand_computed_case() -> None:
    # label a: positives score 0.30 and 0.40, negatives 0.10 and 0.35
    probs = torch.tensor([[0.30, 0.9], [0.40, 0.8], [0.10, 0.2], [0.35, 0.7]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    got = best_thresholds(probs, targets, ["a", "b"], grid=[0.05, 0.2, 0.32, 0.37, 0.5])
    # a: t=0.05 -> tp2 fp2 F1 .667; 0.2 -> tp2 fp1 F1 .8; 0.32 -> tp1 fp1 F1 .5; 0.37 -> tp1 fp0 F1 .667; 0.5 -> 0
    # b has no positive: nothing to fit, it keeps 0.5
    assert got == {"a": 0.2, "b": 0.5}
    tied = best_thresholds(torch.tensor([[0.2], [0.8]]), torch.tensor([[0.0], [1.0]]), ["a"], grid=[0.3, 0.4, 0.5, 0.6, 0.7])
    assert tied == {"a": 0.5}  # every grid value separates them: the median of the tie


def test_fit_thresholds_maximizes_each_labels_validation_f1(multi_learn, tmp_path: Path) -> None:
    fitted = ql.fit_thresholds(multi_learn)
    assert set(fitted) == {"3", "7"} and all(0.05 <= t <= 0.95 for t in fitted.values())
    preds, targets = multi_learn.get_preds()
    probs = preds.sigmoid()

    def label_f1(j: int, t: float) -> float:
        p, y = probs[:, j] > t, targets[:, j] > 0.5
        tp = (p & y).sum().item()
        return 2 * tp / (p.sum().item() + y.sum().item())

    grid = [round(0.05 + 0.01 * i, 2) for i in range(91)]
    for j, c in enumerate("37"):
        best = max(label_f1(j, t) for t in grid)
        assert label_f1(j, fitted[c]) == pytest.approx(best) and best >= label_f1(j, 0.5)
    model = ql.load(multi_learn.export(tmp_path / "model", thresh=fitted))
    assert model.thresholds() == fitted
    with pytest.raises(ql.ConfigError, match="multi-label"):
        ql.fit_thresholds(type("L", (), {"kind": "single"})())


def test_parse_thresh_for_the_command_line() -> None:
    assert parse_thresh("0.3") == 0.3
    assert parse_thresh("cat=0.3, sea lion=0.6") == {"cat": 0.3, "sea lion": 0.6}
    for bad in ("high", "cat=x", "=0.3"):
        with pytest.raises(ql.ConfigError, match="--thresh"):
            parse_thresh(bad)


# ---- regression ---------------------------------------------------------------------------------------------
def test_regression_learns_well_below_the_mean_baseline(reg_learn, mosaics: Path, tmp_path: Path) -> None:
    assert reg_learn.dls.kind == "regression" and reg_learn.dls.vocab is None
    preds, targets = reg_learn.get_preds()
    train_mean = reg_learn.dls.train.targets.mean()
    baseline = (targets - train_mean).pow(2).mean().sqrt().item()  # predict the training mean: ~1.4
    metrics = reg_learn.validate()
    assert metrics["rmse"] < 0.6 * baseline, (metrics, baseline)
    assert metrics["mae"] < 0.6 * (targets - train_mean).abs().mean().item()

    model = ql.load(reg_learn.export(tmp_path / "model"))
    got = model.predict(reg_learn.dls.valid_paths)
    assert all(isinstance(p.label, float) for p in got)
    np.testing.assert_allclose([p.label for p in got], preds.numpy(), atol=1e-3)
    with pytest.raises(ql.ConfigError, match="multi-label"):
        reg_learn.export(tmp_path / "bad", thresh=0.3)
    with pytest.raises(ql.ConfigError, match="multi-label"):
        model.predict(reg_learn.dls.valid_paths[:1], thresh=0.3)

    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "model"), "--data", str(mosaics.parent / "valid.csv"),
                                 "--target", "sevens", "--format", "json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert set(ev) == {"n", "metrics"} and set(ev["metrics"]) == {"loss", "rmse", "mae"} and ev["n"] == N_VALID
    ev = ev["metrics"]
    assert ev["rmse"] == pytest.approx(metrics["rmse"], abs=1e-3) and ev["mae"] == pytest.approx(metrics["mae"], abs=1e-3)


# ---- the command line ---------------------------------------------------------------------------------------
def test_cli_train_then_predict_with_thresholds(mosaics: Path, tmp_path: Path, env) -> None:
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(mosaics), "--target", "labels", "--size", str(SIZE),
                                 "--epochs", "1", "--freeze-epochs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert (config["kind"], config["classes"]) == ("multi", ["3", "7"])
    assert set(json.loads((out / "metrics.json").read_text())["valid"]) == {"loss", "accuracy_multi", "f1"}

    model = ql.load(out)
    valid = mosaics.parent / "valid.csv"
    paths = [mosaics.parent / n for n in pd.read_csv(valid).image]
    for option, thresh in (("0.3", 0.3), ("0.97", 0.97), ("3=0.99,7=0.05", {"3": 0.99, "7": 0.05})):
        r = CliRunner().invoke(app, ["predict", str(out), str(valid), "--thresh", option, "--format", "json"])
        assert r.exit_code == 0, r.output
        rows = json.loads(r.stdout)
        expected = model.predict(paths, thresh=thresh)
        assert len(rows) == N_VALID and rows[0]["labels"] in ("3", "7", "3 7")  # the CSV's own columns are kept
        assert [row["prediction"] for row in rows] == [";".join(p.label) for p in expected], option  # labels joined by ;
        assert "probability" not in rows[0] and {"prob_3", "prob_7"} <= set(rows[0])

    r = CliRunner().invoke(app, ["predict", str(out), str(valid), "--thresh", "9=0.3"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "--thresh: label '9' is not one of the model's labels: 3, 7" in r.stderr
    r = CliRunner().invoke(app, ["predict", str(out), str(valid), "--thresh", "often"])
    assert r.exit_code == 1 and "--thresh 'often'" in r.stderr
