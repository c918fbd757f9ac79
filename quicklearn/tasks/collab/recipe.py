"""The collab recipe: its data, model, training and fit sections (they mirror `collab_learner`'s keywords)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from quicklearn.config.sections import DataSection, FitSection, Recipe, Section, TrainingSection, section_kwargs

__all__ = ["CollabData", "CollabModelSection", "CollabTraining", "CollabFit", "CollabRecipe", "learner_kwargs",
           "DEFAULT_WD", "DEFAULT_LR"]

# Measured on movielens-small (benchmarks/collab.py; 80,669 training ratings, bs 1024, 400-step budget): decoupled
# weight decay 1.0 at a peak lr of 1e-2 shrinks every factor row by 1% a step, which regularizes rarely rated items
# most; wd 0.5 and 2 were 0.4% and 0.7% worse, peak lr 5e-3 and 2e-2 0.8% and 0.4%.
DEFAULT_WD = 1.0
DEFAULT_LR = 2e-2


class CollabData(DataSection):
    path: str | None = Field(None, description="A CSV of ratings: one row per (user, item, rating).")
    user: str | None = Field(None, description="The user column (inferred from names such as user, userId, user_id).")
    item: str | None = Field(None, description="The item column (inferred from names such as item, movieId, product).")
    y: str | None = Field(None, description="The rating column (inferred from names such as rating, score, stars).")
    titles: str | None = Field(None, description="Item titles: a column of the ratings, a CSV of item + title, or "
                                                 "'none'; inferred (a title column, or one CSV beside the data).")
    splitter: str = Field("random", pattern=r"^(auto|random|users|user-time:.+)$",
                          description="random | users (held-out users: cold start) | user-time:COL (each user's latest "
                                      "ratings validate).")
    valid_pct: float = Field(0.2, gt=0, lt=1)
    duplicates: Literal["latest", "mean", "error"] = Field(
        "latest", description="Several ratings of one item by one user: keep the latest (by the time column when there "
                              "is one, else the last row), their mean, or refuse the data.")


class CollabModelSection(Section):
    arch: Literal["dot", "nn", "both"] = Field(
        "dot", description="dot: biased dot product of embeddings; nn: an MLP over both embeddings; both: their sum.")
    n_factors: Annotated[int, Field(ge=1)] = Field(50, description="Embedding width of the dot product.")
    layers: list[Annotated[int, Field(ge=1)]] = Field([100], description="Hidden layers of the MLP (arch nn or both).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout in the MLP.")
    y_range: list[float] | Literal["auto"] | None = Field(
        "auto", description="Squash predictions into [lo, hi]; auto: the training ratings' range widened by 10%.")


class CollabTraining(TrainingSection):
    """The shared training fields with a ratings table's defaults: batch size by size, fp32, stronger weight decay."""

    bs: Annotated[int, Field(ge=1)] | Literal["auto"] = Field("auto", description="Ratings per batch; auto: by size.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"
    wd: float = DEFAULT_WD


class CollabFit(FitSection):
    epochs: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto", description="Epochs of one-cycle training; auto: a budget of optimizer steps (see auto_epochs).")
    base_lr: float = Field(DEFAULT_LR, gt=0, description="Twice the peak learning rate (fine_tune halves it).")
    freeze_epochs: int = Field(0, ge=0, description="Nothing to freeze in an embedding model: 0.")
    div: float = Field(25.0, gt=0, description="The one-cycle warm-up starts at the peak rate / div.")


class CollabRecipe(Recipe):
    task: Literal["collab"]
    data: CollabData = CollabData()
    model: CollabModelSection = CollabModelSection()
    training: CollabTraining = CollabTraining()
    fit: CollabFit = CollabFit()


def learner_kwargs(recipe: CollabRecipe) -> dict[str, Any]:
    """The keyword arguments of `collab_learner` that the recipe's data, model and training sections say."""
    kw = section_kwargs(recipe.data, recipe.model, recipe.training)
    if isinstance(kw.get("y_range"), list):
        kw["y_range"] = tuple(kw["y_range"])
    return kw
