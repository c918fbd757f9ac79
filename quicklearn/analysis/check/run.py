"""Running a task's checkers into a Report: in order, each timed; a checker whose module is missing is skipped and
the report says which extra installs it; `quick` runs only the cheap ones (what `quicklearn train` runs first).

    report = run_checks(task.data_checks(recipe))            # quicklearn check
    report = quick_check(task, recipe)                       # quicklearn train: hashes, leakage, hidden folders
"""

from __future__ import annotations

import importlib.util
import time
from typing import TYPE_CHECKING, Any

from quicklearn.analysis.check.findings import CheckContext, DataChecks, Finding, Report

if TYPE_CHECKING:
    from quicklearn.tasks.base import Task

__all__ = ["run_checks", "quick_check", "EXTRA"]

EXTRA = "check"  # pip install 'quicklearn[check]': scikit-learn and cleanlab, for the label-error and leakage probes


def run_checks(checks: DataChecks, *, quick: bool = False, progress: bool | None = None) -> Report:
    """Run `checks`' checkers (only the cheap ones, in their cheap form, when `quick`) and collect what they find."""
    t0 = time.perf_counter()
    ctx = CheckContext(quick=quick, progress=progress)
    findings: list[Finding] = []
    kinds, skipped, timings = [], [], {}
    for checker in checks.checkers:
        if quick and not checker.cheap:
            continue
        missing = [m for m in checker.needs if importlib.util.find_spec(m) is None]
        if missing:
            skipped.append(f"{checker.name}: needs {', '.join(missing)} (pip install 'quicklearn[{EXTRA}]')")
            continue
        for k in checker.kinds:
            if k.name not in {x.name for x in kinds}:
                kinds.append(k)
        t = time.perf_counter()
        findings += checker.run(ctx)
        timings[checker.name] = round(time.perf_counter() - t, 3)
    return Report(checks.task, checks.data, checks.items, checks.n, kinds, findings, ctx.facts, skipped, quick,
                  time.perf_counter() - t0, timings, str(checks.root) if checks.root else None)


def quick_check(task: "Task", recipe: Any, progress: bool | None = False) -> Report | None:
    """`train`'s pass over the data before it starts: the task's cheap checks (no embeddings, no cleanlab); None when
    the task has no data checks."""
    checks = task.data_checks(recipe)
    if checks is None:
        return None
    return run_checks(checks, quick=True, progress=progress)
