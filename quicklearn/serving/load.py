"""Loading a model folder: config.json, its checksums, the weights (safetensors, nothing is unpickled); the task
named in config.json rebuilds its predictor.

    model = quicklearn.load("runs/photos")
    model.predict("img.jpg")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from quicklearn.core.errors import ConfigError, QuicklearnError
from quicklearn.core.safe_load import read_safetensors
from quicklearn.serving.format import CONFIG, WEIGHTS, read_config, verify_checksums
from quicklearn.tasks.registry import get_task

__all__ = ["load", "read_config"]


def load(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """Load a model directory written by `Learner.export` (or `quicklearn train`): the predictor of its task
    (a Predictor: `predict`, `raw`), on `device`."""
    path = Path(path)
    config = read_config(path)
    try:
        task = get_task(config["task"])
    except ConfigError as e:
        raise QuicklearnError(f"{path / CONFIG}: {e} (a task from a package that is not installed here?)") from None
    verify_checksums(path, config)
    state = read_safetensors(path / WEIGHTS, "Export the model again, or copy the model folder again.", QuicklearnError)
    return task.load(path, config, state, device)
