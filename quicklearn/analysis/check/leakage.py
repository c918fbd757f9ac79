"""Duplicate groups as findings, split by where their items sit: a group inside one split is a duplicate (it weighs
twice in training, or counts twice in the score); a group with items in both train and valid is leakage (the model
is scored on what it trained on, so the validation score is inflated).

    findings = group_findings(groups, names, splits, within="duplicate", across="leakage", score=..., what="copies")
"""

from __future__ import annotations

from typing import Callable, Sequence

from quicklearn.analysis.check.findings import Finding

__all__ = ["group_findings", "across_split"]


def across_split(group: Sequence[int], splits: Sequence[str]) -> bool:
    """Whether a group has items in more than one split."""
    return len({splits[i] for i in group}) > 1


def group_findings(groups: Sequence[Sequence[int]], names: Sequence[str], splits: Sequence[str], *, within: str,
                   across: str, what: str, score: Callable[[Sequence[int]], float | None] = lambda g: None,
                   detail: Callable[[Sequence[int]], str] = lambda g: "") -> list[Finding]:
    """One finding per group (its items named, with their splits): `across` when it spans train and valid, else
    `within`; leakage first, then the largest groups."""
    out: list[Finding] = []
    for g in groups:
        leak = across_split(g, splits)
        in_valid = [names[i] for i in g if splits[i] == "valid"]
        suggestion = (f"{what} in both train and valid: remove the valid copies ({', '.join(in_valid[:3])}) or move "
                      "the group into one split" if leak else f"{what} in {splits[g[0]]}: keep one, delete the others")
        out.append(Finding(across if leak else within, [names[i] for i in g], score(g), suggestion, detail(g),
                           [splits[i] for i in g]))
    return sorted(out, key=lambda f: (f.kind != across, -len(f.items)))
