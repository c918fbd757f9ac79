"""The text recipe: its data, model, training and fit sections (they mirror `text_learner`'s keywords)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from quicklearn.config.sections import DataSection, FitSection, Recipe, Section, TrainingSection, section_kwargs

__all__ = ["TextData", "TextModelSection", "TextTraining", "TextFit", "TextRecipe", "learner_kwargs"]


class TextData(DataSection):
    path: str | None = Field(None, description="A CSV file.")
    text_col: str | list[str] | None = Field(None, description="The text column(s); default: the one with the longest texts.")
    y: str | None = Field(None, description="The label column.")
    kind: Literal["single", "multi", "regression"] | None = Field(None, description="Target kind (inferred when empty).")
    label_delim: str | None = None
    splitter: str = Field("auto", pattern=r"^(auto|random|stratified|column:.+|time:.+)$",
                          description="auto (an is_valid column, else stratified) | random | stratified | column:NAME | time:NAME.")
    valid_pct: float = Field(0.2, gt=0, lt=1)


class TextModelSection(Section):
    arch: str = Field("minilm", description="minilm (offline all-MiniLM-L6-v2), a local model folder, or a hub name.")
    max_len: int = Field(256, ge=2, description="Tokens per text (longer texts are truncated).")
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = Field(0.1, ge=0, lt=1)


class TextTraining(TrainingSection):
    """The shared training fields plus length bucketing, with a transformer's defaults: a fixed batch size (texts
    of any length: no probing) and gradient clipping at 1."""

    bs: int = Field(32, ge=1, description="Texts per batch.")
    bucket: bool = Field(True, description="Length-bucketed training batches (less padding).")
    grad_clip: float | None = 1.0


class TextFit(FitSection):
    epochs: int = Field(2, ge=0, description="Unfrozen epochs after the frozen (head-only) ones.")
    base_lr: float = Field(1e-2, gt=0, description="The head-only phase's rate.")
    unfrozen_lr: float | None = Field(1e-4, gt=0, description="Then every group, from unfrozen_lr/lr_mult (embeddings) to unfrozen_lr (head).")
    lr_mult: float = Field(10, gt=0, description="Ratio of the head's to the embeddings' rate in the unfrozen phase.")


class TextRecipe(Recipe):
    task: Literal["text"]
    data: TextData = TextData()
    model: TextModelSection = TextModelSection()
    training: TextTraining = TextTraining()
    fit: TextFit = TextFit()


def learner_kwargs(recipe: TextRecipe) -> dict[str, Any]:
    """The keyword arguments of `text_learner` that the recipe's data, model and training sections say."""
    kw = section_kwargs(recipe.data, recipe.model, recipe.training)
    kw["text"] = kw.pop("text_col")
    return kw
