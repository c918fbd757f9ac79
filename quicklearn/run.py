"""Running a recipe: the one path from a validated recipe to a model directory, used by the CLI.

    recipe = load_recipe("vision")                       # or parse_recipe({...})
    result = run_recipe(recipe, data="data/", out="runs/x")
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from . import distributed as ddp
from .config import TabularRecipe, TextRecipe, VisionRecipe
from .data.augment import AugmentConfig
from .errors import ConfigError, DataError
from .fileio import is_temp_file, remove_temp_files, write_json
from .models.heads import HeadConfig

__all__ = ["RunResult", "infer_task", "check_out_dir", "learner_kwargs", "tabular_kwargs", "text_kwargs", "fit_kwargs", "run_recipe", "default_out_dir"]

log = logging.getLogger("quicklearn")


@dataclass
class RunResult:
    out: Path
    metrics: dict[str, float]
    wall_s: float
    learner: Any


def infer_task(data: str | Path) -> tuple[str, str]:
    """('vision'|'tabular'|'text', why). A folder is vision; a CSV with an image-path column is vision, with a long
    free-text column text, otherwise tabular. Raise ConfigError asking for --task when it cannot tell."""
    from .data.sources import find_image_column, read_table

    p = Path(data).expanduser()
    if p.is_dir():
        return "vision", "a folder of images"
    if not p.exists():
        raise DataError(f"{p}: no such file or folder. Check --data.")
    if p.suffix.lower() not in (".csv", ".tsv", ".txt"):
        raise ConfigError(f"{p}: cannot tell the task from a {p.suffix or 'extensionless'} file. Pass --task vision|tabular|text.")
    frame = read_table(p)
    image_col = find_image_column(frame)
    # object (pandas 2) or the str dtype (pandas 3 reads text columns as str, not object)
    lengths = {c: frame[c].dropna().astype(str).str.len().mean()
               for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype)}
    text_cols = [c for c, n in lengths.items() if n > 100]
    mid_cols = [c for c, n in lengths.items() if 30 < n <= 100]
    if image_col and text_cols:
        raise ConfigError(f"{p}: has image paths ({image_col!r}) and free text ({text_cols[0]!r}); say which with --task vision or --task text.")
    if image_col:
        return "vision", f"column {image_col!r} holds image paths"
    if text_cols:
        return "text", f"column {text_cols[0]!r} holds long free text"
    if mid_cols:
        raise ConfigError(f"{p}: column {mid_cols[0]!r} could be free text or a category; say which with --task text or --task tabular.")
    return "tabular", "no image-path or long free-text column"


def default_out_dir(data: str | Path | None) -> Path:
    name = Path(str(data)).expanduser().resolve().name if data else "run"
    return Path("runs") / f"{Path(name).stem or 'run'}-{datetime.now():%Y%m%d-%H%M%S}"


# What a run writes before its first checkpoint.pt: a folder holding only these (and the temporary files of
# fileio.atomic_path) is a run killed in its first epoch, which --resume starts again from the beginning.
FIRST_EPOCH_FILES = frozenset({"history.json", "history.csv", "tensorboard"})


def check_out_dir(out: Path, overwrite: bool, resume: bool) -> bool:
    """Refuse a non-empty folder unless told to overwrite it or resume the run in it; True when it must be emptied.

    --resume continues from checkpoint.pt; without one it starts again only a run stopped in its first epoch, and
    refuses a finished run (metrics.json) or a folder holding anything else. Only checks: nothing is created or
    removed until the data has loaded, so bad data leaves no empty run folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file. Choose a folder.")
    if out.exists() and any(out.iterdir()):
        if resume:
            if (out / "checkpoint.pt").exists():
                return False
            if (out / "metrics.json").exists():
                raise ConfigError(f"--resume: the run in {out} already finished (metrics.json, no checkpoint.pt): nothing "
                                  "to resume. Add --overwrite to train it again, or choose another --out.")
            other = sorted(p.name for p in out.iterdir() if p.name not in FIRST_EPOCH_FILES and not is_temp_file(p))
            if other:
                raise ConfigError(f"--resume: {out} has no checkpoint.pt to continue from, and it holds {other[0]!r}, so it "
                                  "is not a run stopped in its first epoch. Add --overwrite to train again, or choose another --out.")
            log.warning("--resume: %s has no checkpoint.pt yet (the run stopped in its first epoch): starting again "
                        "from the beginning", out)
            return True
        if not overwrite:
            raise ConfigError(f"--out {out}: folder exists and is not empty. Add --overwrite to replace it, --resume to continue it, or choose another --out.")
        return True
    return False


def _section_kwargs(*sections: Any) -> dict[str, Any]:
    """Every field of the given recipe sections as one keyword dict (data.path left out: it is passed as `data`)."""
    kw: dict[str, Any] = {}
    for section in sections:
        kw.update({k: getattr(section, k) for k in type(section).model_fields})
    kw.pop("path")
    return kw


def learner_kwargs(recipe: VisionRecipe) -> dict[str, Any]:
    """The keyword arguments of `vision_learner` that the recipe's data, transforms, model and training sections say."""
    kw = _section_kwargs(recipe.data, recipe.transforms, recipe.model, recipe.training)
    aug = recipe.transforms.augment
    kw["augment"] = aug if isinstance(aug, bool) else AugmentConfig(**aug.model_dump())
    kw["head"] = HeadConfig(**recipe.model.head.model_dump()) if recipe.model.head else None
    return kw


def tabular_kwargs(recipe: TabularRecipe) -> dict[str, Any]:
    """The keyword arguments of `tabular_learner` that the recipe's data, model and training sections say."""
    kw = _section_kwargs(recipe.data, recipe.model, recipe.training)
    if isinstance(kw.get("y_range"), list):
        kw["y_range"] = tuple(kw["y_range"])
    return kw


def text_kwargs(recipe: TextRecipe) -> dict[str, Any]:
    """The keyword arguments of `text_learner` that the recipe's data, model and training sections say."""
    kw = _section_kwargs(recipe.data, recipe.model, recipe.training)
    kw["text"] = kw.pop("text_col")
    return kw


def fit_kwargs(recipe: VisionRecipe | TabularRecipe | TextRecipe, learn: Any) -> dict[str, Any]:
    """The keyword arguments of `Learner.fine_tune` from the recipe's fit section (epochs: auto resolved)."""
    kw = recipe.fit.model_dump()
    if kw["epochs"] == "auto":
        from .tabular import auto_epochs

        kw["epochs"] = auto_epochs(learn.dls)
    return kw


def run_recipe(recipe: VisionRecipe | TabularRecipe | TextRecipe, *, out: str | Path | None = None, overwrite: bool = False,
               resume: bool = False, progress: bool | None = None) -> RunResult:
    """Train what `recipe` describes and write the model directory; returns where and the final metrics."""
    data = recipe.data.path
    if not data:
        raise ConfigError("no data: give --data PATH or set data.path in the recipe.")
    ddp.init_from_env()  # under torchrun: every rank trains; rank 0 alone writes in `out`, the others wait for it
    # rank 0's default folder name (a timestamp) for every rank
    out = Path(out or recipe.output.out or str(ddp.broadcast_object(str(default_out_dir(data)))))
    empty_first = check_out_dir(out, overwrite, resume)  # refuse before any work; change nothing until the data loads
    t0 = time.perf_counter()
    recipe_dict = recipe.model_dump(mode="json")
    recipe_dict["output"]["out"] = str(out)
    if isinstance(recipe, (TabularRecipe, TextRecipe)) and not recipe.data.y:
        raise ConfigError(f"{recipe.task} data needs its target column: give --target COLUMN or set data.y in the recipe.")
    cbs = []
    if recipe.output.tensorboard and ddp.is_main():
        from .train.tensorboard import TensorBoardLogger

        cbs.append(TensorBoardLogger(out / "tensorboard"))
    if isinstance(recipe, TabularRecipe):
        from .tabular import tabular_learner

        learn = tabular_learner(data, path=out, progress=progress, cbs=cbs, recipe=recipe_dict, **tabular_kwargs(recipe))
    elif isinstance(recipe, TextRecipe):
        from .text import text_learner

        learn = text_learner(data, path=out, progress=progress, cbs=cbs, recipe=recipe_dict, **text_kwargs(recipe))
    else:
        from .vision import vision_learner

        learn = vision_learner(data, path=out, progress=progress, cbs=cbs, recipe=recipe_dict, **learner_kwargs(recipe))
    ddp.barrier()  # every rank has checked `out` before rank 0 changes it
    if ddp.is_main():
        if empty_first:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            remove_temp_files(out)  # what a killed run left half-way through an atomic write (fileio.atomic_path)
    ddp.barrier()
    try:
        learn.fine_tune(**fit_kwargs(recipe, learn), resume=resume)
    finally:
        for cb in cbs:
            cb.close()
    wall = time.perf_counter() - t0
    metrics = learn.validate()  # every rank takes part (each validates its shard); rank 0 writes
    if ddp.is_main():
        learn.export(out)
        write_json(out / "metrics.json", {"valid": metrics, "history": learn.history, "wall_s": round(wall, 2)})
        if recipe.output.plots:
            learn.plot_curves(out / "training_curves.png")
        (out / "checkpoint.pt").unlink(missing_ok=True)  # the model directory is complete; the resume point is no longer needed
    ddp.barrier()  # the model directory is complete before any rank returns
    return RunResult(out, metrics, wall, learn)
