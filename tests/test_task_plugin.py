"""A task from another package: a toy task of a few dozen lines (data, model, predictor, recipe section), found
through the `quicklearn.tasks` entry point of a distribution on the path, trains, predicts and runs a recipe
through the real `quicklearn` command, and no file of quicklearn is touched to make that happen."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

TOY = r'''
"""A toy task: rows of numbers in, a class out, through quicklearn's Learner, model folder and CLI."""
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from torch import nn

from quicklearn.config.sections import DataSection, Recipe, Section
from quicklearn.data.frames import check_column, read_frame
from quicklearn.data.labels import Vocab
from quicklearn.data.loaders import LoaderPair, tensor_keys
from quicklearn.serving.predictor import Predictor, decode_prediction, load_state
from quicklearn.tasks.base import Option, Predicted, Task
from quicklearn.train.learner import Learner


class ToyData(DataSection):
    y: str | None = None


class ToyModelSection(Section):
    hidden: int = 16


class ToyRecipe(Recipe):
    task: Literal["toy"] = "toy"
    data: ToyData = ToyData()
    model: ToyModelSection = ToyModelSection()


class Rows:
    def __init__(self, x, y, bs, shuffle):
        self.x, self.targets, self.bs, self.shuffle, self.epoch = x, y, bs, shuffle, 0
        self.device, self.channels_last = torch.device("cpu"), False

    n = property(lambda self: len(self.x))
    def set_epoch(self, epoch): self.epoch = epoch
    def __len__(self): return (len(self.x) + self.bs - 1) // self.bs

    def __iter__(self):
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.epoch)) if self.shuffle else torch.arange(len(self.x))
        for k in range(0, len(order), self.bs):
            idx = order[k:k + self.bs]
            yield self.x[idx].to(self.device), self.targets[idx].to(self.device)


class ToyLoaders(LoaderPair):
    task = "toy"

    def __init__(self, frame, y):
        self.columns = [c for c in frame.columns if c != y]
        self.vocab = Vocab.from_labels(frame[y].astype(str))
        x = torch.tensor(frame[self.columns].to_numpy(), dtype=torch.float32)
        t = torch.tensor([self.vocab.index(v) for v in frame[y].astype(str)])
        cut = int(len(x) * 0.8)
        self.train, self.valid = Rows(x[:cut], t[:cut], 16, True), Rows(x[cut:], t[cut:], 64, False)
        self.kind, self.target_stats = "single", None

    def folder_parts(self, learn, folder): return {"columns": self.columns}, []
    def item_keys(self): return tensor_keys(self.train.x, self.train.targets), tensor_keys(self.valid.x, self.valid.targets)


class ToyModel(nn.Module):
    def __init__(self, n_in, n_out, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x): return self.net(x)
    def groups(self): return [list(self.parameters())]


class ToyPredictor(Predictor):
    def raw(self, frame):
        return self.model(torch.tensor(frame[self.config["columns"]].to_numpy(), dtype=torch.float32)).detach()

    def predict(self, frame):
        return [decode_prediction(o, self.kind, self.classes) for o in self.raw(frame)]


class ToyTask(Task):
    name, summary, recipe, items, noun = "toy", "a toy: numbers in, a class out", ToyRecipe, "rows", "toy rows"
    detect_order = 5
    options = (Option("--hidden", "model.hidden", "Toy: hidden units.", int),)

    def detect(self, data):
        return "a .toy.csv file" if data.name.endswith(".toy.csv") else None

    def check(self, recipe):
        check_column(read_frame(recipe.data.path)[0], recipe.data.y, "target", recipe.data.path)

    def build(self, recipe, *, path, progress, cbs):
        dls = ToyLoaders(read_frame(recipe.data.path)[0], recipe.data.y)
        shape = {"n_in": len(dls.columns), "n_out": dls.n_out, "hidden": recipe.model.hidden}
        torch.manual_seed(0)
        return Learner(dls, ToyModel(**shape), path=path, progress=progress, cbs=cbs, device="cpu",
                       config={"model": shape, "recipe": recipe.model_dump(mode="json")})

    def fit_kwargs(self, recipe, learn):
        return {"epochs": recipe.fit.epochs, "base_lr": 0.1, "freeze_epochs": 0}

    def load(self, folder, config, state, device):
        model = ToyModel(**config["model"])
        load_state(model, state, folder)
        return ToyPredictor(model, config, device)

    def predict_inputs(self, predictor, inputs, *, thresh=None, tta=False):
        frame = pd.concat([read_frame(i)[0] for i in inputs], ignore_index=True)
        frame["prediction"] = [p.label for p in predictor.predict(frame)]
        return Predicted(frame, ["prediction"], index_label="row")


TASK = ToyTask()
'''


def _tree_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "quicklearn").rglob("*.py")):
        h.update(p.relative_to(ROOT).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def plugin(tmp_path_factory, env):
    """The toy package and a dist-info that declares its entry point, on PYTHONPATH: what `pip install` leaves."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "ql_toy.py").write_text(TOY)
    info = root / "ql_toy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ql-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[quicklearn.tasks]\ntoy = ql_toy:TASK\n")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": np.where(x[:, 0] - x[:, 2] > 0, "up", "down")})
    frame.to_csv(root / "points.toy.csv", index=False)
    frame.drop(columns="label").head(5).to_csv(root / "new.csv", index=False)
    (root / "toy.yaml").write_text(f"task: toy\ndata:\n  path: {root / 'points.toy.csv'}\n  y: label\nmodel:\n  hidden: 8\n"
                                   "fit:\n  epochs: 3\n")
    return root, {**env, "PYTHONPATH": str(root) + os.pathsep + env.get("PYTHONPATH", "")}


def _quicklearn(args: list, env: dict) -> subprocess.CompletedProcess:
    code = "import sys; from quicklearn_cli.app import main; sys.argv[0] = 'quicklearn'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=240)


def test_a_task_from_another_package_trains_predicts_and_runs_a_recipe(plugin):
    root, env = plugin
    before = _tree_digest()
    # train: the task is inferred from the data (the toy task claims *.toy.csv), its own option is accepted
    r = _quicklearn(["train", "--data", root / "points.toy.csv", "--target", "label", "--epochs", "4", "--hidden", "12",
                     "--out", root / "run"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "task: toy (a .toy.csv file" in r.stdout and "train / valid rows" in r.stdout
    metrics = __import__("json").loads((root / "run" / "metrics.json").read_text())
    assert metrics["valid"]["accuracy"] > 0.8  # a linear rule: the toy model learns it
    config = __import__("json").loads((root / "run" / "config.json").read_text())
    assert config["task"] == "toy" and config["model"]["hidden"] == 12 and config["columns"] == ["a", "b", "c"]
    # predict through the toy task's predictor, from the model folder alone
    r = _quicklearn(["predict", root / "run", root / "new.csv", "--format", "csv"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "a,b,c,prediction" and len(lines) == 6 and all(ln.endswith((",up", ",down")) for ln in lines[1:])
    # a recipe of the toy task, and the toy task's option refused for another task, as any option is
    r = _quicklearn(["train", "--recipe", root / "toy.yaml", "--out", root / "recipe-run"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert __import__("json").loads((root / "recipe-run" / "config.json").read_text())["model"]["hidden"] == 8
    r = _quicklearn(["train", "--task", "tabular", "--data", root / "points.toy.csv", "--target", "label", "--hidden", "4",
                     "--out", root / "refused"], env)
    assert r.returncode == 1 and "--hidden is for toy rows (--task toy)" in r.stderr, r.stderr
    assert _tree_digest() == before  # nothing of quicklearn was edited to add the task
