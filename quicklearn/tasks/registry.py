"""The task registry: every task by name, and the one that fits some data.

Like timm's model registry, a name resolves to an object that knows how to build and load its models. Built-in
tasks are listed below, one line each; a package adds its own through the entry-point group `quicklearn.tasks`
(`[project.entry-points."quicklearn.tasks"] toy = "my_package.toy:TASK"`), whose object is a Task (or a Task
subclass). Tasks load on the first look-up, so `import quicklearn` stays cheap.

Task inference (`quicklearn train --data X` without --task) asks every task's `detect` by ascending
`detect_order`: segmentation (5), images (10), ratings (15), texts (20), then tables (90, the fallback for any
CSV); ties by name. The data is the one task's that claims it; two claims are an error that names both, unless one
task `refines` the other (its data is a special case of the other's: segmentation's photos-and-masks folder is also
a folder of images), and then it wins; a fallback claims only what no other task does. A task may answer "mine or
another's: say which" (a ConfigError); that is raised only when no other task is sure.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from importlib.metadata import entry_points
from pathlib import Path

from quicklearn.core.errors import ConfigError, DataError
from quicklearn.tasks.base import Task

__all__ = ["BUILTIN_TASKS", "DEFAULT_TASK", "ENTRY_POINT_GROUP", "register_task", "get_task", "all_tasks", "task_names",
           "infer_task"]

log = logging.getLogger("quicklearn")

# name -> "module:attribute" of its Task object. Adding a built-in task is one line here.
BUILTIN_TASKS: dict[str, str] = {
    "vision": "quicklearn.tasks.vision.task:TASK",
    "tabular": "quicklearn.tasks.tabular.task:TASK",
    "text": "quicklearn.tasks.text.task:TASK",
    "collab": "quicklearn.tasks.collab.task:TASK",
    "segment": "quicklearn.tasks.segment.task:TASK",
}
DEFAULT_TASK = "vision"  # a recipe without `task:`, and `quicklearn train` with neither data nor a task
ENTRY_POINT_GROUP = "quicklearn.tasks"

_TASKS: dict[str, Task] = {}  # the registry itself: filled once, on the first look-up


def register_task(task: Task | type[Task]) -> Task:
    """Add a task (an instance, or a subclass to instantiate) under its `name`; returns the instance."""
    obj = task() if isinstance(task, type) else task
    if not isinstance(obj, Task):
        raise ConfigError(f"{task!r} is not a quicklearn Task (subclass quicklearn.tasks.base.Task).")
    for attr in ("name", "summary", "recipe"):
        if not hasattr(obj, attr):
            raise ConfigError(f"task {type(obj).__name__} has no {attr!r}; every task names itself, says what it "
                              "does in one line and gives its recipe model.")
    known = _TASKS.get(obj.name)
    if known is not None and type(known) is not type(obj):
        raise ConfigError(f"two tasks are named {obj.name!r}: {type(known).__module__} and {type(obj).__module__}.")
    _TASKS[obj.name] = obj
    return obj


def _load_object(spec: str) -> object:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _ensure_loaded() -> None:
    if _TASKS:
        return
    for spec in BUILTIN_TASKS.values():
        register_task(_load_object(spec))  # type: ignore[arg-type]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_task(ep.load())
        except Exception as e:  # a broken third-party task must not take the built-in ones down
            log.warning("task %r from the %s entry point %s could not be loaded: %s: %s", ep.name, ENTRY_POINT_GROUP,
                        ep.value, type(e).__name__, e)


def all_tasks() -> list[Task]:
    """Every registered task, in task-inference order."""
    _ensure_loaded()
    return sorted(_TASKS.values(), key=lambda t: (t.detect_order, t.name))


def task_names() -> list[str]:
    return [t.name for t in all_tasks()]


def get_task(name: str) -> Task:
    """The task called `name`; a ConfigError with the closest names when there is none."""
    _ensure_loaded()
    task = _TASKS.get(str(name))
    if task is None:
        names = task_names()
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"task {str(name)!r} is not a task.{hint} Tasks: {', '.join(names)}.")
    return task


def infer_task(data: str | Path) -> tuple[Task, str]:
    """The task whose data `data` is, and why; a ConfigError asking for --task when none or several claim it."""
    p = Path(data).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder. Check --data.")
    claims: list[tuple[Task, str]] = []
    doubts: list[ConfigError] = []  # "could be mine or another's": raised only when no other task is sure
    for t in all_tasks():
        try:
            why = t.detect(p)
        except ConfigError as e:
            doubts.append(e)
            continue
        if why:
            claims.append((t, why))
    specific = [(t, why) for t, why in claims if not t.fallback]
    refined = {name for t, _ in specific for name in t.refines}  # a task's special case of another's data wins
    specific = [(t, why) for t, why in specific if t.name not in refined]
    if doubts and not specific:
        raise doubts[0]
    if len(specific) > 1:
        (a, wa), (b, wb) = specific[:2]
        raise ConfigError(f"{p}: could be {a.name} data ({wa}) or {b.name} data ({wb}); say which with "
                          f"--task {a.name} or --task {b.name}.")
    if specific or claims:
        return (specific or claims)[0]
    what = "folder" if p.is_dir() else f"{p.suffix or 'extensionless'} file"
    raise ConfigError(f"{p}: cannot tell the task from this {what}. Pass --task {'|'.join(task_names())}.")
