"""The recipe sections every task shares: training, fit and output, and the base a task's recipe builds on.

A task's recipe (`tasks/<name>/recipe.py`) is `Recipe` plus its own `data` section (and `model`, `transforms`...);
its `training` section subclasses `TrainingSection`, adding its own fields or changing a default, so every
field the tasks share is written once, here.

    class ToyRecipe(Recipe):
        task: Literal["toy"] = "toy"
        data: ToyData = ToyData()
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Section", "DataSection", "TrainingSection", "FitSection", "OutputSection", "Recipe", "section_kwargs"]


class Section(BaseModel):
    """A recipe section: unknown keys are refused (with the closest known one), nothing else is coerced away."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataSection(Section):
    """Where the data is; every task's data section subclasses it with its own keys (target, split, ...)."""

    path: str | None = Field(None, description="The data: a folder or a file.")


class TrainingSection(Section):
    """The Learner's options that every task's builder takes, with the defaults most tasks want."""

    bs: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(32, description="Batch size (the global one when data-parallel).")
    metrics: list[str] | None = None
    monitor: str | None = None
    opt: Literal["adamw", "sgd"] = "adamw"
    wd: float = 0.01
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: list[float] | Literal["balanced"] | None = Field(
        None, description="Classifiers: one weight per class, or balanced (inverse class frequency in the training items).")
    grad_clip: float | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    sync_bn: bool = Field(False, description="Data-parallel (torchrun) runs: BatchNorm statistics over the global batch (SyncBatchNorm).")
    distributed: bool | None = Field(None, description="Data-parallel training: None = when started by torchrun (or --gpus N).")
    device: str = "auto"
    seed: int = 42


class FitSection(Section):
    """The keyword arguments of `Learner.fine_tune` (a test keeps them in step)."""

    epochs: int = Field(3, ge=0, description="Unfrozen epochs (fine_tune(epochs)).")
    base_lr: float = Field(2e-3, gt=0)
    freeze_epochs: int = Field(1, ge=0)
    lr_mult: float = Field(100, gt=0)
    pct_start: float = Field(0.25, gt=0, lt=1)
    div: float = Field(5.0, gt=0)
    unfreeze_milestones: list[Any] | None = None
    unfrozen_lr: float | None = Field(None, gt=0, description="Top rate of the unfrozen phase (default base_lr/2).")


class OutputSection(Section):
    out: str | None = Field(None, description="Output directory (default runs/<data>-<timestamp>).")
    plots: bool = True
    tensorboard: bool = Field(False, description="Also log to TensorBoard event files in <out>/tensorboard (needs quicklearn[tensorboard]).")


class Recipe(Section):
    """The sections every task's recipe has; a task names itself in `task` and adds its own `data` section (and
    `model`, `transforms`, ... as it needs), and may subclass `training` and `fit` to change their defaults."""

    task: str
    data: DataSection = DataSection()
    training: TrainingSection = TrainingSection()
    fit: FitSection = FitSection()
    output: OutputSection = OutputSection()


def section_kwargs(*sections: Section) -> dict[str, Any]:
    """Every field of the given recipe sections as one keyword dict (data.path left out: it is passed as `data`)."""
    kw: dict[str, Any] = {}
    for section in sections:
        kw.update({k: getattr(section, k) for k in type(section).model_fields})
    kw.pop("path", None)
    return kw
