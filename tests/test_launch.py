"""`quicklearn train --gpus N`: the torchrun command it builds, when it trains in-process or refuses, and one real
2-process CPU (gloo) run through the installed console script, which exercises the launcher and the
distributed core together.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_image
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.analysis.evaluate import evaluate_model
from quicklearn.core.errors import ConfigError
from quicklearn.core.launch import equivalent_command, launch, processes_for, torchrun_command

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--weights", "none", "--arch", "resnet10t", "--size", "16", "--epochs", "1", "--freeze-epochs", "0", "--bs", "8"]
COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def make_split_folder(root: Path) -> Path:
    """3 classes with train/ (6 each) and valid/ (3 each) folders of distinct sizes, so per-item losses differ."""
    for name, color in COLORS.items():
        for i in range(6):
            write_image(root / "train" / name / f"{i}.png", size=(20 + 2 * i, 18 + i), color=color)
        for i in range(3):
            write_image(root / "valid" / name / f"{i}.png", size=(17 + 5 * i, 30 - 3 * i), color=color)
    return root


@pytest.fixture()
def split_folder(tmp_path: Path) -> Path:
    return make_split_folder(tmp_path / "my data")  # a space: the arguments handed to torchrun must survive it


def quicklearn_exe() -> str:
    exe = Path(sys.executable).parent / "quicklearn"
    found = str(exe) if exe.exists() else shutil.which("quicklearn")
    assert found, "the quicklearn console script is not installed"
    return found


def assert_user_error(code: int, stderr: str, *needles: str) -> None:
    assert code == 1
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ---- the command ------------------------------------------------------------------------------------
def test_torchrun_command_keeps_every_argument_and_drops_gpus() -> None:
    argv = ["--data", "my data/imgs", "--gpus", "2", "--arch", "resnet10t", "--gpus=4", "--out", "o", "--lr", "0.001"]
    cmd = torchrun_command(3, argv, program=["--no-python", "quicklearn"])
    assert cmd == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "3",
                   "--no-python", "quicklearn", "train",
                   "--data", "my data/imgs", "--arch", "resnet10t", "--out", "o", "--lr", "0.001"]


def test_torchrun_command_runs_the_installed_script_by_default() -> None:
    cmd = torchrun_command(2, ["--data", "d"])
    assert cmd[:7] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python"]
    assert Path(cmd[7]).is_file() and Path(cmd[7]).name == "quicklearn"
    assert cmd[8:] == ["train", "--data", "d"]


def test_equivalent_command_is_quoted_for_the_shell() -> None:
    argv = ["--data", "my data/it's", "--gpus", "2", "--out", "runs/a"]
    line = equivalent_command(2, argv)
    assert line == ("torchrun --standalone --nproc_per_node 2 --no-python quicklearn train "
                    "--data 'my data/it'\"'\"'s' --out runs/a")
    assert shlex.split(line)[7:] == ["--data", "my data/it's", "--out", "runs/a"]


# ---- how many processes -----------------------------------------------------------------------------
@pytest.mark.parametrize(("gpus", "device", "cuda", "n", "says"), [
    ("1", None, 0, 1, "one process"),
    ("1", "cuda", 4, 1, "one process"),
    ("all", None, 0, 1, "no CUDA GPU"),
    ("all", None, 1, 1, "1 CUDA GPU"),
    ("all", "auto", 8, 8, "one per GPU"),
    ("4", "cuda", 8, 4, "NCCL"),
    ("2", "cpu", 0, 2, "gloo"),
    ("3", "CPU", 2, 3, "gloo"),
])
def test_processes_for(gpus, device, cuda, n, says) -> None:
    got, why = processes_for(gpus, device, cuda_count=cuda)
    assert got == n and says in why, why


@pytest.mark.parametrize(("gpus", "device", "cuda", "needles"), [
    ("2", None, 0, ["--device cpu", "torchrun --nproc_per_node 2"]),
    ("4", None, 2, ["only 2", "--gpus all"]),
    ("2", "cuda:1", 2, ["--device cuda:1", "LOCAL_RANK"]),
    ("2", "mps", 0, ["--device mps"]),
    ("0", None, 2, ["--gpus '0'", "'all'"]),
    ("two", None, 2, ["--gpus 'two'"]),
    ("all", "cpu", 0, ["--gpus 2"]),
])
def test_processes_for_refuses(gpus, device, cuda, needles) -> None:
    with pytest.raises(ConfigError) as e:
        processes_for(gpus, device, cuda_count=cuda)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


# ---- the CLI ----------------------------------------------------------------------------------------
def test_gpus_1_trains_in_this_process(split_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "one"
    r = CliRunner().invoke(app, ["train", "--gpus", "1", "--data", str(split_folder), *TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "--gpus 1: training in this one process" in r.stdout
    assert "torchrun" not in r.stdout and "data-parallel" not in r.stdout
    assert r.stdout.count("done in") == 1
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpus_2_without_cuda_is_a_one_line_error(split_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "two"
    r = CliRunner().invoke(app, ["train", "--gpus", "2", "--data", str(split_folder), *TINY, "--out", str(out)])
    assert_user_error(r.exit_code, r.stderr, "--gpus 2", "--device cpu", "torchrun --nproc_per_node 2")
    assert not out.exists()


def test_launch_returns_the_failing_exit_code(tmp_path: Path, capfd) -> None:
    """Both processes stop on a usage error (their exit code 2): torchrun, and so `launch`, return 1."""
    code = launch(2, ["--no-such-option", "x", "--gpus", "2", "--out", str(tmp_path / "bad")], say=print)
    captured = capfd.readouterr()
    assert code == 1, captured.err[-2000:]
    assert "torchrun --standalone --nproc_per_node 2 --no-python quicklearn train --no-such-option x --out" in captured.out
    assert "No such option" in captured.err and re.search(r"exitcode\s*:\s*2", captured.err), captured.err[-2000:]
    assert not (tmp_path / "bad").exists()


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """`quicklearn train --gpus 2 --device cpu ...` as the installed script: (data, out, the finished process)."""
    root = tmp_path_factory.mktemp("ddp")
    data, out = make_split_folder(root / "my data"), root / "ddp out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([quicklearn_exe(), "train", "--gpus", "2", "--device", "cpu", "--data", str(data), *TINY,
                        "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    return data, out, r


def test_gpus_2_device_cpu_trains_with_two_gloo_processes(two_process_run) -> None:
    """The launcher and the distributed core together: 2 CPU processes, one model folder, one summary."""
    data, out, r = two_process_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert "--gpus 2 --device cpu: 2 CPU processes (gloo backend)" in lines
    # the options in the order `train` declares them: the shared ones, then the task's own (cli/app.py)
    expected = equivalent_command(2, ["--data", str(data), "--epochs", "1", "--freeze-epochs", "0", "--bs", "8",
                                      "--device", "cpu", "--out", str(out), "--arch", "resnet10t", "--weights", "none",
                                      "--size", "16"])
    assert "  " + expected in lines, r.stdout
    # only rank 0 announces and prints the summary; it says there were 2 processes
    assert r.stdout.count("data-parallel: 2 processes") == 1, r.stdout
    assert r.stdout.count("training resnet10t") == 1 and r.stdout.count("done in") == 1, r.stdout

    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json", "metrics.json", "history.csv"}
    assert not (out / "checkpoint.pt").exists()
    metrics = json.loads((out / "metrics.json").read_text())["valid"]
    assert re.search(rf"valid loss\s*│\s*{metrics['loss']:.4f}", r.stdout), r.stdout
    assert re.search(r"train / valid images\s*│\s*18 / 9", r.stdout), r.stdout  # every item, counted once


def test_gpus_2_reported_metrics_are_the_exported_models(two_process_run) -> None:
    """Validation saw all 9 valid images once (4/5 across the ranks) with the weights that were saved."""
    data, out, r = two_process_run
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())["valid"]
    again = evaluate_model(ql.load(out), data / "valid")
    assert again["n"] == 9
    assert again["metrics"]["loss"] == pytest.approx(metrics["loss"], abs=1e-4)
    assert again["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)


def test_resume_under_torchrun_after_a_kill_gives_the_uninterrupted_run(split_folder: Path, tmp_path: Path) -> None:
    """Both ranks SIGKILLed in the second epoch (after the first checkpoint); `--gpus 2 --resume` then ends with
    exactly the metrics and history of an uninterrupted 2-process run."""
    def train(out: Path, *extra: str, kill: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1", **({"QUICKLEARN_TEST_KILL_AT": kill} if kill else {})}
        return subprocess.run([quicklearn_exe(), "train", "--gpus", "2", "--device", "cpu", "--data", str(split_folder),
                               *TINY, "--epochs", "2", "--out", str(out), *extra], capture_output=True, text=True,
                              env=env, timeout=300)

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    r = train(whole)
    assert r.returncode == 0, r.stderr[-3000:]
    r = train(killed, kill="batch:4")  # 18 images / bs 8: 3 steps an epoch, so step 4 is in the second epoch
    assert r.returncode != 0 and (killed / "checkpoint.pt").exists() and not (killed / "metrics.json").exists()
    r = train(killed, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (killed, whole))
    assert got["valid"] == want["valid"]
    assert [{k: v for k, v in row.items() if k != "time_s"} for row in got["history"]] == \
        [{k: v for k, v in row.items() if k != "time_s"} for row in want["history"]]
