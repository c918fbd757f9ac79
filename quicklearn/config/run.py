"""Running a recipe: the one path from a validated recipe to a model directory, used by the CLI.

    recipe = load_recipe("vision")                       # or parse_recipe({...})
    result = run_recipe(recipe, out="runs/x")

The recipe's task (from the registry) builds the Learner; everything else here is the same for every task:
the output folder, resuming, TensorBoard, fine_tune, export, metrics.json and the training curves.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from quicklearn.config.sections import Recipe
from quicklearn.core import distributed as ddp
from quicklearn.core.errors import ConfigError
from quicklearn.core.fileio import is_temp_file, remove_temp_files, write_json
from quicklearn.tasks.registry import get_task

__all__ = ["RunResult", "check_out_dir", "run_recipe", "default_out_dir", "FIRST_EPOCH_FILES"]

log = logging.getLogger("quicklearn")


@dataclass
class RunResult:
    out: Path
    metrics: dict[str, float]
    wall_s: float
    learner: Any
    baseline: dict[str, Any] | None = None  # a reference model's {"model", "metrics", "wall_s"} (--baseline)
    data_check: Any = None  # the quick data check's Report (analysis/check), None with check=False


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


def run_recipe(recipe: Recipe, *, out: str | Path | None = None, overwrite: bool = False, resume: bool = False,
               progress: bool | None = None, check: bool = True) -> RunResult:
    """Train what `recipe` describes and write the model directory; returns where and the final metrics. check: first
    run the task's cheap data checks (hashes, leakage across the split, hidden folders), one line per problem."""
    data = recipe.data.path
    if not data:
        raise ConfigError("no data: give --data PATH or set data.path in the recipe.")
    ddp.init_from_env()  # under torchrun: every rank trains; rank 0 alone writes in `out`, the others wait for it
    # rank 0's default folder name (a timestamp) for every rank
    out = Path(out or recipe.output.out or str(ddp.broadcast_object(str(default_out_dir(data)))))
    empty_first = check_out_dir(out, overwrite, resume)  # refuse before any work; change nothing until the data loads
    t0 = time.perf_counter()
    task = get_task(recipe.task)
    task.check(recipe)
    cbs = []
    if recipe.output.tensorboard and ddp.is_main():
        from quicklearn.train.callbacks.tensorboard import TensorBoardLogger

        cbs.append(TensorBoardLogger(out / "tensorboard"))
    learn = task.build(recipe.model_copy(update={"output": recipe.output.model_copy(update={"out": str(out)})}),
                       path=out, progress=progress, cbs=cbs)
    # after the task has read the data (so data it cannot train on fails with the task's own error first), before
    # the first step: the cheap checks' lines are the last thing printed before training starts
    checked = _quick_check(task, recipe) if check and ddp.is_main() else None
    ddp.barrier()  # every rank has checked `out` before rank 0 changes it
    if ddp.is_main():
        if empty_first:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            remove_temp_files(out)  # what a killed run left half-way through an atomic write (fileio.atomic_path)
    ddp.barrier()
    try:
        learn.fine_tune(**task.fit_kwargs(recipe, learn), resume=resume)
    finally:
        for cb in cbs:
            cb.close()
    wall = time.perf_counter() - t0
    metrics = learn.validate()  # every rank takes part (each validates its shard); rank 0 writes
    baseline = None
    if ddp.is_main():
        learn.export(out)
        record = {"valid": metrics, "history": learn.history, "wall_s": round(wall, 2)}
        write_json(out / "metrics.json", record)  # the network's, first: a failing baseline loses nothing
        baseline = task.baseline(recipe, learn)
        if baseline is not None:
            write_json(out / "metrics.json", {**record, "baseline": baseline})
        if recipe.output.plots:
            learn.plot_curves(out / "training_curves.png")
        (out / "checkpoint.pt").unlink(missing_ok=True)  # the model directory is complete; the resume point is no longer needed
    ddp.barrier()  # the model directory is complete before any rank returns
    return RunResult(out, metrics, wall, learn, baseline, checked)


def _quick_check(task: Any, recipe: Recipe) -> Any:
    """The task's cheap data checks (analysis/check), each problem printed as one line naming `quicklearn check`.
    Advisory: it runs after the task has read the data, and whatever it cannot read is left to that reading (a check
    must never replace the task's own error with another, or stop a run that would train)."""
    from quicklearn.analysis.check.run import quick_check
    from quicklearn.analysis.check.summary import quick_lines
    from quicklearn.core.progress import console

    try:
        report = quick_check(task, recipe)
    except Exception as e:  # noqa: BLE001 - see the docstring
        logging.getLogger("quicklearn").debug("the quick data check stopped (%s: %s); training reads the data itself",
                                              type(e).__name__, e)
        return None
    for line in quick_lines(report) if report is not None else []:
        console().print(line, highlight=False, markup=False, soft_wrap=True)
    return report
