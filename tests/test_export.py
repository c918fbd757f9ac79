"""Model directories and the three-line API: export -> load predicts exactly as the learner validated,
on any input type, without pickles and without the training data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import quicklearn as ql
from quicklearn.serving.folder import FORMAT_VERSION
from quicklearn.serving.predictor import Prediction

PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(mnist_tiny: Path, tmp_path_factory, env):
    """A learner trained one epoch on a copy of part of mnist-tiny (random init, 32 px) and its exported folder."""
    return _train(mnist_tiny, tmp_path_factory.mktemp("export"))


def _train(mnist_tiny: Path, root: Path):
    data = root / "data"
    for split, n in (("train", 32), ("valid", 16)):
        for label in ("3", "7"):
            (data / split / label).mkdir(parents=True)
            for f in sorted((mnist_tiny / split / label).glob("*.png"))[:n]:
                shutil.copy(f, data / split / label / f.name)
    learn = ql.vision_learner(data, weights=None, size=32, progress=False)
    learn.fit_one_cycle(1, 1e-2)
    model_dir = learn.export(root / "model")
    return learn, model_dir, data


def _softmax_preds(learn) -> torch.Tensor:
    return learn.get_preds()[0].softmax(1)


def test_loaded_model_predicts_exactly_as_the_learner(trained) -> None:
    learn, model_dir, _ = trained
    expected = _softmax_preds(learn)
    model = ql.load(model_dir)
    assert model.classes == ["3", "7"] and model.kind == "single"
    preds = model.predict(learn.dls.valid_paths)
    assert isinstance(preds, list) and len(preds) == len(expected) == 32
    probs = torch.tensor([[p.probs[c] for c in model.classes] for p in preds])
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)
    assert [p.label for p in preds] == [model.classes[i] for i in expected.argmax(1)]
    assert all(p.probability == pytest.approx(max(p.probs.values())) for p in preds)


def test_predict_accepts_paths_pil_images_and_tensors(trained) -> None:
    learn, model_dir, _ = trained
    model = ql.load(model_dir)
    path = learn.dls.valid_paths[0]
    ref = model.predict(path)
    assert isinstance(ref, Prediction) and ref.label in model.classes
    assert abs(sum(ref.probs.values()) - 1) < 1e-5

    with Image.open(path) as im:
        pil = im.copy()  # grayscale (mode L), as mnist is
    rgb = torch.from_numpy(np.asarray(pil.convert("RGB")).copy()).permute(2, 0, 1)
    inputs = {
        "str path": str(path),
        "PIL image": pil,
        "uint8 (3,H,W)": rgb,
        "uint8 (1,H,W)": rgb[:1],
        "uint8 (H,W)": rgb[0],
        "float (3,H,W) in [0,1]": rgb.float() / 255,
    }
    for what, item in inputs.items():
        got = model.predict(item)
        assert got.label == ref.label, what
        for c in model.classes:
            assert got.probs[c] == pytest.approx(ref.probs[c], abs=1e-6), what

    batch = model.predict([path, pil, rgb, rgb.float() / 255])  # a list is predicted as one batch
    assert isinstance(batch, list) and len(batch) == 4
    assert all(b.probs == pytest.approx(ref.probs, abs=1e-6) for b in batch)
    assert model.predict([]) == []
    with pytest.raises(ql.DataError, match="not-there.png"):
        model.predict(path.parent / "not-there.png")


def test_model_folder_has_no_pickle_and_loads_without_the_training_data(trained, tmp_path: Path) -> None:
    learn, model_dir, data = trained
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors"]
    for p in model_dir.iterdir():
        assert p.read_bytes()[:1] != b"\x80", f"{p.name} looks like a pickle"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION and config["quicklearn_version"] == ql.__version__
    assert config["classes"] == ["3", "7"] and config["pipeline"]["size"] == 32
    state = load_file(str(model_dir / "model.safetensors"))
    assert state.keys() == learn.model.state_dict().keys()

    images = [Image.open(p).copy() for p in learn.dls.valid_paths]
    expected = _softmax_preds(learn)
    moved = tmp_path / "elsewhere"
    shutil.move(str(data), moved)  # no training data where it was
    try:
        copy = shutil.copytree(model_dir, tmp_path / "model-copy")  # and the model folder moved too
        preds = ql.load(copy).predict(images)
        probs = torch.tensor([[p.probs[c] for c in ("3", "7")] for p in preds])
        torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)
    finally:
        shutil.move(str(moved), data)


def test_newer_format_version_is_refused(trained, tmp_path: Path) -> None:
    _, model_dir, _ = trained
    newer = shutil.copytree(model_dir, tmp_path / "newer")
    config = json.loads((newer / "config.json").read_text())
    config["format_version"] = FORMAT_VERSION + 1
    config["quicklearn_version"] = "9.9.0"
    (newer / "config.json").write_text(json.dumps(config))
    with pytest.raises(ql.QuicklearnError, match=r"quicklearn 9\.9\.0 in a newer format; upgrade"):
        ql.load(newer)


def test_not_a_model_folder(tmp_path: Path, trained) -> None:
    with pytest.raises(ql.QuicklearnError, match="not a quicklearn model directory"):
        ql.load(tmp_path)
    with pytest.raises(ql.QuicklearnError, match="not a quicklearn model directory"):
        ql.load(tmp_path / "missing")
    half = shutil.copytree(trained[1], tmp_path / "half")
    (half / "model.safetensors").unlink()
    with pytest.raises(ql.QuicklearnError, match=r"needs config\.json and model\.safetensors"):
        ql.load(half)


def test_wrong_weights_for_the_config_are_a_clear_error(trained, tmp_path: Path) -> None:
    other = shutil.copytree(trained[1], tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    config["model"]["n_out"] = 5
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ql.QuicklearnError, match="cannot rebuild the model"):
        ql.load(other)


def test_show_results_writes_a_png(trained, tmp_path: Path) -> None:
    learn = trained[0]
    path = learn.show_results(tmp_path / "results.png", n=6)
    assert Path(path).read_bytes()[:8] == PNG


# ---- the three-line API ---------------------------------------------------------------------------
def test_three_lines_train_a_model(tiny_folder: Path, tmp_path: Path) -> None:
    learn = ql.vision_learner(tiny_folder, weights=None, size=32)
    history = learn.fine_tune(1)
    assert [h["stage"] for h in history] == [0, 1]  # one frozen epoch, then one unfrozen
    assert 0.0 <= learn.validate()["accuracy"] <= 1.0
    pred = ql.load(learn.export(tmp_path / "model")).predict(next(tiny_folder.rglob("*.png")))
    assert pred.label in ("blue", "green", "red")


def test_mnist_tiny_is_learned_well_above_chance(mnist_tiny: Path) -> None:
    learn = ql.vision_learner(mnist_tiny, weights=None, size=32, arch="resnet18", progress=False)
    assert (learn.dls.train.n, learn.dls.valid.n) == (709, 699)  # train/ and valid/ folders; test/ is left out
    learn.fit_one_cycle(2, 1e-2)
    assert learn.validate()["accuracy"] > 0.8  # chance is 0.5; this run reaches ~0.98
