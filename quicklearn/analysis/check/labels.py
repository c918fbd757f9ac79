"""Likely label errors: out-of-fold class probabilities (a cross-validated probe: every item is scored by a model
that never saw it), ranked with confident learning (cleanlab's `find_label_issues`, the standard implementation).

    probs = probe_probs(embeddings, labels)                      # logistic regression on frozen embeddings
    probs = out_of_fold(fit_predict, rows, labels)              # any model: fit_predict(train, y, test) -> probs
    findings = label_findings(probs, labels, classes, names)    # the items cleanlab flags, most suspect first

Needs the `[check]` extra (scikit-learn and cleanlab), imported only here and only when the check runs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from quicklearn.analysis.check.findings import Finding

__all__ = ["probe_probs", "out_of_fold", "label_findings", "usable_classes"]


def usable_classes(labels: np.ndarray, folds: int) -> tuple[np.ndarray, int]:
    """(a mask of the items whose class has at least 2 members, the folds that the smallest such class allows)."""
    counts = np.bincount(labels)
    keep = counts[labels] >= 2
    smallest = counts[counts >= 2].min() if (counts >= 2).any() else 0
    return keep, int(max(2, min(folds, smallest)))


def _take(items: Any, rows: np.ndarray) -> Any:
    """The rows of an array, or the items of a list, at positions `rows`."""
    return items[rows] if isinstance(items, np.ndarray) else [items[i] for i in rows]


def out_of_fold(fit_predict: Callable[[Any, np.ndarray, Any], np.ndarray], items: Any, labels: np.ndarray, *,
                folds: int = 5, seed: int = 0, n_classes: int | None = None) -> np.ndarray:
    """Out-of-fold class probabilities (N, n_classes; default: labels.max() + 1) on stratified folds: every item is
    scored by `fit_predict(train_items, train_labels, test_items)`, which returns (n, k) probabilities over the
    classes present in training. `items`: an array (its rows) or a list. Items of a class with a single member
    keep probability 1 for their label (nothing to learn it from)."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.eye(n_classes or int(labels.max()) + 1)[labels]
    keep, n_folds = usable_classes(labels, folds)
    if len(np.unique(labels[keep])) < 2:
        return probs
    idx = np.flatnonzero(keep)
    y = labels[idx]
    present = np.unique(y)
    out = np.zeros((len(idx), probs.shape[1]))
    for train, test in StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(idx, y):
        out[np.ix_(test, present)] = fit_predict(_take(items, idx[train]), y[train], _take(items, idx[test]))
    probs[idx] = out
    return probs


def probe_probs(features: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0,
                max_dims: int | None = 128, C: float = 0.1) -> np.ndarray:
    """Out-of-fold probabilities (N, K) of a logistic regression (inverse regularization `C`) on `features`
    (standardized, reduced to `max_dims` principal components first, None: all: the same ranking at a fraction of
    the cost on 1,280-dimensional embeddings). Items of a class with a single member keep probability 1 for their
    label (nothing to learn it from)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels, dtype=np.int64)
    keep, n_folds = usable_classes(labels, folds)
    n_kept = int(keep.sum())

    def fit_predict(train: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
        steps: list = [StandardScaler()]
        if max_dims is not None:
            steps.append(PCA(min(max_dims, train.shape[1], n_kept - n_kept // n_folds - 1), random_state=seed))
        model = make_pipeline(*steps, LogisticRegression(max_iter=3000, C=C)).fit(train, y)
        return model.predict_proba(test)

    return out_of_fold(fit_predict, np.asarray(features, dtype=np.float32), labels, folds=folds, seed=seed)


def label_findings(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str], names: Sequence[str],
                   splits: Sequence[str] | None = None) -> list[Finding]:
    """The items confident learning flags (cleanlab.filter.find_label_issues, ranked by self-confidence): score =
    1 - the given label's out-of-fold probability; the suggestion is the most probable class."""
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels, dtype=np.int64)
    present = np.unique(labels)
    if len(present) < 2:
        return []
    # cleanlab wants every class of pred_probs to have examples: drop the columns of absent classes
    col = {c: i for i, c in enumerate(present)}
    sub = probs[:, present]
    sub = sub / np.maximum(sub.sum(1, keepdims=True), 1e-12)
    ranked = find_label_issues(np.array([col[c] for c in labels]), sub, return_indices_ranked_by="self_confidence")
    out = []
    for i in ranked:
        given, best = int(labels[i]), int(present[np.argmax(sub[i])])
        out.append(Finding("label_error", [names[i]], float(1 - probs[i, given]),
                           f"check the label: {classes[best]!r} is more likely than {classes[given]!r}",
                           f"p({classes[given]})={probs[i, given]:.2f}, p({classes[best]})={probs[i, best]:.2f}",
                           [splits[i]] if splits else None, classes[given], classes[best]))
    return out
