"""Outliers by embedding distance: an item far from its nearest neighbours (the mean cosine distance to its k
nearest) compared with how far items usually are (a robust z-score: median and MAD), such as a photo of something
else entirely, a blank or a screenshot among photos.

    findings = outlier_findings(embeddings, names, splits)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from quicklearn.analysis.check.duplicates import cosine_knn
from quicklearn.analysis.check.findings import Finding

__all__ = ["knn_distance", "outlier_findings"]


def knn_distance(emb: np.ndarray, k: int = 5) -> np.ndarray:
    """Each item's mean cosine distance to its k nearest other items."""
    _, sims = cosine_knn(emb, k)
    return 1.0 - sims.mean(1)


def outlier_findings(emb: np.ndarray, names: Sequence[str], splits: Sequence[str] | None = None, *, k: int = 5,
                     z: float = 4.0, what: str = "item") -> list[Finding]:
    """The items whose k-NN distance is more than `z` robust standard deviations above the median, worst first;
    score = that z-score."""
    if len(emb) < max(10, k + 2):
        return []
    d = knn_distance(emb, k)
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med))) * 1.4826 or 1e-6
    scores = (d - med) / mad
    out = []
    for i in np.argsort(-scores):
        if scores[i] <= z:
            break
        out.append(Finding("outlier", [names[i]], float(scores[i]),
                           f"look at it: unlike the other {what}s (a wrong file, another subject?)",
                           f"mean cosine distance to its {k} nearest {d[i]:.3f} (median {med:.3f})",
                           [splits[i]] if splits else None))
    return out
