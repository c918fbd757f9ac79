"""The tabular recipe: its data, model, training and fit sections (they mirror `tabular_learner`'s keywords)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from quicklearn.config.sections import DataSection, FitSection, Recipe, Section, TrainingSection, section_kwargs

__all__ = ["TabularData", "TabularModelSection", "TabularTraining", "TabularFit", "TabularRecipe", "learner_kwargs"]


class TabularData(DataSection):
    path: str | None = Field(None, description="A CSV file.")
    y: str | None = Field(None, description="The target column.")
    kind: Literal["single", "regression"] | None = Field(None, description="Classification or regression (inferred when empty).")
    cat_names: list[str] | None = Field(None, description="Columns to treat as categorical (the rest inferred).")
    cont_names: list[str] | None = Field(None, description="Columns to treat as continuous (the rest inferred).")
    drop: list[str] = Field([], description="Columns to leave out.")
    date_parts: bool = Field(False, description="Split date columns into year, month, day of week and elapsed days.")
    splitter: str = Field("auto", pattern=r"^(auto|random|stratified|column:.+|time:.+)$",
                          description="auto | random | stratified | column:NAME (a boolean column) | time:NAME (latest rows validate).")
    valid_pct: float = Field(0.2, gt=0, lt=1)
    scaling: Literal["auto", "standard", "quantile", "robust"] = Field(
        "auto", description="Continuous columns: auto (standard, and quantile for a column with a value over 10 stds "
                            "from its mean), standard (mean/std), quantile (normal score of the training rank) or "
                            "robust (median/IQR, soft-clipped).")


class TabularModelSection(Section):
    layers: list[Annotated[int, Field(ge=1)]] = Field([128, 64], description="Hidden layer sizes of the MLP.")
    dropout: float = Field(0.1, ge=0, lt=1)
    embed_dropout: float = Field(0.0, ge=0, lt=1)
    y_range: list[float] | Literal["auto"] | None = Field(None, description="Regression: squash outputs into [lo, hi], or auto.")
    num_embed: int = Field(8, ge=0, description="Width of each continuous column's periodic embedding; 0 = the values alone.")
    n_frequencies: int = Field(16, ge=1, description="Trainable frequencies per continuous column.")
    frequency_scale: float = Field(0.1, gt=0, description="Std of the frequencies at start (small: smooth functions first).")
    embed_value: bool = Field(True, description="Feed each continuous value beside its embedding (a linear effect needs no frequencies).")
    ensemble: int = Field(6, ge=1, description="MLPs trained as one batched model (shared weights, own adapters and heads); 1 = one MLP.")


class TabularTraining(TrainingSection):
    """The shared training fields, with a table's defaults: batch size by table size, fp32."""

    bs: Annotated[int, Field(ge=1)] | Literal["auto"] = Field("auto", description="Rows per batch; auto: 64, more on big tables.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"
    patience: Annotated[int, Field(ge=1)] | None = Field(
        2, description="Stop after this many epochs without a better validation loss and keep the best epoch; null = never.")


class TabularFit(FitSection):
    epochs: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto", description="Epochs of one-cycle training; auto: about 1,000 optimizer steps (5 to 100 epochs), early "
                            "stopping ending it sooner.")
    base_lr: float = Field(2e-2, gt=0, description="Twice the peak learning rate (fine_tune halves it).")
    freeze_epochs: int = Field(0, ge=0, description="Nothing to freeze in a table model: 0.")
    pct_start: float = Field(0.05, gt=0, lt=1, description="Warm-up share of the schedule: about 50 of the 1,000 "
                             "steps, so training reaches its peak rate before early stopping ends it.")


class TabularRecipe(Recipe):
    task: Literal["tabular"]
    data: TabularData = TabularData()
    model: TabularModelSection = TabularModelSection()
    training: TabularTraining = TabularTraining()
    fit: TabularFit = TabularFit()
    baseline: bool = Field(False, description="Also fit scikit-learn's HistGradientBoosting on the same split; its metrics go "
                           "under 'baseline' in metrics.json (needs quicklearn[baseline]).")


def learner_kwargs(recipe: TabularRecipe) -> dict[str, Any]:
    """The keyword arguments of `tabular_learner` that the recipe's data, model and training sections say."""
    kw = section_kwargs(recipe.data, recipe.model, recipe.training)
    if isinstance(kw.get("y_range"), list):
        kw["y_range"] = tuple(kw["y_range"])
    return kw
