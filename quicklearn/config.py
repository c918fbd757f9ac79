"""Recipes: YAML -> validated config objects -> the same Python API a user calls.

A recipe section mirrors the keyword arguments of the function it feeds (a test keeps them in step):
`data`, `transforms`, `model` and `training` feed `vision_learner`; `fit` feeds `Learner.fine_tune`.
YAML is read with `yaml.safe_load` only; `${ENV_VAR}` in any string value is taken from the environment.
"""

from __future__ import annotations

import difflib
import os
import re
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

__all__ = [
    "RecipeConfig", "VisionRecipe", "TabularRecipe", "TextRecipe", "load_recipe", "parse_recipe", "recipe_schema",
    "shipped_recipes", "find_recipe", "merge_overrides",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# ---- vision ------------------------------------------------------------------------------------
class VisionData(_Section):
    path: str | None = Field(None, description="Folder of images (one sub-folder per class) or a CSV of image paths.")
    y: str | None = Field(None, description="Target: None = folder name; a CSV column; a regex with one (group) on the file name.")
    path_col: str | None = Field(None, description="CSV column with image paths (auto-detected).")
    kind: Literal["single", "multi", "regression"] | None = Field(None, description="Target kind (inferred when empty).")
    label_delim: str | None = Field(None, description="Separator of a multi-label column.")
    splitter: Literal["auto", "random", "stratified"] = Field("auto", description="train/valid folders or is_valid column, else stratified.")
    valid_pct: float = Field(0.2, gt=0, lt=1, description="Validation share for random splits.")


class AugmentSection(_Section):
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


class VisionTransforms(_Section):
    size: int = Field(224, ge=8, description="Training image size in pixels.")
    presize: int | None = Field(None, description="Size images are decoded and cached at (default size/0.875).")
    resize_mode: Literal["crop", "pad", "squish"] = "crop"
    augment: bool | AugmentSection = Field(True, description="Batch augmentation on the device: true, false, or its settings.")
    channels: Literal[1, 3] = 3


class HeadSection(_Section):
    pool: Literal["avg", "avgmax"] = "avgmax"
    hidden: int | None = 512
    batchnorm: bool = True
    dropout: float = Field(0.25, ge=0, lt=1)


class VisionModel(_Section):
    arch: str = Field("tf_efficientnet_lite0", description="Any timm architecture name.")
    weights: str | None = Field("imagenet", description="'imagenet', a local weights file, or none for random init.")
    head: HeadSection | None = None


class VisionTraining(_Section):
    bs: Annotated[int, Field(ge=1)] | Literal["auto"] = 32
    metrics: list[str] | None = None
    monitor: str | None = None
    opt: Literal["adamw", "sgd"] = "adamw"
    wd: float = 0.01
    train_bn: bool = True
    freeze_bn_stats: bool | None = Field(None, description="Keep pretrained BatchNorm statistics (default: when pretrained).")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: list[float] | None = None
    mixup: float = Field(0.0, ge=0, description="Mixup's Beta alpha, e.g. 0.4 (0 = off); training batches only.")
    cutmix: float = Field(0.0, ge=0, description="CutMix's Beta alpha, e.g. 1.0 (0 = off); with mixup, one of the two per batch.")
    ema: float | None = Field(None, gt=0, lt=1, description="Keep an EMA of the weights with this decay, e.g. 0.998; validate and export it.")
    reduce_lr_on_plateau: bool = Field(False, description="Halve the learning rate after an epoch without improvement of the monitor.")
    progressive: float | None = Field(None, gt=0, le=1, description="Progressive resizing: start at this fraction of size, e.g. 0.5.")
    grad_clip: float | None = None
    grad_accum: int = Field(1, ge=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    sync_bn: bool = Field(False, description="Data-parallel (torchrun) runs: BatchNorm statistics over the global batch (SyncBatchNorm).")
    distributed: bool | None = Field(None, description="Data-parallel training: None = when started by torchrun (or --gpus N).")
    channels_last: bool | None = None
    compile: bool = False
    device: str = "auto"
    num_workers: int | None = None
    seed: int = 42


class FitSection(_Section):
    epochs: int = Field(3, ge=0, description="Unfrozen epochs (fine_tune(epochs)).")
    base_lr: float = Field(2e-3, gt=0)
    freeze_epochs: int = Field(1, ge=0)
    lr_mult: float = Field(100, gt=0)
    pct_start: float = Field(0.25, gt=0, lt=1)
    div: float = Field(5.0, gt=0)
    unfreeze_milestones: list[Any] | None = None
    unfrozen_lr: float | None = Field(None, gt=0, description="Top rate of the unfrozen phase (default base_lr/2).")


class OutputSection(_Section):
    out: str | None = Field(None, description="Output directory (default runs/<data>-<timestamp>).")
    plots: bool = True
    tensorboard: bool = Field(False, description="Also log to TensorBoard event files in <out>/tensorboard (needs quicklearn[tensorboard]).")


class _Recipe(_Section):
    """The sections every task has; each task adds its own data (and model, transforms) sections."""

    training: VisionTraining = VisionTraining()
    fit: FitSection = FitSection()
    output: OutputSection = OutputSection()


class VisionRecipe(_Recipe):
    task: Literal["vision"] = "vision"
    data: VisionData = VisionData()
    transforms: VisionTransforms = VisionTransforms()
    model: VisionModel = VisionModel()


# ---- tabular ------------------------------------------------------------------------------------------
class TabularData(_Section):
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


class TabularModelSection(_Section):
    layers: list[Annotated[int, Field(ge=1)]] = Field([200, 100], description="Hidden layer sizes of the MLP.")
    dropout: float = Field(0.1, ge=0, lt=1)
    embed_dropout: float = Field(0.0, ge=0, lt=1)
    y_range: list[float] | Literal["auto"] | None = Field(None, description="Regression: squash outputs into [lo, hi], or auto.")


class TabularTraining(_Section):
    bs: Annotated[int, Field(ge=1)] | Literal["auto"] = Field("auto", description="Rows per batch; auto: 64, more on big tables.")
    metrics: list[str] | None = None
    monitor: str | None = None
    opt: Literal["adamw", "sgd"] = "adamw"
    wd: float = 0.01
    class_weights: list[float] | Literal["balanced"] | None = None
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = None
    sync_bn: bool = Field(False, description="Data-parallel (torchrun) runs: BatchNorm statistics over the global batch (SyncBatchNorm).")
    distributed: bool | None = Field(None, description="Data-parallel training: None = when started by torchrun (or --gpus N).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"
    device: str = "auto"
    seed: int = 42


class TabularFit(FitSection):
    epochs: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto", description="Epochs of one-cycle training; auto: 5, or more for at least 50 steps on small tables.")
    base_lr: float = Field(5e-2, gt=0, description="Twice the peak learning rate (fine_tune halves it).")
    freeze_epochs: int = Field(0, ge=0, description="Nothing to freeze in a table model: 0.")


class TabularRecipe(_Recipe):
    task: Literal["tabular"]
    data: TabularData = TabularData()
    model: TabularModelSection = TabularModelSection()
    training: TabularTraining = TabularTraining()
    fit: TabularFit = TabularFit()


# ---- text ---------------------------------------------------------------------------------------------
class TextData(_Section):
    path: str | None = Field(None, description="A CSV file.")
    text_col: str | list[str] | None = Field(None, description="The text column(s); default: the one with the longest texts.")
    y: str | None = Field(None, description="The label column.")
    kind: Literal["single", "multi", "regression"] | None = Field(None, description="Target kind (inferred when empty).")
    label_delim: str | None = None
    splitter: str = Field("auto", pattern=r"^(auto|random|stratified|column:.+|time:.+)$",
                          description="auto (an is_valid column, else stratified) | random | stratified | column:NAME | time:NAME.")
    valid_pct: float = Field(0.2, gt=0, lt=1)


class TextModelSection(_Section):
    arch: str = Field("minilm", description="minilm (offline all-MiniLM-L6-v2), a local model folder, or a hub name.")
    max_len: int = Field(256, ge=2, description="Tokens per text (longer texts are truncated).")
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = Field(0.1, ge=0, lt=1)


class TextTraining(_Section):
    bs: int = Field(32, ge=1)
    bucket: bool = Field(True, description="Length-bucketed training batches (less padding).")
    metrics: list[str] | None = None
    monitor: str | None = None
    opt: Literal["adamw", "sgd"] = "adamw"
    wd: float = 0.01
    class_weights: list[float] | None = None
    grad_clip: float | None = 1.0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    seed: int = 42


class TextFit(FitSection):
    epochs: int = Field(2, ge=0, description="Unfrozen epochs after the frozen (head-only) ones.")
    base_lr: float = Field(1e-2, gt=0, description="The head-only phase's rate.")
    unfrozen_lr: float | None = Field(1e-4, gt=0, description="Then every group, from unfrozen_lr/lr_mult (embeddings) to unfrozen_lr (head).")
    lr_mult: float = Field(10, gt=0, description="Ratio of the head's to the embeddings' rate in the unfrozen phase.")


class TextRecipe(_Recipe):
    task: Literal["text"]
    data: TextData = TextData()
    model: TextModelSection = TextModelSection()
    training: TextTraining = TextTraining()
    fit: TextFit = TextFit()


RecipeConfig = Annotated[Union[VisionRecipe, TabularRecipe, TextRecipe], Field(discriminator="task")]


class _Root(BaseModel):
    recipe: RecipeConfig


def recipe_schema() -> dict:
    """The JSON schema of a recipe, generated from the validation models (`quicklearn recipes schema`)."""
    return _Root.model_json_schema()["$defs"] | {"oneOf": ["VisionRecipe", "TabularRecipe", "TextRecipe"]}


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MAX_VALUES, _MAX_DEPTH = 100_000, 50  # a real recipe has a few dozen values, three levels deep


def _check_shape(raw: Any, source: str) -> None:
    """Refuse YAML that no recipe needs before anything walks it: an alias inside its own value (`a: &x [*x]`
    recurses forever) and aliases of aliases that expand to millions of values ("billion laughs")."""
    count = 0

    def walk(node: Any, depth: int, parents: frozenset) -> None:
        nonlocal count
        count += 1
        if count > _MAX_VALUES:
            raise ConfigError(f"{source}: more than {_MAX_VALUES:,} values once YAML aliases (*name) are expanded. "
                              "A recipe is a few dozen keys: write the values out.")
        if depth > _MAX_DEPTH:
            raise ConfigError(f"{source}: nested more than {_MAX_DEPTH} levels deep. A recipe is section: key: value.")
        if isinstance(node, (dict, list)):
            if id(node) in parents:
                raise ConfigError(f"{source}: a YAML alias (*name) refers to the value that contains it. Write the value out.")
            for child in (node.values() if isinstance(node, dict) else node):
                walk(child, depth + 1, parents | {id(node)})

    walk(raw, 0, frozenset())


def _short(value: Any) -> str:
    """A bad value for a one-line message: repr, shortened (a pasted table or a 10 MB string stays short)."""
    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlevel = 60, 60, 2
    return r.repr(value)


def _substitute(node: Any, where: str) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        def env(m: re.Match) -> str:
            if m.group(1) not in os.environ:
                shown = where.replace("\n", "\\n").replace("\r", "\\r")  # a key may hold a line break; the message may not
                raise ConfigError(f"{shown}: environment variable ${{{m.group(1)}}} is not set. Set it or write the value in the recipe.")
            return os.environ[m.group(1)]
        return _ENV.sub(env, node)
    return node


def _model_for(raw: dict) -> type[_Section]:
    task = raw.get("task", "vision")
    models = {"vision": VisionRecipe, "tabular": TabularRecipe, "text": TextRecipe}
    if not isinstance(task, str) or task not in models:
        raise ConfigError(f"task: {_short(task)} is not a task; use vision, tabular or text.")
    return models[task]


def _all_sections(cls: type[_Section] = _Section) -> list[type[_Section]]:
    """Every section model, subclasses of subclasses included."""
    return [cls] + [m for sub in cls.__subclasses__() for m in _all_sections(sub)]


def _yaml_path(e: dict) -> tuple:
    """The error's location as YAML keys: pydantic adds a tag per union member ('int', "literal['auto']",
    'AugmentSection', ...), which is not a key; an unknown key is always the last part."""
    if not e["loc"]:
        return ()
    keys = {k for m in _all_sections() for k in m.model_fields}
    *parents, last = e["loc"]
    kept = tuple(p for p in parents if isinstance(p, int) or p in keys)
    return kept + (last,) if e["type"] == "extra_forbidden" or isinstance(last, int) or last in keys else kept


def _explain(err: ValidationError, model: type[BaseModel], source: str) -> ConfigError:
    errors = err.errors()
    # the error that got furthest into the YAML: `augment: {flp: true}` is a misspelt key (and `{max_rotate: x}`
    # a bad number) inside the settings, not "augment is not a bool"
    e = max(errors, key=lambda x: (x["type"] == "extra_forbidden", len(_yaml_path(x))))
    path = _yaml_path(e)
    loc = ".".join(str(p) for p in path)
    if e["type"] == "extra_forbidden":
        parent: Any = model
        for part in path[:-1]:
            field = parent.model_fields.get(str(part)) if isinstance(parent, type) and issubclass(parent, BaseModel) else None
            ann = field.annotation if field else None
            parent = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        known = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(e["loc"][-1]), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(known)}."
        return ConfigError(f"{source}: unknown key {loc!r}.{hint}")
    alternatives = dict.fromkeys(x["msg"] for x in errors if _yaml_path(x) == path)  # each member of a union
    return ConfigError(f"{source}: {loc}: {'; or '.join(alternatives)} (got {_short(e.get('input'))}).")


def parse_recipe(raw: dict | None, source: str = "recipe") -> VisionRecipe | TabularRecipe | TextRecipe:
    """Validate a recipe mapping (after ${ENV} substitution); errors name the key path and what was expected."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping of sections (task, data, model, ...), not {type(raw).__name__}.")
    _check_shape(raw, source)
    try:
        raw = _substitute(raw, "")
        model = _model_for(raw)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise _explain(err, model, source) from None


def load_recipe(path_or_name: str | Path) -> VisionRecipe | TabularRecipe | TextRecipe:
    """Load a recipe file, or a shipped recipe by name (e.g. 'vision')."""
    path = find_recipe(path_or_name)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}). Save the recipe as UTF-8.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {_yaml_problem(e)}") from None
    except RecursionError:  # PyYAML's parser recurses once per nesting level
        raise ConfigError(f"{path}: nested too deeply to read. A recipe is section: key: value.") from None
    except (ValueError, KeyError, AttributeError, IndexError, TypeError) as e:  # PyYAML's own errors for `!!int abc`,
        # `!!bool maybe`, `!!timestamp x` or a 5,000-digit number: the value does not fit its type
        raise ConfigError(f"{path}: not valid YAML: a value does not fit its type or !!tag "
                          f"({type(e).__name__}: {_short(str(e))}). Write plain values without !! tags.") from None
    return parse_recipe(raw, str(path))


def _yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's several-line error as one line: where, what, and why a Python tag is refused."""
    mark = getattr(e, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = " ".join(str(getattr(e, "problem", None) or e).split())
    hint = ""
    if "python/" in problem:  # e.g. !!python/object/apply:os.system: safe_load constructs no objects
        hint = " Recipes are plain data: Python tags (!!python/...) are refused, never run. Write the value itself."
    return f"not valid YAML{at}: {problem}.{hint}"


def shipped_recipes() -> dict[str, Path]:
    """Name -> path of the recipes installed with quicklearn."""
    from importlib.resources import files

    folder = Path(str(files("quicklearn_recipes")))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def find_recipe(path_or_name: str | Path) -> Path:
    p = Path(path_or_name).expanduser()
    if p.is_file():
        return p
    shipped = shipped_recipes()
    if str(path_or_name) in shipped:
        return shipped[str(path_or_name)]
    close = difflib.get_close_matches(str(path_or_name), list(shipped), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"recipe {str(path_or_name)!r}: no such file or shipped recipe.{hint} Shipped: {', '.join(shipped)}.")


def merge_overrides(recipe: BaseModel, overrides: dict[str, Any]) -> Any:
    """A copy of `recipe` with dotted-key overrides applied (e.g. {'fit.epochs': 5}), validated again."""
    raw = recipe.model_dump()
    for key, value in overrides.items():
        if value is None:
            continue
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                # a section given as a bool (e.g. `augment: true`) or left empty becomes a mapping to set keys in
                node[part] = {"enabled": node[part]} if isinstance(node.get(part), bool) else {}
            node = node[part]
        node[parts[-1]] = value
    return parse_recipe(raw, "options")
