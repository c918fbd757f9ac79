"""Class counts as findings, for every task with classes: imbalance, classes too small to split, and classes that
only one of train/valid has (a label spelled differently in the validation set is one of them)."""

from __future__ import annotations

from typing import Sequence

from quicklearn.analysis.check.findings import Finding

__all__ = ["FEW_ITEMS", "IMBALANCE", "count_classes", "class_findings"]

FEW_ITEMS = 5  # a class with fewer items cannot be split and learnt
IMBALANCE = 5.0  # the largest class over this many times a class's size


def count_classes(labels: Sequence[str], splits: Sequence[str], classes: Sequence[str]) -> dict[str, list[int]]:
    """class -> [train count, valid count]."""
    counts = {c: [0, 0] for c in classes}
    for label, split in zip(labels, splits):
        counts.setdefault(label, [0, 0])[0 if split == "train" else 1] += 1
    return counts


def class_findings(counts: dict[str, list[int]], items: str) -> list[Finding]:
    """The findings of class counts (class -> [train, valid]): few_items, imbalance, split_classes."""
    out: list[Finding] = []
    largest = max((a + b for a, b in counts.values()), default=0)
    for c, (a, b) in counts.items():
        n = a + b
        if n < FEW_ITEMS:
            out.append(Finding("few_items", [c], float(n), f"add {items} of {c!r} (at least {FEW_ITEMS}) or drop it",
                               f"{n} {items} ({a} train, {b} valid)"))
        elif largest / max(n, 1) > IMBALANCE:
            out.append(Finding("imbalance", [c], largest / n, "add more of it, or train with --class-weights balanced",
                               f"{n} {items}, the largest class has {largest}"))
        if (a == 0) != (b == 0):
            only = "train" if b == 0 else "valid"
            out.append(Finding("split_classes", [c], float(n), f"give {c!r} {items} in both splits (or fix its "
                               "spelling)", f"only in {only} ({n} {items})"))
    return sorted(out, key=lambda f: (f.kind, -(f.score or 0)))
