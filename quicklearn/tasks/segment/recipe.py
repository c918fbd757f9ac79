"""The segmentation recipe: its data, transforms, model and training sections (they mirror
`segmentation_learner`'s keywords; tests/test_segment.py keeps them in step)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from quicklearn.config.sections import DataSection, FitSection, Recipe, Section, TrainingSection, section_kwargs
from quicklearn.tasks.vision.recipe import AugmentSection

__all__ = ["SegmentData", "SegmentTransforms", "SegmentModel", "SegmentTraining", "SegmentFit", "SegmentRecipe",
           "learner_kwargs", "void_value"]


def void_value(value: Any) -> int | str | None:
    """--void N (a mask value) or --void none."""
    text = str(value).strip().lower()
    if text == "none":
        return "none"
    try:
        v = int(text)
    except ValueError:
        from quicklearn.core.errors import ConfigError

        raise ConfigError(f"--void {value!r}: give the mask value that counts nowhere (0-255), or none.") from None
    return v


class SegmentData(DataSection):
    path: str | None = Field(None, description="Photos with a mask folder beside them (train/ + trainannot/, images/ + "
                                               "masks/), or a CSV with a photo and a mask column.")
    masks: str | None = Field(None, description="The mask folder (overrides the detection).")
    codes: str | None = Field(None, description="Class names, one per line in value order (default: codes.txt beside the "
                                                "data, else the values found).")
    void: int | Literal["none"] | None = Field(None, description="The mask value that counts in neither the loss nor the "
                                                                 "metrics (default: a class named void/unlabelled/ignore, or "
                                                                 "255 beside other values); none for no void.")
    splitter: Literal["auto", "random"] = Field("auto", description="train/ + val/ folders, else a random split.")
    valid_pct: float = Field(0.2, gt=0, lt=1, description="Validation share for random splits.")


class SegmentTransforms(Section):
    size: int | tuple[int, int] = Field(192, description="The model's input: its short side (the long side follows the "
                                                        "photos' aspect ratio), or [height, width]; multiples of 32.")
    augment: bool | AugmentSection = Field(True, description="Batch augmentation of photo and mask together: true, "
                                                             "false, or its settings.")


class SegmentModel(Section):
    arch: str = Field("tf_efficientnet_lite0", description="The encoder: any timm architecture with features_only.")
    weights: str | None = Field("imagenet", description="'imagenet', a local weights file, or none for random init.")
    decoder: Literal["unet", "fpn", "deeplabv3plus"] = "unet"


class SegmentTraining(TrainingSection):
    bs: int = Field(8, ge=1, description="Batch size (photos; the global one when data-parallel).")
    dice: float = Field(0.0, ge=0, description="Add this x the Dice loss to the cross-entropy (0: off).")
    freeze_bn_stats: bool | None = Field(None, description="Keep the encoder's pretrained BatchNorm statistics (default: "
                                                          "when pretrained).")
    num_workers: int | None = None


class SegmentFit(FitSection):
    epochs: int = Field(4, ge=0, description="Unfrozen epochs (fine_tune(epochs)).")
    base_lr: float = Field(2e-3, gt=0)


class SegmentRecipe(Recipe):
    task: Literal["segment"] = "segment"
    data: SegmentData = SegmentData()
    transforms: SegmentTransforms = SegmentTransforms()
    model: SegmentModel = SegmentModel()
    training: SegmentTraining = SegmentTraining()
    fit: SegmentFit = SegmentFit()


def learner_kwargs(recipe: SegmentRecipe) -> dict[str, Any]:
    """The keyword arguments of `segmentation_learner` that the recipe's data, transforms, model and training say."""
    from quicklearn.tasks.vision.augment import AugmentConfig

    kw = section_kwargs(recipe.data, recipe.transforms, recipe.model, recipe.training)
    aug = recipe.transforms.augment
    kw["augment"] = aug if isinstance(aug, bool) else AugmentConfig(**aug.model_dump())
    return kw
