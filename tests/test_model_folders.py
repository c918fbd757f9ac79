"""Model folders written by an earlier release still load and predict as they did: one small folder per task in
tests/fixtures/model_folders (made by tests/fixtures/make_model_folders.py; the release is in each config.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import quicklearn as ql

FOLDERS = Path(__file__).resolve().parent / "fixtures" / "model_folders"


def _inputs(task: str, folder: Path, names: list[str]):
    if task == "vision":
        return [folder / "inputs" / n for n in names]
    frame = pd.read_csv(folder / "inputs" / names[0])
    return frame if task == "tabular" else frame["text"].tolist()


@pytest.mark.parametrize("task", ["vision", "tabular", "text"])
def test_a_model_folder_of_an_earlier_release_loads_and_gives_the_same_outputs(task):
    if task == "text":
        pytest.importorskip("transformers", reason="the [text] extra is not installed")
    folder = FOLDERS / task
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == task and config["quicklearn_version"]
    expected = json.loads((folder / "expected.json").read_text())
    model = ql.load(folder)
    assert isinstance(model, ql.Predictor) and model.task == task
    raw = model.raw(_inputs(task, folder, expected["inputs"]))
    torch.testing.assert_close(raw, torch.tensor(expected["raw"]), rtol=1e-5, atol=1e-5)
