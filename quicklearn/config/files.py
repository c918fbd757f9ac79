"""Recipe files: YAML read with yaml.safe_load only, the shipped recipes, a recipe by name or path."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from quicklearn.config.schema import _short, parse_recipe
from quicklearn.config.sections import Recipe
from quicklearn.core.errors import ConfigError

__all__ = ["load_recipe", "shipped_recipes", "find_recipe"]


def load_recipe(path_or_name: str | Path) -> Recipe:
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
