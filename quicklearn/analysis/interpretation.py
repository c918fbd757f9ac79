"""Looking at results: where a model errs, on its validation set or on labelled data it has not seen.

    interp = ql.interpret(learn)                        # a trained Learner: its validation set (analysis/interpret.py)
    interp = ql.interpret(ql.load("model"), "test/")    # a loaded model and labelled data
    interp.confusion_matrix(); interp.most_confused(); interp.per_class(); interp.top_losses(9)
    interp.save("interpretation/")                      # every table as CSV, every plot as PNG

Classification: confusion matrix, most-confused pairs, per-class precision/recall/F1, the items with the highest
loss. Regression: predicted against actual, squared errors. What an item is (a path, a row, a text), its picture
and a feature importance come from the model's task (tasks/<name>/interpret.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from quicklearn.analysis.plots import image_grid, save_figure
from quicklearn.core.errors import ConfigError, DataError
from quicklearn.core.fileio import write_text
from quicklearn.data.kinds import SINGLE, TargetKind, get_kind

__all__ = ["Interpretation", "predict_in_chunks"]


def _pyplot():  # noqa: ANN202 (matplotlib.pyplot, imported on first plot only)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Interpretation:
    """Model outputs and targets of one labelled set, and what they say: build it with `interpret(...)`, or with
    `Interpretation.from_preds(...)` from outputs you computed yourself.

    preds: logits for classes, values in the target's units for regression. items: what each row is (a path, a
    text, a row of a table), shown by `top_losses`. images(indices) -> float images in [0, 1] for
    `plot_top_losses`; importance(n_repeats, seed) -> the permutation-importance table (tables only). tables,
    figures: what the model's task adds of its own, written by `save` (named by their keys).
    """

    kind: str
    preds: torch.Tensor
    targets: torch.Tensor
    classes: list[str] | None = None
    items: list[Any] | None = None
    thresh: float | Sequence[float] | dict[str, float] = 0.5
    target_name: str = "target"
    images: Callable[[list[int]], torch.Tensor] | None = None
    importance: Callable[[int, int], pd.DataFrame] | None = None
    importance_label: str = "importance"  # what an importance number measures, for table headers
    # a task's own views (e.g. collab's item biases): file stem -> table, and file stem -> a function that returns
    # the figure; save() writes <stem>.csv and <stem>.png, `quicklearn interpret` prints the tables
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Callable[[], Any]] = field(default_factory=dict)
    _importance_cache: dict[tuple[int, int], pd.DataFrame] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_preds(cls, preds: torch.Tensor, targets: torch.Tensor, classes: Sequence[str] | None = None,
                   kind: str = "single", items: Sequence[Any] | None = None,
                   thresh: float | Sequence[float] | dict[str, float] = 0.5) -> "Interpretation":
        """From raw outputs (logits; regression values) and targets (class indices, multi-hot rows, values)."""
        target_kind = get_kind(kind)
        preds, targets = torch.as_tensor(preds).float().cpu(), torch.as_tensor(targets).cpu()
        if not target_kind.classifier:
            preds, targets = preds.flatten(), targets.float().flatten()
        elif not classes or preds.ndim != 2 or preds.shape[1] != len(classes):
            raise ConfigError(f"{kind} outputs need one column per class: got shape {tuple(preds.shape)} "
                              f"for classes {list(classes or [])}.")
        if len(preds) != len(targets) or (items is not None and len(items) != len(preds)):
            raise ConfigError(f"{len(preds)} outputs but {len(targets)} targets"
                              + (f" and {len(items)} items" if items is not None else "") + "; they must match.")
        return cls(target_kind.name, preds, targets.long() if target_kind is SINGLE else targets.float(),
                   list(classes) if classes else None, list(items) if items is not None else None, thresh)

    @classmethod
    def from_learner(cls, learn: Any, order: torch.Tensor | None = None) -> "Interpretation":
        """A trained Learner's outputs and targets over its validation set. order: the item each output row is, for
        a loader that batches out of the set's order (texts run sorted by length); rows come back in set order."""
        preds, targets = learn.get_preds(learn.dls.valid)
        if order is not None:
            unsorted_preds, unsorted_targets = torch.empty_like(preds), torch.empty_like(targets)
            unsorted_preds[order], unsorted_targets[order] = preds, targets
            preds, targets = unsorted_preds, unsorted_targets
        vocab = learn.dls.vocab
        return cls.from_preds(preds, targets, vocab.classes if vocab else None, learn.kind)

    def __len__(self) -> int:
        return len(self.preds)

    # ---- what the model predicted -------------------------------------------------------------------------
    def _need(self, *kinds: str, what: str) -> None:
        if self.kind not in kinds:
            alt = {"single": "confusion_matrix(), most_confused(), per_class()", "multi": "per_class()",
                   "regression": "regression_metrics(), plot_regression()"}[self.kind]
            raise ConfigError(f"{what} is for {' or '.join(kinds)} targets; this model's are {self.kind}: use {alt}.")

    def _thresholds(self) -> torch.Tensor:
        """One threshold per label (probabilities over it are predicted), from a float, a list or {label: float}."""
        classes = self.classes or []
        t = self.thresh
        if isinstance(t, dict):
            unknown = [k for k in t if k not in classes]
            if unknown:
                raise ConfigError(f"thresh: label {unknown[0]!r} is not one of the model's labels: {', '.join(classes)}.")
            values = torch.tensor([float(t.get(c, 0.5)) for c in classes])
        elif isinstance(t, (int, float)):
            values = torch.full((len(classes),), float(t))
        else:
            values = torch.tensor([float(v) for v in t])
        if len(values) != len(classes) or not bool(((values > 0) & (values < 1)).all()):
            raise ConfigError(f"thresh={t!r}: give one probability in (0, 1), or one per label of {classes}.")
        return values

    @property
    def target_kind(self) -> TargetKind:
        return get_kind(self.kind)

    @property
    def losses(self) -> torch.Tensor:
        """Per item: cross-entropy (single), mean binary cross-entropy over labels (multi), squared error (regression)."""
        return self.target_kind.item_losses(self.preds, self.targets)

    def _decoded(self) -> tuple[list[Any], list[Any], list[float | None]]:
        """(predicted, actual, probability of the prediction) per item, as people read them."""
        if self.kind == "regression":
            return self.preds.tolist(), self.targets.tolist(), [None] * len(self)
        classes = self.classes or []
        if self.kind == "multi":
            on = self.preds.sigmoid() > self._thresholds()
            names = [" ".join(c for c, v in zip(classes, row) if v) for row in on]
            return names, [" ".join(c for c, v in zip(classes, row) if v > 0.5) for row in self.targets], [None] * len(self)
        probs = self.preds.softmax(1)
        best = probs.argmax(1)
        return ([classes[int(i)] for i in best], [classes[int(i)] for i in self.targets],
                probs.gather(1, best[:, None]).flatten().tolist())

    # ---- classification ----------------------------------------------------------------------------------
    def confusion_matrix(self, normalize: bool = False) -> pd.DataFrame:
        """Counts with actual classes as rows and predicted classes as columns; `normalize` divides each row by
        its total (each actual class's share predicted as each class)."""
        self._need("single", what="a confusion matrix")
        n = len(self.classes or [])
        cm = torch.bincount(self.targets * n + self.preds.argmax(1), minlength=n * n).reshape(n, n)
        frame = pd.DataFrame(cm.numpy(), index=pd.Index(self.classes, name="actual"),
                             columns=pd.Index(self.classes, name="predicted"))
        if normalize:
            frame = frame.div(frame.sum(axis=1).clip(lower=1), axis=0)
        return frame

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """(actual, predicted, count) for every wrong pair seen at least `min_val` times, most frequent first."""
        cm = self.confusion_matrix()
        pairs = [(a, p, int(cm.loc[a, p])) for a in cm.index for p in cm.columns if a != p and cm.loc[a, p] >= min_val]
        return sorted(pairs, key=lambda t: -t[2])

    def per_class(self) -> pd.DataFrame:
        """Precision, recall, F1 and support per class (multi-label: per label, at the model's threshold), then
        their macro (plain mean) and weighted (by support) averages. A ratio with nothing to count is 0."""
        self._need("single", "multi", what="a per-class table")
        n = len(self.classes or [])
        if self.kind == "single":
            pred, actual = F.one_hot(self.preds.argmax(1), n).float(), F.one_hot(self.targets, n).float()
        else:
            pred, actual = (self.preds.sigmoid() > self._thresholds()).float(), (self.targets > 0.5).float()
        tp, n_pred, support = (pred * actual).sum(0), pred.sum(0), actual.sum(0)
        precision = torch.where(n_pred > 0, tp / n_pred.clamp(min=1), torch.zeros_like(tp))
        recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
        pr = precision + recall
        f1 = torch.where(pr > 0, 2 * precision * recall / pr.clamp(min=1e-12), torch.zeros_like(pr))
        frame = pd.DataFrame({"precision": precision.double(), "recall": recall.double(), "f1": f1.double(),
                              "support": support.long()}, index=pd.Index(self.classes, name="class"))
        total = int(support.sum())
        per = frame[["precision", "recall", "f1"]].to_numpy()
        weighted = support.double().numpy() / total if total else np.zeros(n)
        frame.loc["macro avg"] = [*per.mean(0), total]
        frame.loc["weighted avg"] = [*(weighted[:, None] * per).sum(0), total]
        frame["support"] = frame["support"].astype(int)
        return frame

    # ---- regression -----------------------------------------------------------------------------------------
    def regression_metrics(self) -> dict[str, float]:
        """RMSE, MAE and R^2 (1 - squared error / the targets' variance; 1 is perfect, 0 predicts the mean)."""
        self._need("regression", what="regression metrics")
        err = self.preds - self.targets
        ss_tot = float((self.targets - self.targets.mean()).pow(2).sum())
        r2 = 1 - float(err.pow(2).sum()) / ss_tot if ss_tot > 0 else float("nan")
        return {"n": len(self), "rmse": float(err.pow(2).mean().sqrt()), "mae": float(err.abs().mean()), "r2": r2}

    # ---- top losses and feature importance --------------------------------------------------------------------
    def top_losses(self, k: int = 9) -> pd.DataFrame:
        """The `k` items with the highest loss, worst first: index (position in the set), item, actual, predicted,
        probability of the prediction (single-label), loss."""
        losses = self.losses
        k = max(0, min(int(k), len(losses)))
        top = torch.topk(losses, k).indices.tolist() if k else []
        pred, actual, prob = self._decoded()
        return pd.DataFrame({
            "index": top,
            "item": [str(self.items[i]) if self.items is not None else "" for i in top],
            "actual": [actual[i] for i in top], "predicted": [pred[i] for i in top],
            "probability": [prob[i] for i in top], "loss": [float(losses[i]) for i in top],
        })

    def feature_importance(self, n_repeats: int = 3, seed: int = 0) -> pd.DataFrame:
        """Tables: each raw input column's permutation importance (see quicklearn/tasks/tabular/importance.py), most important
        first: column, importance (accuracy drop, or RMSE increase, when it is shuffled), std over repeats."""
        if self.importance is None:
            raise ConfigError("feature importance is for tabular models: a tabular Learner, or a loaded table model "
                              "with its labelled CSV.")
        key = (int(n_repeats), int(seed))
        if key not in self._importance_cache:
            self._importance_cache[key] = self.importance(*key)
        return self._importance_cache[key]

    # ---- plots ------------------------------------------------------------------------------------------------
    def plot_confusion_matrix(self, path: str | Path = "confusion_matrix.png", normalize: bool = False) -> Path:
        """The confusion matrix as a heat map with the count (or, normalized, the row share) in every cell."""
        return save_figure(self._confusion_figure(normalize), path)

    def _confusion_figure(self, normalize: bool = False):  # noqa: ANN202 (a matplotlib Figure)
        plt = _pyplot()
        counts = self.confusion_matrix()
        values = self.confusion_matrix(normalize=True) if normalize else counts
        n = len(counts)
        side = min(max(4.0, 0.45 * n + 2.2), 16.0)
        fig, ax = plt.subplots(figsize=(side + 1.2, side))
        im = ax.imshow(values.to_numpy(dtype=float), cmap="Blues", vmin=0)
        top = float(values.to_numpy().max()) or 1.0
        size = 12 if n <= 5 else 10 if n <= 10 else 8 if n <= 18 else 6
        for i in range(n):
            for j in range(n):
                v = values.iat[i, j]
                ax.text(j, i, f"{v:.2f}" if normalize else str(int(v)), ha="center", va="center", fontsize=size,
                        color="white" if v > top / 2 else "black" if v else "#aaaaaa")  # zeros recede
        labels = [str(c) for c in counts.columns]
        tilt = n > 6 or max(len(s) for s in labels) > 6
        ax.set_xticks(range(n), labels, rotation=45 if tilt else 0, ha="right" if tilt else "center",
                      fontsize=min(size + 1, 10))
        ax.set_yticks(range(n), labels, fontsize=min(size + 1, 10))
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        acc = float(torch.tensor(counts.to_numpy()).diagonal().sum()) / max(int(counts.to_numpy().sum()), 1)
        how = "share of each actual class" if normalize else "counts"
        ax.set_title(f"Confusion matrix ({how})\n{int(counts.to_numpy().sum())} items, accuracy {acc:.3f}", fontsize=11)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        return fig

    def plot_top_losses(self, path: str | Path = "top_losses.png", k: int = 9) -> Path:
        """A grid of the `k` images with the highest loss, each titled predicted / actual, then probability and loss."""
        if self.images is None:
            raise ConfigError("top-loss images need an image model (interpret a vision Learner or a loaded image model); "
                              "top_losses() gives the table for any model.")
        table = self.top_losses(k)
        if table.empty:
            raise DataError("no items to show: the set is empty.")
        titles = []
        for row in table.itertuples():
            if self.kind == "regression":
                titles.append(f"{row.predicted:.3g} / {row.actual:.3g}\nsq. error {row.loss:.3g}")
            else:
                prob = "" if row.probability is None or pd.isna(row.probability) else f"p={row.probability:.2f} "
                titles.append(f"{_short(row.predicted)} / {_short(row.actual)}\n{prob}loss={row.loss:.2f}")
        colors = ["black" if self.kind == "regression" else "green" if r.predicted == r.actual else "red"
                  for r in table.itertuples()]
        what = "predicted / actual, probability of the prediction, loss" if self.kind == "single" else \
            "predicted / actual, loss" if self.kind == "multi" else "predicted / actual, squared error"
        return image_grid(self.images(table["index"].tolist()), titles, path,
                          suptitle=f"Top {len(table)} losses ({what})", colors=colors)

    def plot_regression(self, path: str | Path = "regression.png") -> Path:
        """Predicted against actual values with the y = x line; RMSE, MAE and R^2 in the title."""
        return save_figure(self._regression_figure(), path)

    def _regression_figure(self):  # noqa: ANN202 (a matplotlib Figure)
        plt = _pyplot()
        m = self.regression_metrics()
        fig, ax = plt.subplots(figsize=(5.6, 5.4))
        x, y = self.targets.numpy(), self.preds.numpy()
        ax.scatter(x, y, s=14, alpha=0.6, color="#4c72b0", edgecolors="none")
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="grey", lw=1, label="predicted = actual")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"actual {self.target_name}")
        ax.set_ylabel(f"predicted {self.target_name}")
        ax.legend(loc="upper left", fontsize=9)
        ax.set_title(f"Predicted vs actual ({m['n']} items)\nRMSE {m['rmse']:.3g}   MAE {m['mae']:.3g}   "
                     f"R² {m['r2']:.3f}", fontsize=11)
        return fig

    def plot_feature_importance(self, path: str | Path = "feature_importance.png", n_repeats: int = 3,
                                seed: int = 0) -> Path:
        """Permutation importance as horizontal bars, most important column on top."""
        from quicklearn.analysis.plots import plot_importance

        return plot_importance(self.feature_importance(n_repeats, seed), self.importance_label, path)

    # ---- everything at once ------------------------------------------------------------------------------------
    def save(self, folder: str | Path, k: int = 9) -> list[Path]:
        """Write every table (CSV) and plot (PNG) that fits this model to `folder`; returns the paths written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        if self.kind == "single":
            written.append(write_text(folder / "confusion_matrix.csv", self.confusion_matrix().to_csv()))
            written.append(self.plot_confusion_matrix(folder / "confusion_matrix.png"))
        if self.kind in ("single", "multi"):
            written.append(write_text(folder / "per_class.csv", self.per_class().to_csv()))
        if self.kind == "regression":
            written.append(self.plot_regression(folder / "regression.png"))
        written.append(write_text(folder / "top_losses.csv", self.top_losses(k).to_csv(index=False)))
        if self.images is not None and len(self):
            written.append(self.plot_top_losses(folder / "top_losses.png", k))
        if self.importance is not None:
            written.append(write_text(folder / "feature_importance.csv", self.feature_importance().to_csv(index=False)))
            written.append(self.plot_feature_importance(folder / "feature_importance.png"))
        for name, table in self.tables.items():
            written.append(write_text(folder / f"{name}.csv", table.to_csv(index=False)))
        for name, figure in self.figures.items():
            written.append(save_figure(figure(), folder / f"{name}.png"))
        return written


def _short(label: Any, width: int = 18) -> str:
    text = str(label) or "(none)"
    return text if len(text) <= width else text[: width - 1] + "…"


def predict_in_chunks(raw: Callable[[Any], torch.Tensor], items: Sequence[Any], what: str, chunk: int = 256) -> torch.Tensor:
    """raw(items) in chunks, with a progress bar: predicting thousands of items takes a while on a CPU."""
    from quicklearn.core.progress import progress

    outs = []
    with progress() as bar:
        task = bar.add_task(f"predicting {what}", total=len(items), info="") if bar else None
        for k in range(0, len(items), chunk):
            outs.append(raw(items[k:k + chunk]))
            if bar:
                bar.advance(task, len(items[k:k + chunk]))
    return torch.cat(outs) if outs else torch.empty(0)
