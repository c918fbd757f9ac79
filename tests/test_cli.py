"""The `quicklearn` command end to end: in-process (typer's CliRunner) and as the installed console script.

One small model is trained once per module (a copy of part of mnist-tiny, 32 px, random init, one epoch) and
shared by the predict/evaluate tests; user errors must be one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.config.schema import parse_recipe

FAST = ["--size", "32", "--weights", "none", "--epochs", "1", "--freeze-epochs", "0"]
PNG = b"\x89PNG\r\n\x1a\n"
N_TRAIN, N_VALID = 40, 30  # per class: 2 training batches of 32, 60 validation images


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist(mnist_tiny: Path, tmp_path_factory) -> Path:
    """A copy of part of mnist-tiny (train/ and valid/ per class) plus labels.csv for its valid images."""
    root = tmp_path_factory.mktemp("mnist-sub")
    rows = []
    for split, n in (("train", N_TRAIN), ("valid", N_VALID)):
        for label in ("3", "7"):
            (root / split / label).mkdir(parents=True)
            for f in sorted((mnist_tiny / split / label).glob("*.png"))[:n]:
                shutil.copy(f, root / split / label / f.name)
                if split == "valid":
                    rows.append({"name": f"{split}/{label}/{f.name}", "label": int(label)})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def quicklearn_exe() -> str:
    exe = Path(sys.executable).parent / "quicklearn"
    return str(exe) if exe.exists() else shutil.which("quicklearn")


def run_exe(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([quicklearn_exe(), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def assert_user_error(code: int, stderr: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def model_dir(mnist: Path, tmp_path_factory, env) -> Path:
    out = tmp_path_factory.mktemp("runs") / "model"
    r = invoke("train", "--data", mnist, *FAST, "--out", out)
    assert r.exit_code == 0, r.output
    return out


# ---- train ----------------------------------------------------------------------------------------
def test_train_writes_a_complete_model_folder(model_dir: Path, mnist: Path) -> None:
    assert {p.name for p in model_dir.iterdir()} >= {
        "model.safetensors", "config.json", "metrics.json", "history.csv", "training_curves.png"}
    assert not (model_dir / "checkpoint.pt").exists()
    assert (model_dir / "training_curves.png").read_bytes()[:8] == PNG

    config = json.loads((model_dir / "config.json").read_text())
    assert config["model"]["arch"] == ql.DEFAULT_ARCH
    assert config["classes"] == ["3", "7"] and config["kind"] == "single"
    assert config["quicklearn_version"] == ql.__version__
    pipe = config["pipeline"]
    assert pipe["size"] == 32 and len(pipe["normalize"]["mean"]) == 3 and len(pipe["normalize"]["std"]) == 3
    recipe = parse_recipe(config["recipe"])  # the recipe as run: valid, with the options given
    assert (recipe.data.path, recipe.transforms.size, recipe.model.weights) == (str(mnist), 32, "none")
    assert (recipe.fit.epochs, recipe.fit.freeze_epochs, recipe.output.out) == (1, 0, str(model_dir))

    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert set(metrics) == {"valid", "history", "wall_s"}
    assert set(metrics["valid"]) == {"accuracy", "loss"}
    assert 0.0 <= metrics["valid"]["accuracy"] <= 1.0 and metrics["valid"]["loss"] > 0
    assert metrics["wall_s"] > 0
    (last,) = metrics["history"]  # 0 frozen + 1 unfrozen epoch
    assert last["accuracy"] == metrics["valid"]["accuracy"] and last["valid_loss"] == metrics["valid"]["loss"]
    with open(model_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and {"train_loss", "valid_loss", "accuracy", "lr"} <= set(rows[0])


def test_train_refuses_a_non_empty_out_then_overwrite_replaces_it(mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    r = invoke("train", "--data", mnist, *FAST, "--out", out)
    assert_user_error(r.exit_code, r.stderr, "--overwrite", str(out))
    assert (out / "keep.txt").read_text() == "precious"

    r = invoke("train", "--data", mnist, *FAST, "--out", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_train_as_a_subprocess(mnist: Path, tmp_path: Path, env: dict) -> None:
    assert quicklearn_exe(), "the quicklearn console script is not installed"
    out = tmp_path / "model"
    r = run_exe("train", "--data", mnist, *FAST, "--arch", "resnet18", "--out", out, env=env)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for name in ("model.safetensors", "config.json", "metrics.json", "history.csv", "training_curves.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["model"]["arch"] == "resnet18"

    again = run_exe("train", "--data", mnist, *FAST, "--out", out, env=env)  # fails before any training
    assert_user_error(again.returncode, again.stderr, "not empty", "--overwrite")


def test_print_config_is_a_valid_recipe_with_the_options_given(mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "not-created"
    r = invoke("train", "--data", mnist, "--size", "48", "--epochs", "2", "--freeze-epochs", "0", "--lr", "0.01",
               "--arch", "resnet18", "--weights", "none", "--bs", "16", "--seed", "7", "--valid-pct", "0.3", "--out", out,
               "--print-config")
    assert r.exit_code == 0, r.output
    recipe = parse_recipe(yaml.safe_load(r.stdout))  # stdout is the YAML alone (notes go to stderr)
    assert recipe.task == "vision" and recipe.data.path == str(mnist)
    assert (recipe.transforms.size, recipe.model.arch, recipe.model.weights) == (48, "resnet18", "none")
    assert (recipe.fit.epochs, recipe.fit.freeze_epochs, recipe.fit.base_lr) == (2, 0, 0.01)
    assert (recipe.training.bs, recipe.training.seed, recipe.data.valid_pct) == (16, 7, 0.3)
    assert recipe.output.out == str(out) and not out.exists()


# ---- predict --------------------------------------------------------------------------------------
def _valid_images(mnist: Path) -> list[Path]:
    return sorted((mnist / "valid").rglob("*.png"))


def test_predict_one_image_as_table_json_and_csv(model_dir: Path, mnist: Path, monkeypatch) -> None:
    img = _valid_images(mnist)[0]
    expected = ql.load(model_dir).predict(img)

    monkeypatch.chdir(mnist)
    r = invoke("predict", model_dir, img.relative_to(mnist))
    assert r.exit_code == 0, r.output
    assert "prediction" in r.stdout and str(img.relative_to(mnist)) in r.stdout
    assert expected.label in r.stdout and f"{expected.probability:.3f}" in r.stdout
    monkeypatch.undo()

    r = invoke("predict", model_dir, img, "--format", "json")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["path"] == str(img) and row["prediction"] == expected.label
    assert row["probability"] == pytest.approx(expected.probability, abs=1e-6)

    r = invoke("predict", model_dir, img, "--format", "csv")  # long tmp paths must not be wrapped
    assert r.exit_code == 0, r.output
    (row,) = list(csv.DictReader(r.stdout.splitlines()))
    assert row["path"] == str(img) and row["prediction"] == expected.label


def test_predict_a_folder(model_dir: Path, mnist: Path) -> None:
    r = invoke("predict", model_dir, mnist / "valid", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["path"] for row in rows] == [str(p) for p in _valid_images(mnist)]
    assert {row["prediction"] for row in rows} <= {"3", "7"}


def test_predict_a_csv_appends_prediction_columns(model_dir: Path, mnist: Path) -> None:
    preds = mnist.parent / "preds.csv"
    r = invoke("predict", model_dir, mnist / "labels.csv", "--out", preds)
    assert r.exit_code == 0, r.output
    source, result = pd.read_csv(mnist / "labels.csv"), pd.read_csv(preds)
    # the input's own columns, then the prediction, its probability and one prob_<class> per class
    assert list(result.columns) == [*source.columns, "prediction", "probability", "prob_3", "prob_7"]
    assert (result["prob_3"] + result["prob_7"]).round(5).eq(1).all()
    pd.testing.assert_frame_equal(result[source.columns], source)
    assert set(result["prediction"].astype(str)) <= {"3", "7"}
    assert result["probability"].between(0.5, 1.0).all()


def test_predict_errors_are_one_line(model_dir: Path, tmp_path: Path) -> None:
    r = invoke("predict", tmp_path, "x.png")
    assert_user_error(r.exit_code, r.stderr, "not a quicklearn model directory")
    r = invoke("predict", model_dir, tmp_path / "missing.png")
    assert_user_error(r.exit_code, r.stderr, "missing.png")
    r = invoke("predict", model_dir, tmp_path, "--format", "xml")
    assert_user_error(r.exit_code, r.stderr, "--format")


# ---- evaluate -------------------------------------------------------------------------------------
def test_evaluate_reproduces_the_validation_metrics(model_dir: Path, mnist: Path) -> None:
    r = invoke("evaluate", model_dir, "--data", mnist / "valid", "--format", "json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)  # {"n": ..., "metrics": {...}}, the same shape for every task
    valid = json.loads((model_dir / "metrics.json").read_text())["valid"]
    assert set(got) == {"n", "metrics"} and got["n"] == 2 * N_VALID and set(got["metrics"]) == set(valid)
    assert got["metrics"]["accuracy"] == pytest.approx(valid["accuracy"], abs=1e-6)
    assert got["metrics"]["loss"] == pytest.approx(valid["loss"], rel=1e-4)

    r = invoke("evaluate", model_dir, "--data", mnist / "labels.csv", "--target", "label", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["metrics"]["accuracy"] == pytest.approx(valid["accuracy"], abs=1e-6)

    r = invoke("evaluate", model_dir, "--data", mnist / "valid")
    assert r.exit_code == 0 and "accuracy" in r.stdout


def test_evaluate_refuses_labels_the_model_does_not_know(model_dir: Path, mnist: Path, tmp_path: Path) -> None:
    shutil.copytree(mnist / "valid" / "3", tmp_path / "data" / "3")
    shutil.copytree(mnist / "valid" / "7", tmp_path / "data" / "8")
    r = invoke("evaluate", model_dir, "--data", tmp_path / "data")
    assert_user_error(r.exit_code, r.stderr, "'8'", "3, 7")
    r = invoke("evaluate", model_dir, "--data", mnist / "labels.csv")  # a CSV needs --target
    assert_user_error(r.exit_code, r.stderr, "--target")


# ---- recipes, info, weights -----------------------------------------------------------------------
def test_recipes_list_show_and_schema() -> None:
    r = invoke("recipes", "list")
    assert r.exit_code == 0, r.output
    for name in ("vision", "vision-fast-cpu", "vision-accurate", "tabular", "text"):
        assert name in r.stdout

    r = invoke("recipes", "show", "vision")
    assert r.exit_code == 0, r.output
    from quicklearn.config.files import find_recipe

    assert r.stdout == find_recipe("vision").read_text(encoding="utf-8")  # not re-wrapped: still valid YAML
    assert parse_recipe(yaml.safe_load(r.stdout)).task == "vision"

    r = invoke("recipes", "show", "visoin")
    assert_user_error(r.exit_code, r.stderr, "Did you mean 'vision'")

    r = invoke("recipes", "schema")
    assert r.exit_code == 0, r.output
    schema = json.loads(r.stdout)
    assert {"VisionRecipe", "TabularRecipe", "TextRecipe", "FitSection"} <= set(schema)
    assert "epochs" in schema["FitSection"]["properties"]


def test_info() -> None:
    r = invoke("info")
    assert r.exit_code == 0, r.output
    for needle in (ql.__version__, "torch", "device", "cache folder", "tf_efficientnet_lite0"):
        assert needle in r.stdout


def test_weights_list_and_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKLEARN_CACHE", str(tmp_path / "cache"))  # empty, whatever earlier tests cached
    r = invoke("weights", "list")
    assert r.exit_code == 0 and "no weights cached" in r.stdout
    import timm
    from safetensors.torch import save_file

    state = timm.create_model("test_efficientnet").state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    r = invoke("weights", "import", tmp_path / "w.safetensors", "--arch", "test_efficientnet")
    assert r.exit_code == 0, r.output
    r = invoke("weights", "list")
    assert r.exit_code == 0 and "test_efficientnet" in r.stdout
    r = invoke("weights", "import", tmp_path / "w.safetensors", "--arch", "resnet_18")
    assert_user_error(r.exit_code, r.stderr, "unknown architecture")


# ---- task inference -------------------------------------------------------------------------------
def test_task_inference_folder_and_image_csv_are_vision(mnist: Path) -> None:
    for data in (mnist, mnist / "labels.csv"):
        r = invoke("train", "--data", data, "--print-config")
        assert r.exit_code == 0, r.output
        assert "task: vision" in r.stderr
        assert yaml.safe_load(r.stdout)["task"] == "vision"


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_task_inference_picks_text_and_tabular(tmp_path: Path) -> None:
    review = "An unexpectedly moving film with a patient script, fine acting and a score that stays with you. " * 2
    text = _write(tmp_path / "reviews.csv", pd.DataFrame({"review": [review + str(i) for i in range(20)],
                                                          "label": ["pos", "neg"] * 10}))
    r = invoke("train", "--data", text, "--out", tmp_path / "text")
    assert "task: text" in r.stdout
    assert_user_error(r.exit_code, r.stderr, "text data needs its target column", "--target")
    assert not (tmp_path / "text").exists()
    numbers = _write(tmp_path / "numbers.csv", pd.DataFrame({"a": range(40), "b": [i * 0.5 for i in range(40)],
                                                             "y": [0, 1] * 20}))
    r = invoke("train", "--data", numbers, "--out", tmp_path / "tab")
    assert "task: tabular" in r.stdout
    assert_user_error(r.exit_code, r.stderr, "target", "--target")  # a table needs its target named
    assert not (tmp_path / "tab").exists()


def test_task_inference_ambiguous_csv_asks_for_task(tmp_path: Path) -> None:
    titles = [f"a title of medium length, number {i:04d}" for i in range(20)]
    medium = _write(tmp_path / "medium.csv", pd.DataFrame({"title": titles, "y": [0, 1] * 10}))
    r = invoke("train", "--data", medium)
    assert_user_error(r.exit_code, r.stderr, "'title'", "--task")
    r = invoke("train", "--data", tmp_path / "nope.csv")
    assert_user_error(r.exit_code, r.stderr, "nope.csv")


# ---- evaluate_model for every target kind ---------------------------------------------------------
def test_evaluate_model_multi_label_and_regression_reproduce_validate(tmp_path: Path) -> None:
    """On the validation rows, evaluate_model gives what the learner's own validate() gives, for each kind."""
    import numpy as np
    from PIL import Image

    from quicklearn.analysis.evaluate import evaluate_model

    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        color = ["red", "green", "blue"][i % 3]
        arr = np.zeros((20, 24 + i % 5, 3), np.uint8)
        arr[..., "rgb".index(color[0])] = 200
        arr = (arr + rng.integers(0, 40, arr.shape)).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
        rows.append({"file": f"{i}.png", "tags": color + (" warm" if color == "red" else ""),
                     "value": 10.0 * (i % 3) + 0.1 * i, "is_valid": i % 4 == 0})
    table = pd.DataFrame(rows)
    table.to_csv(tmp_path / "all.csv", index=False)
    table[table.is_valid].drop(columns="is_valid").to_csv(tmp_path / "valid.csv", index=False)

    # "red warm" always appears together, which reads as one label with a space: say multi-label explicitly
    for y, kind, names in (("tags", "multi", {"loss", "accuracy_multi", "f1"}), ("value", "regression", {"loss", "rmse", "mae"})):
        learn = ql.vision_learner(tmp_path / "all.csv", y=y, kind=kind, weights=None, size=32, arch="resnet18",
                                  progress=False)
        learn.fit(1, 1e-3)
        expected = learn.validate()
        got = evaluate_model(ql.load(learn.export(tmp_path / f"model-{y}")), tmp_path / "valid.csv", y=y)
        assert set(got) == {"n", "metrics"} and set(got["metrics"]) == names and got["n"] == 6
        for name in names:
            assert got["metrics"][name] == pytest.approx(expected[name], rel=1e-4, abs=1e-6), (y, name)

    bad = table.assign(tags=["purple"] + list(table.tags[1:]))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ql.DataError, match=r"label 'purple' .* not one of the model's classes: blue, green, red, warm"):
        evaluate_model(ql.load(tmp_path / "model-tags"), tmp_path / "bad.csv", y="tags")
    with pytest.raises(ql.DataError, match="predicts numbers.*needs numbers"):
        evaluate_model(ql.load(tmp_path / "model-value"), tmp_path / "bad.csv", y="tags")


def test_training_option_flags_reach_the_recipe_and_are_for_images_only(mnist: Path, tmp_path: Path) -> None:
    r = invoke("train", "--data", mnist, "--mixup", "0.4", "--cutmix", "1", "--ema", "0.998", "--progressive", "0.5",
               "--tensorboard", "--kind", "multi", "--print-config")
    assert r.exit_code == 0, r.output
    recipe = parse_recipe(yaml.safe_load(r.stdout))
    assert recipe.data.kind == "multi"
    t = recipe.training
    assert (t.mixup, t.cutmix, t.ema, t.progressive, recipe.output.tensorboard) == (0.4, 1.0, 0.998, 0.5, True)
    table = tmp_path / "t.csv"
    pd.DataFrame({"a": [1, 2, 3, 4], "y": [0, 1, 0, 1]}).to_csv(table, index=False)
    r = invoke("train", "--data", table, "--target", "y", "--ema", "0.99")
    assert_user_error(r.exit_code, r.stderr, "--ema is for images")
