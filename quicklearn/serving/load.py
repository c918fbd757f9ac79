"""Loading a model folder: config.json, its checksums, the weights (safetensors, nothing is unpickled); the task
named in config.json rebuilds its predictor.

    model = quicklearn.load("runs/photos")
    model.predict("img.jpg")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from quicklearn.core.errors import ConfigError, QuicklearnError
from quicklearn.core.safe_load import read_safetensors
from quicklearn.serving.format import CONFIG, FORMAT_VERSION, WEIGHTS, verify_checksums
from quicklearn.tasks.registry import get_task

__all__ = ["load", "read_config"]


def read_config(path: Path) -> dict[str, Any]:
    """config.json of the model folder `path`, checked to be one quicklearn can read; one-line errors otherwise."""
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        pickles = sorted(p.name for p in path.glob("*") if p.suffix.lower() in {".pt", ".pth", ".bin", ".pkl", ".ckpt"})
        if pickles and not (path / WEIGHTS).exists():  # say why that file is not loaded
            raise QuicklearnError(f"{path}: not a quicklearn model directory: it holds {pickles[0]} but no {WEIGHTS}, and "
                                  f"quicklearn never unpickles a model file (it could run code). An unfinished run: "
                                  f"`quicklearn train --resume --out {path}`; foreign weights: `quicklearn weights import FILE --arch ARCH`.")
        raise QuicklearnError(f"{path}: not a quicklearn model directory (needs {CONFIG} and {WEIGHTS}). Train one with `quicklearn train`.")
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QuicklearnError(f"{path / CONFIG}: not valid JSON ({e}). Export the model again.") from None
    if not isinstance(config, dict) or not isinstance(config.get("model", {}), dict):
        raise QuicklearnError(f"{path / CONFIG}: not a quicklearn model config (a JSON object with a 'model' object). Export the model again.")
    made_by = config.get("quicklearn_version", "unknown")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise QuicklearnError(f"{path} was written by quicklearn {made_by} in a newer format; upgrade quicklearn to load it.")
    if not isinstance(config.get("task"), str):
        raise QuicklearnError(f"{path / CONFIG}: no 'task' says which kind of model this is. Export the model again.")
    return config


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
