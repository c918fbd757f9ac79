"""The vision recipe: its data, transforms, model and training sections (they mirror `vision_learner`'s keywords;
tests/test_recipes.py keeps them in step)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from quicklearn.config.sections import DataSection, Recipe, Section, TrainingSection, section_kwargs

__all__ = ["VisionData", "AugmentSection", "VisionTransforms", "HeadSection", "VisionModel", "VisionTraining",
           "VisionRecipe", "learner_kwargs"]


class VisionData(DataSection):
    path: str | None = Field(None, description="Folder of images (one sub-folder per class) or a CSV of image paths.")
    y: str | None = Field(None, description="Target: None = folder name; a CSV column; a regex with one (group) on the file name.")
    path_col: str | None = Field(None, description="CSV column with image paths (auto-detected).")
    kind: Literal["single", "multi", "regression"] | None = Field(None, description="Target kind (inferred when empty).")
    label_delim: str | None = Field(None, description="Separator of a multi-label column.")
    splitter: Literal["auto", "random", "stratified"] = Field("auto", description="train/valid folders or is_valid column, else stratified.")
    valid_pct: float = Field(0.2, gt=0, lt=1, description="Validation share for random splits.")


class AugmentSection(Section):
    flip: bool = True
    max_rotate: float = 10.0
    min_zoom: float = 1.0
    max_zoom: float = 1.1
    max_warp: float = 0.2
    max_lighting: float = 0.2
    min_scale: float = 0.35
    p_affine: float = 0.75
    p_lighting: float = 0.75
    enabled: bool = True


class VisionTransforms(Section):
    size: int = Field(224, ge=8, description="Training image size in pixels.")
    presize: int | None = Field(None, description="Size images are decoded and cached at (default size/0.875).")
    resize_mode: Literal["crop", "pad", "squish"] = "crop"
    augment: bool | AugmentSection = Field(True, description="Batch augmentation on the device: true, false, or its settings.")
    channels: Literal[1, 3] = 3


class HeadSection(Section):
    pool: Literal["avg", "avgmax"] = "avgmax"
    hidden: int | None = 512
    batchnorm: bool = True
    dropout: float = Field(0.25, ge=0, lt=1)


class VisionModel(Section):
    arch: str = Field("tf_efficientnet_lite0", description="Any timm architecture name.")
    weights: str | None = Field("imagenet", description="'imagenet', a local weights file, or none for random init.")
    head: HeadSection | None = None


class VisionTraining(TrainingSection):
    """The shared training fields plus what only images have: BatchNorm handling, mixing, EMA, progressive
    resizing, accumulation, memory format, compilation and decoding workers."""

    train_bn: bool = True
    freeze_bn_stats: bool | None = Field(None, description="Keep pretrained BatchNorm statistics (default: when pretrained).")
    mixup: float = Field(0.0, ge=0, description="Mixup's Beta alpha, e.g. 0.4 (0 = off); training batches only.")
    cutmix: float = Field(0.0, ge=0, description="CutMix's Beta alpha, e.g. 1.0 (0 = off); with mixup, one of the two per batch.")
    ema: float | None = Field(None, gt=0, lt=1, description="Keep an EMA of the weights with this decay, e.g. 0.998; validate and export it.")
    reduce_lr_on_plateau: bool = Field(False, description="Halve the learning rate after an epoch without improvement of the monitor.")
    progressive: float | None = Field(None, gt=0, le=1, description="Progressive resizing: start at this fraction of size, e.g. 0.5.")
    grad_accum: int = Field(1, ge=1)
    channels_last: bool | None = None
    compile: bool = False
    num_workers: int | None = None


class VisionRecipe(Recipe):
    task: Literal["vision"] = "vision"
    data: VisionData = VisionData()
    transforms: VisionTransforms = VisionTransforms()
    model: VisionModel = VisionModel()
    training: VisionTraining = VisionTraining()


def learner_kwargs(recipe: VisionRecipe) -> dict[str, Any]:
    """The keyword arguments of `vision_learner` that the recipe's data, transforms, model and training sections say."""
    from quicklearn.tasks.vision.augment import AugmentConfig
    from quicklearn.tasks.vision.heads import HeadConfig

    kw = section_kwargs(recipe.data, recipe.transforms, recipe.model, recipe.training)
    aug = recipe.transforms.augment
    kw["augment"] = aug if isinstance(aug, bool) else AugmentConfig(**aug.model_dump())
    kw["head"] = HeadConfig(**recipe.model.head.model_dump()) if recipe.model.head else None
    return kw
