"""The structure holds: no import cycle inside quicklearn (module- and function-level imports, and modules
imported by name), and outside quicklearn/tasks/ nothing knows a built-in task."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "quicklearn"
# every built-in task: each folder of quicklearn/tasks/ with a task.py (a new task is guarded the day it lands)
BUILTIN = tuple(sorted(p.parent.name for p in (PKG / "tasks").glob("*/task.py")))
MODULE_STRING = re.compile(r"^(quicklearn(?:\.\w+)+)(?::\w+)?$")  # "quicklearn.tasks.vision.task:TASK"


def _modules() -> dict[str, Path]:
    mods = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The quicklearn modules `module` imports anywhere in it (functions too), TYPE_CHECKING blocks aside, plus
    modules it names as 'quicklearn.x.y[:attr]' strings (imported by name, like the task registry does)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            for a in node.names:  # `from pkg import module` imports the module
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := MODULE_STRING.match(node.value)):
            found.add(m.group(1))
    return {f for f in found if f in known and f != module}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {m: _imports(m, p, known) for m, p in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_function_level_imports_and_finds_a_planted_cycle():
    graph = _graph()
    assert "quicklearn.serving.folder" in graph["quicklearn.train.learner"]  # imported inside Learner.export
    assert "quicklearn.tasks.vision.task" in graph["quicklearn.tasks.registry"]  # named in BUILTIN_TASKS
    planted = {k: set(v) for k, v in graph.items()}
    planted["quicklearn.core.errors"].add("quicklearn.train.learner")  # learner -> core.errors -> learner
    assert any({"quicklearn.core.errors", "quicklearn.train.learner"} <= set(c) for c in _cycles(planted))


def test_no_import_cycle_inside_quicklearn():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _outside_tasks() -> list[tuple[str, Path]]:
    """Every module of quicklearn outside quicklearn/tasks/ (the public __init__ aside: its lazy export table
    names each task's public functions), and the CLI."""
    mods = [(m, p) for m, p in _modules().items() if not m.startswith("quicklearn.tasks") and m != "quicklearn"]
    mods += [(f"quicklearn_cli.{p.stem}", p) for p in sorted((ROOT / "cli").glob("*.py"))]
    return mods


def test_outside_tasks_nothing_imports_a_task_folder_or_names_a_builtin_task():
    known = _modules()
    problems = []
    for module, path in _outside_tasks():
        for target in sorted(_imports(module, path, known)):
            if any(target.startswith(f"quicklearn.tasks.{name}") for name in BUILTIN):
                problems.append(f"{module} imports {target}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                consts += [e.value for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set))
                           for e in c.elts if isinstance(e, ast.Constant)]
                if any(v in BUILTIN for v in consts):
                    problems.append(f"{module}:{node.lineno} compares with a task name: {ast.unparse(node)}")
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "isinstance":
                if re.search(rf"\b({'|'.join(n.title() for n in BUILTIN)})\w*(Recipe|Predictor|DataLoaders|Task)\b",
                             ast.unparse(node), re.IGNORECASE):
                    problems.append(f"{module}:{node.lineno} isinstance-checks a task's class: {ast.unparse(node)}")
    assert not problems, "\n".join(problems)
