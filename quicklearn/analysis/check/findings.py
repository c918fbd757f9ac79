"""The objects of a data check: a Kind of problem, a Finding (one problem, naming the files or rows involved), a
Checker (one check a task runs), DataChecks (what a task checks in a recipe's data) and the Report.

    checks = task.data_checks(recipe)              # DataChecks: the task's checkers over its items
    report = run_checks(checks)                    # analysis/check/run.py: a Report
    report.count("leakage"), report.failed(strict=True)

A task declares the kinds each checker may find (so the summary also shows the checks that found nothing) and
whether a kind fails `--strict` (leakage and unreadable data do: a CI pipeline stops on them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["Kind", "Finding", "CheckContext", "Checker", "DataChecks", "Report", "SHARED_KINDS", "item_name",
           "labelled_rows", "split_names"]


@dataclass(frozen=True)
class Kind:
    """A kind of problem: its name (issues.csv's `kind`), how the summary titles it, whether --strict fails on it."""

    name: str
    title: str
    strict: bool = False


# Kinds more than one task finds (each task adds its own beside them).
SHARED_KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("unreadable", "unreadable, truncated or odd files", strict=True),
    Kind("duplicate", "exact duplicates within a split"),
    Kind("near_duplicate", "near duplicates within a split"),
    Kind("leakage", "exact duplicates across train/valid (leakage)", strict=True),
    Kind("near_leakage", "near duplicates across train/valid (leakage)", strict=True),
    Kind("imbalance", "imbalanced classes"),
    Kind("few_items", "classes too small to split"),
    Kind("split_classes", "classes in only one of train/valid"),
    Kind("label_error", "likely label errors (confident learning)"),
    Kind("outlier", "outliers by embedding distance"),
)}


@dataclass
class Finding:
    """One problem: its kind, the files or rows involved (as the data names them: paths relative to the data folder,
    `row 12`), a score (how sure or how bad: a similarity, 1 - the given label's probability, a share), what to do,
    and what a person needs to judge it. For duplicates `splits` gives each item's split; for label errors `given`
    and `suggested` are the labels."""

    kind: str
    items: list[str]
    score: float | None = None
    suggestion: str = ""
    detail: str = ""
    splits: list[str] | None = None
    given: str | None = None
    suggested: str | None = None

    def row(self) -> dict[str, Any]:
        """The finding as one row of issues.csv."""
        return {"kind": self.kind, "items": ";".join(self.items), "n_items": len(self.items),
                "score": None if self.score is None else round(float(self.score), 4), "suggestion": self.suggestion,
                "detail": self.detail, "splits": ";".join(self.splits) if self.splits else "",
                "given": self.given or "", "suggested": self.suggested or ""}


@dataclass
class CheckContext:
    """What a checker is told when it runs: whether this is `train`'s quick pass (hashes, leakage, hidden folders:
    no embeddings, no cleanlab), whether to show progress bars, and where to add facts for the report (class
    counts, the split, what was embedded with what)."""

    quick: bool = False
    progress: bool | None = None
    facts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Checker:
    """One check of a task: a name, the kinds of finding it may report, and the function that runs it.

    cheap: it also runs in `train`'s quick pass (then with `ctx.quick` true: only its cheap part, e.g. hashes and
    not embeddings). needs: modules it imports (e.g. "cleanlab"); when one is missing the check is skipped and the
    report says which extra to install."""

    name: str
    kinds: tuple[Kind, ...]
    run: Callable[[CheckContext], list[Finding]]
    cheap: bool = False
    needs: tuple[str, ...] = ()


@dataclass
class DataChecks:
    """What a task checks in one recipe's data: the checkers (run in order), the data as messages name it, the folder
    item names are relative to, what the items are called, how many there are, and how a contact sheet shows one
    item (`preview(name)` -> an RGB uint8 array (H, W, 3) or a text; None: the report has no sheets)."""

    task: str
    data: str
    items: str
    n: int
    checkers: list[Checker]
    root: Path | None = None
    preview: Callable[[str], Any] | None = None


@dataclass
class Report:
    """The outcome of a check: every finding, the kinds that were checked (in order), facts about the data, the
    checks skipped and why, and what was written (--out)."""

    task: str
    data: str
    items: str
    n: int
    kinds: list[Kind]
    findings: list[Finding]
    facts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    quick: bool = False
    wall_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    root: str | None = None
    files: list[Path] = field(default_factory=list)

    def of(self, kind: str) -> list[Finding]:
        """The findings of one kind, worst first (as the checker ordered them)."""
        return [f for f in self.findings if f.kind == kind]

    def count(self, kind: str) -> int:
        return len(self.of(kind))

    def kind(self, name: str) -> Kind:
        return next((k for k in self.kinds if k.name == name), SHARED_KINDS.get(name) or Kind(name, name))

    def failing(self) -> list[Finding]:
        """The findings that make --strict fail: those of a strict kind (leakage, unreadable data)."""
        strict = {k.name for k in self.kinds if k.strict}
        return [f for f in self.findings if f.kind in strict]

    def exit_code(self, strict: bool) -> int:
        """What `quicklearn check` exits with: 2 under --strict when a strict kind was found, else 0."""
        return 2 if strict and self.failing() else 0

    def items_of(self, kinds: Sequence[str]) -> set[str]:
        """Every item named by a finding of these kinds."""
        return {i for f in self.findings if f.kind in kinds for i in f.items}


def item_name(path: Path | str, root: Path) -> str:
    """A file as findings name it: its path relative to the data folder (posix), else the path as given."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def split_names(n: int, train: Any, valid: Any) -> list[str]:
    """Each of `n` items' split as findings name it: "train", "valid", or "" for an item in neither."""
    names = [""] * n
    for i in train:
        names[i] = "train"
    for i in valid:
        names[i] = "valid"
    return names


def labelled_rows(data: Any, what: str) -> tuple[Any, str, str]:
    """A labelled CSV's rows as training keeps them (those with a label; the index is the CSV's row number), the
    label column and how messages name the file. data: a recipe's data section (path, y); what: the checked data
    in the error that asks for the column ("a table needs its target column")."""
    from quicklearn.core.errors import ConfigError
    from quicklearn.data.frames import check_column, read_frame

    if not data.y:
        raise ConfigError(f"checking {what}: give --target COLUMN.")
    y = str(data.y)
    frame, where = read_frame(data.path)
    check_column(frame, y, "target", where)
    return frame[frame[y].notna()], y, where
