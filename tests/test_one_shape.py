"""One shape for every task (issue 18): the same prediction columns and evaluate result, the same refusal of an
option that belongs to another task, the data checked before a run is announced, class weights for every
classifier, and help text that shows what it says."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from tests.conftest import write_image

ARCH = "resnet10t"
REFUSAL = re.compile(r"^error: (--[\w-]+) is for (\w+(?: and \w+)*) \(--task \w+\); this is a (\w+) run\.$")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _table(n=80, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "color": rng.choice(["red", "green", "blue"], n), "noise": rng.normal(size=n),
                         "y": np.where(x + 0.3 * rng.normal(size=n) > 0, "pos", "neg"), "is_valid": np.arange(n) % 4 == 0})


def _texts(n=60) -> pd.DataFrame:
    words = {"pos": "great wonderful moving".split(), "neg": "awful boring dull".split()}
    rows = [{"text": f"the film was {words[lab][i % 3]} and {words[lab][(i + 1) % 3]}", "label": lab, "is_valid": i % 5 == 0}
            for i in range(n // 2) for lab in ("pos", "neg")]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, env, tiny_bert):
    """One model folder per task, trained through `quicklearn train` on data with an is_valid column, and the CSV
    of exactly its validation rows."""
    root = tmp_path_factory.mktemp("one-shape")
    images = root / "images"
    for name, c in {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}.items():
        for i in range(6):
            write_image(images / name / f"{name}_{i}.png", size=(24 + i, 20), color=c)
    table, texts = _table(), _texts()
    table.to_csv(root / "table.csv", index=False)
    table[table.is_valid].drop(columns="is_valid").to_csv(root / "table_valid.csv", index=False)
    texts.to_csv(root / "texts.csv", index=False)
    texts[texts.is_valid].drop(columns="is_valid").to_csv(root / "texts_valid.csv", index=False)
    jobs = {
        "vision": ["--data", images, "--arch", ARCH, "--weights", "none", "--size", "16", "--epochs", "1", "--freeze-epochs", "0"],
        "tabular": ["--data", root / "table.csv", "--target", "y", "--epochs", "3"],
        "text": ["--data", root / "texts.csv", "--task", "text", "--target", "label", "--arch", tiny_bert, "--epochs", "1",
                 "--freeze-epochs", "0", "--max-len", "16"],
    }
    for task, args in jobs.items():
        r = invoke("train", *args, "--out", root / task)
        assert r.exit_code == 0, r.output
    return root


@pytest.mark.parametrize("task, data, target", [("tabular", "table_valid.csv", "y"), ("text", "texts_valid.csv", "label")])
def test_evaluate_on_exactly_the_validation_rows_gives_metrics_json_valid(runs, task, data, target):
    r = invoke("evaluate", runs / task, "--data", runs / data, "--target", target, "--format", "json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    valid = json.loads((runs / task / "metrics.json").read_text())["valid"]
    assert set(got) == {"n", "metrics"} and got["n"] == len(pd.read_csv(runs / data))
    assert set(got["metrics"]) == set(valid)
    for name, value in valid.items():
        assert got["metrics"][name] == pytest.approx(value, abs=1e-6), name


def _expected_columns(task: str, inputs: pd.DataFrame | None, classes: list[str]) -> list[str]:
    own = ["path"] if inputs is None else list(inputs.columns)
    return [*own, "prediction", "probability", *[f"prob_{c}" for c in classes]]


@pytest.mark.parametrize("task", ["vision", "tabular", "text"])
def test_predict_writes_the_same_columns_as_csv_and_json_for_every_task(runs, task, tmp_path):
    model = ql.load(runs / task)
    if task == "vision":
        inputs, source = runs / "images" / "red", None
    else:
        frame = pd.read_csv(runs / ("table_valid.csv" if task == "tabular" else "texts_valid.csv")).drop(columns=["y", "label"], errors="ignore")
        frame.to_csv(tmp_path / "new.csv", index=False)
        inputs, source = tmp_path / "new.csv", frame
    want = _expected_columns(task, source, model.classes)
    r = invoke("predict", runs / task, inputs, "--format", "csv", "--out", tmp_path / "out.csv")
    assert r.exit_code == 0, r.output
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == want
    assert np.allclose(out[[f"prob_{c}" for c in model.classes]].sum(axis=1), 1.0, atol=1e-5)
    assert (out["probability"] == out[[f"prob_{c}" for c in model.classes]].max(axis=1)).all()
    r = invoke("predict", runs / task, inputs, "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == len(out) and all(list(row) == want for row in rows)
    assert [row["prediction"] for row in rows] == out["prediction"].astype(type(rows[0]["prediction"])).tolist()
    # Python gives the same: one item -> a Prediction, a list -> a list, a table -> the frame
    if source is not None:
        frame = model.predict(source)
        assert list(frame.columns) == want and frame["prediction"].tolist() == out["prediction"].tolist()
        first = source.iloc[0].to_dict() if task == "tabular" else source.iloc[0]["text"]
        assert isinstance(model.predict(first), ql.Prediction) and model.predict([first])[0].label == frame["prediction"][0]


def test_an_input_column_named_like_a_prediction_column_is_refused(runs, tmp_path):
    frame = pd.read_csv(runs / "table_valid.csv").assign(probability=0.5)
    frame.to_csv(tmp_path / "clash.csv", index=False)
    r = invoke("predict", runs / "tabular", tmp_path / "clash.csv")
    assert r.exit_code == 1 and "column 'probability' has the name of a prediction column" in r.stderr


def test_regression_predictions_are_the_prediction_column_alone(tmp_path):
    frame = _table().assign(y=lambda f: 3 * f.x + 1)
    learn = ql.tabular_learner(frame, "y", progress=False)
    learn.fit_one_cycle(2, 1e-2)
    model = ql.load(learn.export(tmp_path / "m"))
    out = model.predict(frame.drop(columns="y"))
    assert list(out.columns) == [*frame.drop(columns="y").columns, "prediction"]


@pytest.mark.parametrize("task, option", [("vision", ["--cat", "x"]), ("tabular", ["--size", "64"]), ("text", ["--mixup", "0.4"]),
                                          ("tabular", ["--text-col", "text"]), ("vision", ["--date-parts"])])
def test_an_option_of_another_task_is_refused_in_the_same_one_line(runs, task, option, tiny_bert):
    data = {"vision": ["--data", runs / "images"], "tabular": ["--data", runs / "table.csv", "--target", "y"],
            "text": ["--data", runs / "texts.csv", "--task", "text", "--target", "label", "--arch", tiny_bert]}[task]
    r = invoke("train", *data, *option, "--out", runs / "refused")
    assert r.exit_code == 1 and not (runs / "refused").exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and (m := REFUSAL.match(lines[0])), r.stderr
    assert m.group(1) == option[0] and m.group(3) == task
    assert "training" not in r.stdout  # refused before anything is announced


@pytest.mark.parametrize("task, args, needle", [
    ("tabular", ["--target", "Survivd"], "target column 'Survivd' not found"),
    ("tabular", ["--target", "y", "--cat", "colour"], "feature column 'colour' not found"),
    ("text", ["--task", "text", "--target", "label", "--text-col", "body"], "text column 'body' not found"),
])
def test_the_data_is_checked_before_the_run_is_announced(runs, task, args, needle, tiny_bert):
    data = runs / ("table.csv" if task == "tabular" else "texts.csv")
    extra = ["--arch", tiny_bert] if task == "text" else []
    r = invoke("train", "--data", data, *args, *extra, "--out", runs / "unannounced")
    assert r.exit_code == 1 and needle in r.stderr, r.stderr
    assert "training" not in r.stdout and "fine-tuning" not in r.stdout


def test_class_weights_balanced_for_every_classifier(tmp_path, tiny_bert):
    images = tmp_path / "images"
    for name, count in (("red", 9), ("blue", 3)):
        for i in range(count):
            write_image(images / name / f"{i}.png", size=(20, 20), color=(200, 20, 20) if name == "red" else (20, 20, 200))
    learn = ql.vision_learner(images, arch=ARCH, weights=None, size=16, bs=4, progress=False, class_weights="balanced",
                              splitter="random", valid_pct=0.25)
    counts = np.bincount(learn.dls.train.targets.numpy(), minlength=2)
    want = counts.sum() / (2 * counts)
    assert learn.loss_func.weight.tolist() == pytest.approx(want.tolist())
    texts = _texts(40).iloc[:34]  # 20 pos, 14 neg
    tl = ql.text_learner(texts, text="text", y="label", arch=str(tiny_bert), bs=8, progress=False, class_weights="balanced")
    counts = np.bincount(tl.dls.train.targets.numpy(), minlength=2)
    assert tl.loss_func.weight.tolist() == pytest.approx((counts.sum() / (2 * counts)).tolist())
    with pytest.raises(ql.ConfigError, match="balanced' is for classifiers"):
        ql.tabular_learner(_table().assign(y=lambda f: f.x * 2), "y", class_weights="balanced", progress=False)
    r = invoke("train", "--data", images, "--arch", ARCH, "--weights", "none", "--size", "16", "--epochs", "1",
               "--freeze-epochs", "0", "--class-weights", "1,3", "--out", tmp_path / "weighted")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "weighted" / "config.json").read_text())["recipe"]["training"]["class_weights"] == [1.0, 3.0]


def test_show_results_show_batch_and_lr_find_for_a_table(runs, tmp_path):
    learn = ql.tabular_learner(runs / "table.csv", "y", progress=False)
    learn.fit_one_cycle(1, 1e-2)
    path = learn.show_results(tmp_path / "results", n=5)
    shown = pd.read_csv(path)
    assert path.suffix == ".csv" and list(shown.columns) == ["item", "actual", "predicted", "probability"] and len(shown) == 5
    assert shown["item"].str.contains("color=").all() and set(shown["actual"]) <= {"pos", "neg"}
    r = invoke("show-batch", "--data", runs / "table.csv", "--target", "y", "--n", "3")
    assert r.exit_code == 0, r.output
    assert len([ln for ln in r.stdout.splitlines() if ln.startswith(("[pos]", "[neg]"))]) == 3
    r = invoke("lr-find", "--data", runs / "table.csv", "--target", "y", "--out", tmp_path / "lr.png")
    assert r.exit_code == 0 and "suggested learning rate" in r.stdout, r.output
    r = invoke("show-batch", "--data", runs / "table.csv", "--target", "y", "--size", "32")
    assert r.exit_code == 1 and "--size is for images and segmentation (--task vision); this is a tabular run." in r.stderr


def test_train_help_shows_brackets_and_each_tasks_defaults():
    r = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    text = re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", r.stdout))
    assert 'pip install "quicklearn[tensorboard]"' in text
    epochs = re.search(r"\[default: ([^\]]*3 for vision[^\]]*)\]", text)  # each task's own, in task order
    shown = set(epochs[1].split(", ")) if epochs else set()
    assert {"3 for vision", "2 for text", "auto for tabular", "auto for collab"} <= shown, text
    assert "Images (--task vision)" in text and "Tables (--task tabular)" in text and "Texts (--task text)" in text
    assert not re.search(r"\w \.(?:\s|$)", text)  # no "[default: ...]" eaten by markup, leaving " ." behind
