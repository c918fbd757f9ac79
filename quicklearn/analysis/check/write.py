"""What `quicklearn check --out DIR` writes: issues.csv (one row per finding: kind, items, score, suggestion, ...),
report.md (the summary, each kind's worst findings, the facts, the sheets) and the contact sheets (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quicklearn.analysis.check.findings import DataChecks, Finding, Report
from quicklearn.analysis.check.summary import example

__all__ = ["ISSUE_COLUMNS", "write_report", "issues_frame"]

ISSUE_COLUMNS = ["kind", "items", "n_items", "score", "suggestion", "detail", "splits", "given", "suggested"]
_DUPLICATE_KINDS = ("leakage", "near_leakage", "duplicate", "near_duplicate")


def issues_frame(report: Report) -> Any:
    """The findings as a DataFrame, one row each, issues.csv's columns."""
    import pandas as pd

    return pd.DataFrame([f.row() for f in report.findings], columns=ISSUE_COLUMNS)


def write_report(report: Report, checks: DataChecks, out: str | Path, max_rows: int = 12) -> list[Path]:
    """Write issues.csv, report.md and (when the items are images) the contact sheets into `out`; the paths."""
    from quicklearn.core.fileio import write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "issues.csv"]
    issues_frame(report).to_csv(written[0], index=False)
    sheets = _sheets(report, checks, out, max_rows)
    written += sheets
    write_text(out / "report.md", _markdown(report, sheets, out))
    written.insert(1, out / "report.md")
    report.files = written
    return written


def _image(checks: DataChecks, name: str) -> np.ndarray | None:
    if checks.preview is None:
        return None
    img = checks.preview(name)
    return img if isinstance(img, np.ndarray) else None


def _sheets(report: Report, checks: DataChecks, out: Path, max_rows: int) -> list[Path]:
    from quicklearn.analysis.check.sheets import grid_figure, pairs_figure
    from quicklearn.analysis.plots import save_figure

    written = []
    rows = []
    for f in [f for k in _DUPLICATE_KINDS for f in report.of(k)][:max_rows]:
        a, b = _image(checks, f.items[0]), _image(checks, f.items[1])
        if a is None or b is None:
            continue
        sa, sb = (f.splits or ["", ""])[:2]
        score = f" ({f.score:.3f})" if f.score is not None else ""
        rows.append((a, f"{f.items[0]} [{sa}]", b, f"{f.items[1]} [{sb}]", f"{report.kind(f.kind).title}{score}"))
    if rows:
        written.append(save_figure(pairs_figure(rows, f"duplicate pairs in {report.data}"), out / "duplicates.png"))
    for kind, name, caption in (
            ("label_error", "label_errors.png",
             lambda f: f"{f.items[0]}\ngiven {f.given} -> {f.suggested} ({f.score:.2f})"),
            ("outlier", "outliers.png", lambda f: f"{f.items[0]}\nz = {f.score:.1f}")):
        items = [(img, caption(f)) for f in report.of(kind)[:16] if (img := _image(checks, f.items[0])) is not None]
        if items:
            title = f"{report.kind(kind).title} in {report.data} (top {len(items)})"
            written.append(save_figure(grid_figure(items, title), out / name))
    return written


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(report: Report, sheets: list[Path], out: Path) -> str:
    lines = [f"# Data check: {report.data}", "",
             f"{report.n} {report.items}, task {report.task}, {report.wall_s:.1f} s. "
             f"One row per finding in [issues.csv](issues.csv).", ""]
    if report.facts:
        lines += [f"- {fact}" for fact in report.facts] + [""]
    lines += ["| check | found | strict |", "|---|---:|---|"]
    lines += [f"| {k.title} | {report.count(k.name)} | {'yes' if k.strict else ''} |" for k in report.kinds]
    lines += [""] + [f"- skipped: {s}" for s in report.skipped] + ([""] if report.skipped else [])
    for k in report.kinds:
        found: list[Finding] = report.of(k.name)
        if not found:
            continue
        lines += [f"## {k.title} ({len(found)})", "", "| items | score | suggestion |", "|---|---:|---|"]
        for f in found[:20]:
            score = "" if f.score is None else f"{f.score:.3f}"
            lines.append(f"| {_cell(example(f, 200))} | {score} | {_cell(f.suggestion)} |")
        if len(found) > 20:
            lines.append(f"| ... {len(found) - 20} more in issues.csv | | |")
        lines.append("")
    for s in sheets:
        lines += [f"![{s.stem}]({s.relative_to(out)})", ""]
    return "\n".join(lines)
