"""Never lose work: a real `quicklearn train` killed (SIGKILL) at named points resumes to exactly the metrics of an
uninterrupted run; a NaN loss keeps the last good checkpoint; GPU out-of-memory is one clear line; --resume's policy.

The kill points are the test hooks of quicklearn/core/faults.py (QUICKLEARN_TEST_KILL_AT=<point>[:n]). Each subprocess
pays ~8 s of imports, so the kill points are one chain: each --resume run is itself killed at the next point, and
after every kill the folder's files are checked (loadable, history equal to the reference's first epochs).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from quicklearn_cli.app import app
from safetensors.torch import load_file
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.core.errors import TrainingError
from quicklearn.core.faults import KILL_VAR, OOM_VAR, kill_point
from quicklearn.core.fileio import is_temp_file, write_text

pytestmark = pytest.mark.usefixtures("one_thread")

N_TRAIN, N_VALID, BS = 16, 8, 8  # per class: 4 training batches per epoch, one validation batch of 16
TRAIN = ["--size", "16", "--weights", "none", "--arch", "resnet10t", "--bs", str(BS), "--seed", "0", "--lr", "0.03"]
EPOCHS = ["--freeze-epochs", "1", "--epochs", "2"]  # 3 epochs (frozen 0, unfrozen 0 and 1): 3 checkpoints


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The subprocesses' environment: isolated cache, offline, one thread (the same for every run: same numerics)."""
    env = {k: v for k, v in os.environ.items() if k not in (KILL_VAR, OOM_VAR)}
    env.update(QUICKLEARN_CACHE=str(tmp_path_factory.getbasetemp() / "ql-cache"), QUICKLEARN_OFFLINE="1",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def data(mnist_tiny: Path, tmp_path_factory) -> Path:
    """A copy of part of mnist-tiny: train/ and valid/ folders of 3s and 7s."""
    root = tmp_path_factory.mktemp("mnist-kill")
    for split, n in (("train", N_TRAIN), ("valid", N_VALID)):
        for label in ("3", "7"):
            (root / split / label).mkdir(parents=True)
            for f in sorted((mnist_tiny / split / label).glob("*.png"))[:n]:
                shutil.copy(f, root / split / label / f.name)
    return root


def train(data: Path, out: Path, env: dict, *extra: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it (killed at `kill_at` when given)."""
    exe = Path(sys.executable).parent / "quicklearn"
    run_env = {**env, KILL_VAR: kill_at} if kill_at else env
    return subprocess.run([str(exe), "train", "--data", str(data), *TRAIN, *EPOCHS, "--out", str(out), *extra],
                          capture_output=True, text=True, env=run_env, timeout=300)


@pytest.fixture(scope="module")
def reference(data: Path, env: dict, tmp_path_factory) -> Path:
    """One uninterrupted run of the same seed, shared by the module."""
    out = tmp_path_factory.mktemp("reference") / "run"
    r = train(data, out, env)
    assert r.returncode == 0, r.stderr
    return out


def without_time(history: list[dict]) -> list[dict]:
    """History rows minus time_s, the one value that differs between two runs of the same seed."""
    return [{k: v for k, v in row.items() if k != "time_s"} for row in history]


def assert_nothing_corrupt(out: Path) -> dict[str, object]:
    """Every file in a run folder loads; atomic_path's temporary files are the only other thing allowed.
    Returns what was loaded, by file name."""
    loaded: dict[str, object] = {}
    for p in sorted(out.iterdir()) if out.exists() else []:
        if is_temp_file(p):
            continue
        if p.name == "checkpoint.pt":
            ck = torch.load(p, weights_only=True)
            assert {"model", "opt", "stage", "epoch", "history"} <= ck.keys()
            loaded[p.name] = ck
        elif p.suffix == ".safetensors":
            loaded[p.name] = load_file(p)
        elif p.suffix == ".json":
            loaded[p.name] = json.loads(p.read_text())
        elif p.suffix == ".csv":
            loaded[p.name] = list(csv.DictReader(p.read_text().splitlines()))
        elif p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
        else:
            pytest.fail(f"unexpected file in the run folder after a kill: {p.name}")
    return loaded


# The chain: (kill point, what the killed run did, epochs in checkpoint.pt after the kill, a note it printed)
CHAIN = [
    ("batch:3", "fresh run, 3rd batch of the frozen epoch: before the first checkpoint", 0, ""),
    ("rename:checkpoint.pt:1", "--resume of an empty folder starts over; killed between the 1st checkpoint's temp "
     "file and its rename", 0, ""),
    ("validate:2", "--resume of a first-epoch run starts over; killed validating unfrozen epoch 1", 1,
     "starting again from the beginning"),
    ("batch:6", "--resume from frozen epoch 1; killed at batch 2 of unfrozen epoch 2 (mid-epoch)", 2, ""),
    ("rename:checkpoint.pt:1", "--resume from unfrozen epoch 1; killed between the last checkpoint's temp file and "
     "its rename", 2, ""),
    ("export", "--resume from the last checkpoint: no epoch left; killed between model.safetensors and config.json", 3, ""),
]


def test_killed_at_every_point_then_resumed_gives_exactly_the_uninterrupted_run(data, env, reference, tmp_path):
    ref_metrics = json.loads((reference / "metrics.json").read_text())
    ref_history = without_time(ref_metrics["history"])
    assert len(ref_history) == 3
    out = tmp_path / "run"
    for step, (point, what, n_saved, note) in enumerate(CHAIN):
        r = train(data, out, env, *(["--resume"] if step else []), kill_at=point)
        assert r.returncode == -signal.SIGKILL, f"{point} ({what}) was not reached: rc {r.returncode}\n{r.stderr}"
        assert note in r.stderr and "Traceback" not in r.stderr, (point, r.stderr)
        files = assert_nothing_corrupt(out)
        ck = files.get("checkpoint.pt")
        assert (len(without_time(json.loads(ck["history"]))) if ck else 0) == n_saved, (point, what)
        if ck:  # the checkpoint holds exactly the reference's first epochs
            assert without_time(json.loads(ck["history"])) == ref_history[:n_saved], (point, what)
        if "history.json" in files:  # written before the checkpoint, so at most one epoch ahead of it
            on_disk = without_time(files["history.json"])
            assert on_disk == ref_history[: len(on_disk)] and len(on_disk) - n_saved in (0, 1), (point, what)
        if point.startswith("rename:"):
            assert any(is_temp_file(p) for p in out.iterdir()), "the kill was between the write and the rename"
        if point == "export":  # the weights were renamed into place, config.json never written
            assert "model.safetensors" in files and "config.json" not in files

    r = train(data, out, env, "--resume")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["valid"] == ref_metrics["valid"]
    assert without_time(metrics["history"]) == ref_history
    assert not (out / "checkpoint.pt").exists()
    assert not [p.name for p in out.iterdir() if is_temp_file(p)], "resume removes the killed runs' temporary files"
    assert_nothing_corrupt(out)
    ref_weights, weights = load_file(reference / "model.safetensors"), load_file(out / "model.safetensors")
    assert ref_weights.keys() == weights.keys() and all(torch.equal(ref_weights[k], weights[k]) for k in weights)
    config, ref_config = (json.loads((d / "config.json").read_text()) for d in (out, reference))
    assert {k: v for k, v in config.items() if k != "recipe"} == {k: v for k, v in ref_config.items() if k != "recipe"}
    model = ql.load(out)
    img = next((data / "valid" / "7").glob("*.png"))
    assert model.predict(img).probs == ql.load(reference).predict(img).probs


# ---- the output folder policy (refusing a non-empty --out and --overwrite are in test_cli.py) ----------------
def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(r, *needles: str) -> str:
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]  # after any epoch lines
    assert len(errors) == 1 and r.stderr.strip().endswith(errors[0]), r.stderr
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]


def test_resume_refuses_a_finished_run_and_a_folder_that_is_not_a_run(data, reference, tmp_path):
    finished = tmp_path / "finished"
    shutil.copytree(reference, finished)
    before = {p.name: p.read_bytes() for p in finished.iterdir()}
    r = invoke("train", "--data", data, *TRAIN, *EPOCHS, "--out", finished, "--resume")
    assert_one_line_error(r, str(finished), "already finished", "--overwrite")
    assert {p.name: p.read_bytes() for p in finished.iterdir()} == before  # untouched

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    (other / "history.json").write_text("[]")
    r = invoke("train", "--data", data, *TRAIN, *EPOCHS, "--out", other, "--resume")
    assert_one_line_error(r, str(other), "no checkpoint.pt", "'notes.txt'", "--overwrite")
    assert (other / "notes.txt").read_text() == "mine"


# ---- NaN / inf ------------------------------------------------------------------------------------------
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    out = tmp_path / "nan"
    # lr 1e4: AdamW multiplies the weights by |1 - lr * wd| = 99 per step at the peak; probed: the largest weight is
    # 2e23 after the frozen epoch, 3e34 after unfrozen epoch 1, inf/NaN in epoch 2 of 3 (lr 1e3 never overflows,
    # 3e4 after unfrozen epoch 1): good epochs come first and are checkpointed, with slack on both sides
    r = invoke("train", "--data", data, *TRAIN[:-2], "--lr", "1e4", "--freeze-epochs", "1", "--epochs", "3", "--out", out)
    line = assert_one_line_error(r, "epoch", "lower --lr", str(out / "checkpoint.pt"), "--resume")
    assert re.search(r"(the loss became (nan|inf|-inf) at (frozen )?epoch \d, batch \d of 4|"
                     r"(the validation loss|the weights \S+) became \S+ after (frozen )?epoch \d)", line), line
    assert not (out / "model.safetensors").exists() and not (out / "metrics.json").exists()
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    history = json.loads(ck["history"])
    assert 1 <= len(history) < 4 and f"after {len(history)} epochs" in line
    assert (ck["stage"], ck["epoch"]) == (history[-1]["stage"], history[-1]["epoch"])  # the last finished epoch
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert json.loads((out / "history.json").read_text()) == history  # the diverged epoch was never recorded


# ---- GPU out of memory ----------------------------------------------------------------------------------
class _OOMAtBatch(ql.Callback):
    def on_batch_begin(self, batch, logs):
        if batch == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_names_the_batch_size_and_a_smaller_one(data, tmp_path, monkeypatch):
    learn = ql.vision_learner(data, arch="resnet10t", weights=None, size=16, bs=BS, progress=False, path=tmp_path,
                              cbs=[_OOMAtBatch()])
    with pytest.raises(TrainingError) as e:
        learn.fit(1)
    msg = str(e.value)
    assert "out of GPU memory at epoch 1, batch 3 of 4" in msg and f"batch size {BS}" in msg
    assert f"--bs {BS // 2}" in msg and "--bs auto" in msg and "No epoch had finished" in msg
    assert e.value.__context__ is None  # raised after the OOM was handled: its frames (the batch's tensors) are freed

    learn = ql.vision_learner(data, arch="resnet10t", weights=None, size=16, bs=BS, progress=False)
    monkeypatch.setenv(OOM_VAR, "validate")  # the test hook raises torch.cuda.OutOfMemoryError in validation
    with pytest.raises(TrainingError, match=rf"while validating, batch 1 \(batch size {2 * BS}; the training "
                                            rf"batch size is {BS}.*--bs {BS // 2}"):
        learn.fit(1)


@pytest.mark.parametrize("point, where", [("batch", "at frozen epoch 1, batch 1 of 4"), ("validate", "while validating")])
def test_out_of_memory_through_the_cli_is_one_line(data, tmp_path, monkeypatch, point, where):
    monkeypatch.setenv(OOM_VAR, point)
    r = invoke("train", "--data", data, *TRAIN, *EPOCHS, "--out", tmp_path / "run")
    assert_one_line_error(r, f"out of GPU memory {where}", f"--bs {BS // 2}", "--bs auto")


# ---- the test hooks themselves --------------------------------------------------------------------------
def test_fault_points_fire_only_when_named_and_at_the_nth_time(monkeypatch):
    point = f"probe-{uuid.uuid4().hex}"  # counts are per process: a name of its own
    monkeypatch.delenv(KILL_VAR, raising=False)
    monkeypatch.delenv(OOM_VAR, raising=False)
    kill_point(point)  # unset: nothing (and not counted)
    monkeypatch.setenv(OOM_VAR, f"{point}:3")
    kill_point("probe-other")
    kill_point(point)
    kill_point(point)
    with pytest.raises(torch.cuda.OutOfMemoryError, match="simulated"):
        kill_point(point)
    kill_point(point)  # only the 3rd time


def test_a_fault_between_write_and_rename_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "probe.json"
    write_text(target, "old")
    monkeypatch.setenv(OOM_VAR, "rename:probe.json")  # no count: every time; a point name may hold a colon
    for _ in range(2):
        with pytest.raises(torch.cuda.OutOfMemoryError):
            write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["probe.json"]
