"""`ql.check(data)`: what is wrong with a data set, before training on it (what `quicklearn check` prints).

    report = ql.check("photos/")                               # the task inferred from the data, as for train
    report = ql.check("table.csv", target="label", out="report/")
    report.count("leakage"), report.exit_code(strict=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quicklearn.analysis.check.findings import Report
from quicklearn.analysis.check.run import run_checks
from quicklearn.core.errors import ConfigError

__all__ = ["check"]


def check(data: str | Path, *, task: str | None = None, target: str | None = None, out: str | Path | None = None,
          quick: bool = False, progress: bool | None = None, options: dict[str, Any] | None = None) -> Report:
    """Check `data` (a folder of images, a CSV) with its task's checkers and return the Report; `out` also writes
    report.md, issues.csv and the contact sheets there. task: inferred from the data when None; target: the label
    column of a CSV; options: recipe keys the task reads ({"transforms.size": 160}); quick: only the cheap checks
    (`train`'s). The label-error and leakage probes need `pip install 'quicklearn[check]'`: without it they are
    skipped and the report says so."""
    from quicklearn.config.schema import merge_overrides, parse_recipe
    from quicklearn.tasks.registry import get_task, infer_task

    found = get_task(task) if task else infer_task(data)[0]
    recipe = parse_recipe({"task": found.name})
    recipe = merge_overrides(recipe, {"data.path": str(data), **({"data.y": target} if target else {}),
                                      **(options or {})})
    checks = found.data_checks(recipe)
    if checks is None:
        raise ConfigError(f"checking data (quicklearn check) is not available for {found.name} data.")
    report = run_checks(checks, quick=quick, progress=progress)
    if out is not None:
        from quicklearn.analysis.check.write import write_report

        write_report(report, checks, out)
    return report
