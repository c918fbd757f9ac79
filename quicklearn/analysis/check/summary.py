"""The terminal summary: one row per check with its count and the worst examples, and the one-line notes `train`
prints for its quick pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicklearn.analysis.check.findings import Finding, Report

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["summary_table", "example", "quick_lines"]


def example(f: Finding, width: int = 70) -> str:
    """One finding in a few words: its items (and splits), its score."""
    items = [f"{i} ({s})" if f.splits else i for i, s in zip(f.items, f.splits or [""] * len(f.items))]
    text = " = ".join(items[:3]) + (f" +{len(items) - 3}" if len(items) > 3 else "")
    if f.given is not None:
        text += f": {f.given} -> {f.suggested}"
    elif f.detail:
        text += f": {f.detail}"
    return text if len(text) <= width else text[: width - 3] + "..."


def summary_table(report: Report, n_examples: int = 2) -> "Table":
    """A rich table: each kind checked, how many findings, the worst examples (strict kinds marked)."""
    from rich.table import Table

    what = "quick check" if report.quick else "check"
    table = Table(title=f"{what} of {report.data}: {report.n} {report.items}, {report.wall_s:.1f} s")
    table.add_column("check")
    table.add_column("found", justify="right")
    table.add_column("worst examples")
    for kind in report.kinds:
        found = report.of(kind.name)
        style = "bold red" if found and kind.strict else ("yellow" if found else "green")
        table.add_row(kind.title + (" [strict]" if kind.strict else ""), f"[{style}]{len(found)}[/]",
                      "\n".join(example(f) for f in found[:n_examples]))
    for note in report.skipped:
        table.add_row(f"[dim]skipped: {note}[/]", "", "")
    return table


def quick_lines(report: Report) -> list[str]:
    """One line per problem `train`'s quick pass found (counted by kind), each naming `quicklearn check`."""
    lines = []
    for kind in report.kinds:
        found = report.of(kind.name)
        if found:
            lines.append(f"data check: {len(found)} x {kind.title}, e.g. {example(found[0], 90)}. "
                         f"Run `quicklearn check --data {report.data}` for the full report.")
    return lines
