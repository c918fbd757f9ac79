"""Recipes: every shipped one validates and (for vision) trains a step; errors name the key; sections track the API."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import quicklearn as ql
from quicklearn.config.files import load_recipe, shipped_recipes
from quicklearn.config.run import run_recipe
from quicklearn.config.schema import merge_overrides, parse_recipe
from quicklearn.config.sections import FitSection
from quicklearn.core.errors import ConfigError, DataError
from quicklearn.tasks.vision.recipe import (
    VisionData,
    VisionModel,
    VisionRecipe,
    VisionTraining,
    VisionTransforms,
    learner_kwargs,
)

SHIPPED = sorted(shipped_recipes())
VISION = [n for n in SHIPPED if yaml.safe_load(shipped_recipes()[n].read_text()).get("task", "vision") == "vision"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist_few(mnist_tiny: Path, tmp_path_factory) -> Path:
    """8 training and 4 validation images per class of mnist-tiny: one training batch."""
    root = tmp_path_factory.mktemp("mnist-few")
    for split, n in (("train", 8), ("valid", 4)):
        for label in ("3", "7"):
            (root / split / label).mkdir(parents=True)
            for f in sorted((mnist_tiny / split / label).glob("*.png"))[:n]:
                shutil.copy(f, root / split / label / f.name)
    return root


def test_the_expected_recipes_ship() -> None:
    assert {"vision", "vision-fast-cpu", "vision-accurate", "tabular", "text"} <= set(SHIPPED)
    assert {"vision", "vision-fast-cpu", "vision-accurate"} <= set(VISION)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_recipe_validates(name: str, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUICKLEARN_DATA", str(tmp_path))
    recipe = load_recipe(name)
    assert recipe.task == yaml.safe_load(shipped_recipes()[name].read_text()).get("task", "vision")
    if name == "vision-fast-cpu":
        assert recipe.data.path == str(tmp_path)  # ${QUICKLEARN_DATA} substituted
    assert load_recipe(shipped_recipes()[name]) == recipe  # by file path too


@pytest.mark.parametrize("name", VISION)
def test_every_shipped_vision_recipe_trains_a_step_on_cpu(name: str, mnist_few: Path, monkeypatch) -> None:
    monkeypatch.setenv("QUICKLEARN_DATA", str(mnist_few))
    recipe = load_recipe(name)
    kw = learner_kwargs(recipe) | {"weights": None, "size": 32, "device": "cpu"}
    learn = ql.vision_learner(mnist_few, progress=False, **kw)
    assert learn.config["model"]["arch"] == recipe.model.arch
    assert learn.loss_func.label_smoothing == recipe.training.label_smoothing
    before = [p.detach().clone() for p in learn.model.parameters()]
    assert len(learn.dls.train) == 1
    learn.fit(1, recipe.fit.base_lr)
    (h,) = learn.history
    assert torch.isfinite(torch.tensor([h["train_loss"], h["valid_loss"]])).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters())), "one step changed the weights"


# ---- validation errors ----------------------------------------------------------------------------
def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"fit\.epoch.*Did you mean 'epochs'\?"):
        parse_recipe({"fit": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"Did you mean 'transforms'\?"):
        parse_recipe({"transform": {"size": 64}})
    with pytest.raises(ConfigError, match=r"head\.dropuot.*Did you mean 'dropout'\?"):
        parse_recipe({"model": {"head": {"dropuot": 0.1}}})
    with pytest.raises(ConfigError, match=r"task: 'audio'"):
        parse_recipe({"task": "audio"})


def test_wrong_type_names_the_yaml_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fit\.epochs:.*'many'"):
        parse_recipe({"fit": {"epochs": "many"}})
    with pytest.raises(ConfigError, match=r"transforms\.size:.*greater than or equal to 8"):
        parse_recipe({"transforms": {"size": 4}})
    # a union (int | 'auto', bool | settings): the path is the YAML key, not pydantic's member tag, and every
    # alternative is named; a mistake inside the settings is reported there
    with pytest.raises(ConfigError, match=r"recipe: training\.bs: .*integer.*; or .*'auto' \(got 'lots'\)") as info:
        parse_recipe({"training": {"bs": "lots"}})
    assert "bs.int" not in str(info.value)
    with pytest.raises(ConfigError, match=r"unknown key 'transforms\.augment\.flp'\. Did you mean 'flip'\?"):
        parse_recipe({"transforms": {"augment": {"flp": True}}})
    with pytest.raises(ConfigError, match=r"transforms\.augment\.max_rotate: .*number \(got 'x'\)"):
        parse_recipe({"transforms": {"augment": {"max_rotate": "x"}}})
    with pytest.raises(ConfigError, match=r"training\.class_weights\.1: .*number"):
        parse_recipe({"training": {"class_weights": [1.0, "x"]}})
    path = tmp_path / "bad.yaml"
    path.write_text("task: vision\ntraining:\n  bs: lots\n")
    with pytest.raises(ConfigError, match=rf"{path.name}: training\.bs:.*'lots'"):
        load_recipe(path)
    path.write_text("task: vision\nfit: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(path)


def test_env_var_substitution_and_unset_variable(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QL_TEST_DATA", "/data/pets")
    monkeypatch.setenv("QL_TEST_ARCH", "resnet18")
    recipe = parse_recipe({"data": {"path": "${QL_TEST_DATA}/train"}, "model": {"arch": "${QL_TEST_ARCH}"}})
    assert (recipe.data.path, recipe.model.arch) == ("/data/pets/train", "resnet18")
    monkeypatch.delenv("QL_TEST_DATA")
    with pytest.raises(ConfigError, match=r"data\.path: environment variable \$\{QL_TEST_DATA\} is not set"):
        parse_recipe({"data": {"path": "${QL_TEST_DATA}"}})
    monkeypatch.delenv("QUICKLEARN_DATA", raising=False)
    with pytest.raises(ConfigError, match=r"QUICKLEARN_DATA"):
        load_recipe("vision-fast-cpu")


def test_unknown_recipe_name_suggests_a_shipped_one() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean 'vision-accurate'\?"):
        load_recipe("vision-acurate")


def test_recipe_without_data_path_is_a_clear_error_when_training(tmp_path: Path) -> None:
    path = tmp_path / "no-data.yaml"
    path.write_text("task: vision\nmodel:\n  weights: none\ntransforms:\n  size: 32\n")
    recipe = load_recipe(path)
    assert recipe.data.path is None
    with pytest.raises(ConfigError, match=r"no data: give --data PATH or set data\.path"):
        run_recipe(recipe, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    missing = merge_overrides(recipe, {"data.path": str(tmp_path / "nowhere")})
    with pytest.raises(DataError, match="nowhere"):
        run_recipe(missing, out=tmp_path / "out2")


def test_text_and_tabular_recipes_need_a_target(tmp_path: Path) -> None:
    for name in ("text", "tabular"):
        recipe = merge_overrides(load_recipe(name), {"data.path": str(tmp_path / "t.csv")})
        with pytest.raises(ConfigError, match=f"{name} data needs its target column"):
            run_recipe(recipe, out=tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_merge_overrides_validates_again() -> None:
    recipe = merge_overrides(load_recipe("vision"), {"fit.epochs": 5, "model.head.dropout": 0.5, "data.y": None})
    assert recipe.fit.epochs == 5 and recipe.model.head.dropout == 0.5
    with pytest.raises(ConfigError, match=r"fit\.epochs"):
        merge_overrides(recipe, {"fit.epochs": -1})


# ---- the recipe sections are the API's keywords -----------------------------------------------------
def _kwonly(fn) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(fn).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_vision_sections_match_vision_learner() -> None:
    fields = {}
    for section in (VisionData, VisionTransforms, VisionModel, VisionTraining):
        assert not set(fields) & set(section.model_fields), "a key appears in two sections"
        fields |= section.model_fields
    fields.pop("path")
    params = {n: p for n, p in _kwonly(ql.vision_learner).items() if n not in {"cbs", "progress", "recipe", "path"}}
    assert set(fields) == set(params)
    for name, p in params.items():  # the defaults agree too: a recipe and a plain call train the same model
        assert fields[name].default == p.default, name
    assert set(VisionRecipe.model_fields) == {"task", "data", "transforms", "model", "training", "fit", "output"}


def test_tabular_sections_match_tabular_learner() -> None:
    from quicklearn.tasks.tabular.recipe import TabularData, TabularModelSection, TabularTraining

    fields = {}
    for section in (TabularData, TabularModelSection, TabularTraining):
        assert not set(fields) & set(section.model_fields), "a key appears in two sections"
        fields |= section.model_fields
    for name in ("path", "y"):  # tabular_learner's positional arguments
        fields.pop(name)
    params = {n: p for n, p in _kwonly(ql.tabular_learner).items() if n not in {"cbs", "progress", "recipe", "path"}}
    assert set(fields) == set(params)
    for name, p in params.items():  # a recipe and a plain call train the same model (lists and tuples alike)
        want = list(p.default) if isinstance(p.default, tuple) else p.default
        assert fields[name].default == want, name


def test_fit_section_matches_fine_tune() -> None:
    params = {n: p for n, p in inspect.signature(ql.Learner.fine_tune).parameters.items() if n not in {"self", "resume"}}
    assert set(FitSection.model_fields) == set(params)
    for name, p in params.items():
        if p.default is not inspect.Parameter.empty:
            assert FitSection.model_fields[name].default == p.default, name
