"""An honest baseline for a table: scikit-learn's HistGradientBoosting at its defaults, fitted on the same training
rows and features the network saw, scored on the same validation rows with the same loss and metrics.

    learn = ql.tabular_learner("train.csv", y="Survived")
    learn.fine_tune(...)
    fit_baseline(learn)   # {"model": "HistGradientBoostingClassifier", "metrics": {"loss": ..., "accuracy": ...}, ...}

It reads the learner's processed tensors (categorical codes, scaled continuous values): the split and the
pre-processing are the network's by construction, and the scalings are monotonic, which trees do not mind.
scikit-learn is the `[baseline]` extra: it (with scipy) is about 150 MB that only this check needs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from quicklearn.core.errors import ConfigError

if TYPE_CHECKING:
    from quicklearn.train.learner import Learner

__all__ = ["fit_baseline", "MAX_BINS"]

MAX_BINS = 255  # HistGradientBoosting's categorical features take at most this many codes


def _sklearn() -> Any:
    try:
        from sklearn import ensemble
    except ImportError:
        raise ConfigError("--baseline (baseline: true) fits scikit-learn's HistGradientBoosting, which is not "
                          "installed: pip install 'quicklearn[baseline]'") from None
    return ensemble


def fit_baseline(learn: "Learner") -> dict[str, Any]:
    """HistGradientBoosting on `learn`'s training rows, scored on its validation rows like the network: the metrics
    under "metrics" (the same keys as `learn.validate()`), the class name under "model", seconds under "wall_s"."""
    ensemble = _sklearn()
    t0 = time.perf_counter()
    dls, proc = learn.dls, learn.dls.processor
    xt, yt = dls.train.x.cpu().numpy(), dls.train.targets.cpu().numpy()
    xv, yv = dls.valid.x.cpu().numpy(), dls.valid.targets.cpu()
    n_cat = len(proc.cat_names)
    # categorical codes as categories where HistGradientBoosting can take them; a wider column stays ordinal codes
    cats = [j < n_cat and proc.cardinalities[j] <= MAX_BINS for j in range(xt.shape[1])]
    kw = {"categorical_features": np.array(cats, dtype=bool) if any(cats) else None, "random_state": learn.seed}
    if learn.target_kind.classifier:
        model = ensemble.HistGradientBoostingClassifier(**kw).fit(xt, yt)
        probs = np.zeros((len(xv), dls.n_out))
        probs[:, model.classes_.astype(int)] = model.predict_proba(xv)  # a class absent from the training rows: 0
        preds = torch.from_numpy(np.log(np.clip(probs, 1e-15, 1))).float()  # log-probabilities score as logits do
    else:
        model = ensemble.HistGradientBoostingRegressor(**kw).fit(xt, yt)
        preds = torch.from_numpy(model.predict(xv)).float()
    wall = round(time.perf_counter() - t0, 2)
    return {"model": type(model).__name__, "metrics": learn.score(preds, yv), "wall_s": wall}
