"""Target kinds as objects: single-label, multi-label and regression, for every task (fastai's blocks, AutoGluon's
problem types). A kind knows its loss, its default and allowed metrics, how outputs become probabilities,
predictions and prediction columns, how test-time views average, and how balanced class weights are computed.

    kind = get_kind("single")
    kind.loss(weight=None, label_smoothing=0.1)      # CrossEntropyLoss
    kind.decode(logits_row, ["ants", "bees"])       # Prediction(label='bees', probability=0.9, probs={...})

The kind's `name` ("single", "multi", "regression") is what config.json, recipes and `--kind` say; the one rule
that reads a kind off a target column, for every task, is `data/labels.infer_kind`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import nn

from quicklearn.core.errors import ConfigError
from quicklearn.data.thresholds import DEFAULT_THRESH, Thresh, label_thresh

__all__ = ["TargetKind", "SingleLabel", "MultiLabel", "Regression", "SINGLE", "MULTI", "REGRESSION", "KINDS", "get_kind",
           "register_kind", "Prediction", "MAX_CLASSES", "RESERVED_COLUMNS"]

MAX_CLASSES = 20  # whole numbers with more distinct values than this are a quantity, not classes
_MIN_PROB = 1e-30  # keeps log(mean prob) finite when a class's probability underflows (TTA)
RESERVED_COLUMNS = ("prediction", "probability")  # and every "prob_<class>": the columns a prediction adds


@dataclass
class Prediction:
    """One prediction: the label (a class, a list of labels, or a value), its probability, every class's probability."""

    label: Any
    probability: float | None = None
    probs: dict[str, float] = field(default_factory=dict)


class TargetKind:
    """What one kind of target is to the loop, the predictors and the analysis (subclasses below)."""

    name: ClassVar[str]
    title: ClassVar[str]  # for messages: "single-label classification"
    classifier: ClassVar[bool] = True  # has classes (a vocabulary)
    thresholded: ClassVar[bool] = False  # decides per label by thresholds (multi-label)
    standardized: ClassVar[bool] = False  # trains on standardized targets (regression)
    default_metrics: ClassVar[tuple[str, ...]]
    metrics: ClassVar[frozenset[str]]

    def n_out(self, n_classes: int) -> int:
        return n_classes

    def loss(self, weight: Sequence[float] | None = None, label_smoothing: float = 0.0,
             device: torch.device | str = "cpu") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def item_losses(self, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each item's loss (interpretation's top losses)."""
        raise NotImplementedError

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        """Model outputs -> probabilities (classes) or values."""
        raise NotImplementedError

    def average_views(self, outs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Test-time augmentation: the views' outputs averaged in probability space, returned in output space
        (log mean probabilities, logits of the mean), so they decode and score as one output does."""
        raise NotImplementedError

    def decode(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> Prediction:
        """One row of model output -> a Prediction."""
        raise NotImplementedError

    def decide(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> torch.Tensor:
        """A batch of outputs -> the model's decisions, encoded as targets are (class indices, multi-hot rows,
        values), so they compare with the targets."""
        raise NotImplementedError

    def readable(self, targets: torch.Tensor, classes: Sequence[str] | None) -> list[str]:
        """Encoded targets (or decisions) as people read them: class names, labels joined by spaces, numbers."""
        raise NotImplementedError

    def columns(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> dict[str, list]:
        """The columns predictions add to a table, for every task: `prediction`, then `probability` and one
        `prob_<class>` per class for classifiers (multi-label: no `probability`; labels joined by ';')."""
        raise NotImplementedError

    def balanced_weights(self, targets: torch.Tensor, n_classes: int) -> list[float]:
        """class_weights='balanced': weights that make rare classes count like common ones."""
        raise ConfigError(f"class_weights='balanced' is for classifiers; this target is {self.title}.")

    def graph_outputs(self, out: torch.Tensor, stats: tuple[float, float] | None) -> tuple[torch.Tensor, ...]:
        """The ONNX serving graph's outputs (see `output_names`)."""
        return out, self.activate(out)

    output_names: ClassVar[tuple[str, ...]] = ("logits", "probs")

    # A task's own kind (e.g. segmentation's per-pixel classes) brings its metrics with it instead of adding them to
    # the shared table in train/metrics.py: name -> fn(preds, targets) -> float, and which of them grow as the model
    # improves (the monitor's direction).
    greater_is_better: ClassVar[frozenset[str]] = frozenset()

    def metric_functions(self) -> Mapping[str, Callable[[torch.Tensor, torch.Tensor], float]]:
        """The metrics this kind defines itself (train/metrics.get_metric looks here first); none for the built-in kinds."""
        return {}

    def __repr__(self) -> str:
        return f"<target kind {self.name}>"


class SingleLabel(TargetKind):
    """One class per item: cross-entropy, softmax, the most likely class."""

    name, title = "single", "single-label classification"
    default_metrics = ("accuracy",)
    metrics = frozenset({"accuracy", "error_rate", "top5_accuracy", "f1_macro", "auroc"})

    def loss(self, weight=None, label_smoothing=0.0, device="cpu"):  # noqa: ANN001, ANN201 (the base's signature)
        w = torch.tensor(list(weight), dtype=torch.float32, device=device) if weight is not None else None
        return nn.CrossEntropyLoss(weight=w, label_smoothing=label_smoothing)

    def item_losses(self, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(preds, targets, reduction="none")

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        return out.softmax(-1)

    def average_views(self, outs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack([o.double() for o in outs]).softmax(-1).mean(0).clamp_min(_MIN_PROB).log().float()

    def decode(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> Prediction:
        classes = list(classes or [])
        p = out.softmax(0)
        i = int(p.argmax())
        return Prediction(classes[i], float(p[i]), {c: float(v) for c, v in zip(classes, p)})

    def decide(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> torch.Tensor:
        return out.argmax(1)

    def readable(self, targets: torch.Tensor, classes: Sequence[str] | None) -> list[str]:
        return [list(classes or [])[int(i)] for i in targets]

    def columns(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> dict[str, list]:
        classes = list(classes or [])
        probs = out.softmax(1) if len(out) else torch.empty((0, len(classes)))
        best = probs.argmax(1) if len(out) else torch.empty(0, dtype=torch.int64)
        cols: dict[str, list] = {"prediction": [classes[int(i)] for i in best],
                                 "probability": [float(v) for v in (probs.max(1).values if len(out) else [])]}
        for j, c in enumerate(classes):
            cols[f"prob_{c}"] = probs[:, j].tolist()
        return cols

    def balanced_weights(self, targets: torch.Tensor, n_classes: int) -> list[float]:
        """Inverse class frequency in the training items, scaled to average 1."""
        counts = torch.bincount(targets.long().flatten(), minlength=n_classes).float().clamp(min=1)
        return [float(v) for v in counts.sum() / (len(counts) * counts)]


class MultiLabel(TargetKind):
    """Any number of labels per item: binary cross-entropy per label, sigmoid, the labels over their thresholds."""

    name, title = "multi", "multi-label classification"
    thresholded = True
    default_metrics = ("accuracy_multi", "f1")
    metrics = frozenset({"accuracy_multi", "f1"})

    def loss(self, weight=None, label_smoothing=0.0, device="cpu"):  # noqa: ANN001, ANN201
        w = torch.tensor(list(weight), dtype=torch.float32, device=device) if weight is not None else None
        return nn.BCEWithLogitsLoss(pos_weight=w)

    def item_losses(self, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(preds, targets, reduction="none").mean(1)

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        return out.sigmoid()

    def average_views(self, outs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.logit(torch.stack([o.double() for o in outs]).sigmoid().mean(0), eps=1e-12).float()

    def decode(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> Prediction:
        classes = list(classes or [])
        p = out.sigmoid()
        return Prediction([c for c, v in zip(classes, p) if v > label_thresh(thresh, c)], None,
                          {c: float(v) for c, v in zip(classes, p)})

    def decide(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> torch.Tensor:
        limits = torch.tensor([label_thresh(thresh, c) for c in (classes or [])]) if classes else torch.tensor(0.5)
        return (out.sigmoid() > limits).float()

    def readable(self, targets: torch.Tensor, classes: Sequence[str] | None) -> list[str]:
        return [" ".join(c for c, on in zip(classes or [], row) if on > 0.5) for row in targets]

    def columns(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> dict[str, list]:
        classes = list(classes or [])
        probs = out.sigmoid() if len(out) else torch.empty((0, len(classes)))
        on = [[c for c, v in zip(classes, row) if v > label_thresh(thresh, c)] for row in probs]
        cols: dict[str, list] = {"prediction": [";".join(labels) for labels in on]}
        for j, c in enumerate(classes):
            cols[f"prob_{c}"] = probs[:, j].tolist()
        return cols

    def balanced_weights(self, targets: torch.Tensor, n_classes: int) -> list[float]:
        """BCE's pos_weight per label: negatives over positives in the training items (1 for a label always on)."""
        pos = targets.float().sum(0).clamp(min=1)
        neg = (len(targets) - targets.float().sum(0)).clamp(min=1)
        return [float(v) for v in neg / pos]


class Regression(TargetKind):
    """A number per item: mean squared error on the standardized target, the value in the target's units."""

    name, title = "regression", "regression"
    classifier = False
    standardized = True
    default_metrics = ("rmse", "mae")
    metrics = frozenset({"rmse", "mae"})
    output_names = ("value",)

    def n_out(self, n_classes: int) -> int:
        return 1

    def loss(self, weight=None, label_smoothing=0.0, device="cpu"):  # noqa: ANN001, ANN201
        if weight is not None:
            raise ConfigError("class_weights are for classifiers; this target is a regression.")
        mse = nn.MSELoss()
        return lambda out, y: mse(out.flatten().float(), y.flatten().float())

    def item_losses(self, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (preds.flatten() - targets.flatten()).pow(2)

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        return out

    def average_views(self, outs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack([o.double() for o in outs]).mean(0).float()

    def decode(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> Prediction:
        return Prediction(float(out))

    def decide(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> torch.Tensor:
        return out.flatten()

    def readable(self, targets: torch.Tensor, classes: Sequence[str] | None) -> list[str]:
        return [f"{float(v):.3g}" for v in targets.flatten()]

    def columns(self, out: torch.Tensor, classes: Sequence[str] | None, thresh: Thresh = DEFAULT_THRESH) -> dict[str, list]:
        return {"prediction": [float(v) for v in out.flatten()]}

    def graph_outputs(self, out: torch.Tensor, stats: tuple[float, float] | None) -> tuple[torch.Tensor, ...]:
        mean, std = stats or (0.0, 1.0)
        return (out[:, 0] * std + mean,)


SINGLE, MULTI, REGRESSION = SingleLabel(), MultiLabel(), Regression()
KINDS: dict[str, TargetKind] = {k.name: k for k in (SINGLE, MULTI, REGRESSION)}


def register_kind(kind: TargetKind) -> TargetKind:
    """Add a task's own target kind (a TargetKind subclass instance) under its `name`, so that `get_kind`, the Learner,
    the Predictor base and config.json's "kind" know it; registering the same class again is a no-op. A task folder
    calls it when its kind's module is imported (tasks/segment/kind.py)."""
    known = KINDS.get(kind.name)
    if known is not None and type(known) is not type(kind):
        raise ConfigError(f"two target kinds are named {kind.name!r}: {type(known).__module__} and {type(kind).__module__}.")
    if known is None:
        KINDS[kind.name] = kind
    return KINDS[kind.name]


def get_kind(kind: "str | TargetKind") -> TargetKind:
    """The kind called `kind` (single, multi, regression); a kind object is returned as it is."""
    if isinstance(kind, TargetKind):
        return kind
    found = KINDS.get(str(kind))
    if found is None:
        raise ConfigError(f"unknown target kind {kind!r}: use {', '.join(KINDS)}.")
    return found
