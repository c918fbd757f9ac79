"""Recipes: YAML -> validated config objects -> the same Python API a user calls.

A recipe is one registered task's recipe model (tasks/<name>/recipe.py, built from config/sections.py), chosen
by its `task:` key (the registry's default task when it has none). Its sections mirror the keyword arguments of
the functions they feed. `${ENV_VAR}` in any string value is taken from the environment. Errors name the key path
and what was expected, with the closest known key for a misspelt one.
"""

from __future__ import annotations

import difflib
import os
import re
import reprlib
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, ValidationError, create_model

from quicklearn.config.sections import Recipe, Section
from quicklearn.core.errors import ConfigError
from quicklearn.tasks.registry import DEFAULT_TASK, all_tasks

__all__ = ["parse_recipe", "recipe_schema", "merge_overrides", "recipe_models"]


def recipe_models() -> dict[str, type[Recipe]]:
    """Each registered task's recipe model, by task name."""
    return {t.name: t.recipe for t in all_tasks()}


def recipe_schema() -> dict:
    """The JSON schema of a recipe, generated from the registered tasks' models (`quicklearn recipes schema`)."""
    models = list(recipe_models().values())
    root = create_model("RecipeRoot", recipe=(Annotated[Union[tuple(models)], Field(discriminator="task")], ...))
    return root.model_json_schema()["$defs"] | {"oneOf": [m.__name__ for m in models]}


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


def _model_for(raw: dict) -> type[Recipe]:
    task = raw.get("task", DEFAULT_TASK)
    models = recipe_models()
    if not isinstance(task, str) or task not in models:
        raise ConfigError(f"task: {_short(task)} is not a task; use {', '.join(models)}.")
    return models[task]


def _all_sections(cls: type[Section] = Section) -> list[type[Section]]:
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


def parse_recipe(raw: dict | None, source: str = "recipe") -> Recipe:
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


def merge_overrides(recipe: BaseModel, overrides: dict[str, Any]) -> Recipe:
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
