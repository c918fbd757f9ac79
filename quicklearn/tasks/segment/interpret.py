"""Interpreting segmentation models: per-class IoU, the confusion matrix over pixels, and the worst images as
photo / truth / prediction triptychs, on the validation set of a Learner or on labelled photos for a loaded model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd
import torch
import torch.nn.functional as F

from quicklearn.analysis.interpretation import Interpretation
from quicklearn.analysis.plots import save_figure
from quicklearn.core.errors import DataError
from quicklearn.core.fileio import write_text
from quicklearn.tasks.segment.evaluate import labelled_pairs, scored_images
from quicklearn.tasks.segment.kind import MASK
from quicklearn.tasks.segment.masks import ClassTable
from quicklearn.tasks.segment.metrics import VOID, confusion, iou_table, scores
from quicklearn.tasks.segment.pairs import Pairs
from quicklearn.tasks.segment.show import pixel_confusion_figure, triptych_figure

if TYPE_CHECKING:
    from quicklearn.tasks.segment.predictor import SegmentPredictor
    from quicklearn.train.learner import Learner

__all__ = ["SegmentInterpretation", "interpret_learner", "interpret_model"]

Views = Callable[[list[int]], tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]]


@dataclass
class SegmentInterpretation(Interpretation):
    """The Interpretation of a segmentation model: `cm` is the confusion matrix over every scored pixel, `per_image`
    each image's loss, mIoU and pixel accuracy (`preds` holds the images' losses, the per-pixel outputs are not
    kept); `views(indices)` gives (photos in [0, 1], true classes, predicted classes) to draw."""

    cm: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.int64))
    per_image: pd.DataFrame = field(default_factory=pd.DataFrame)
    views: Views | None = None
    table: ClassTable | None = None

    def __len__(self) -> int:
        return len(self.per_image)

    @property
    def losses(self) -> torch.Tensor:
        return torch.tensor(self.per_image["loss"].to_numpy(), dtype=torch.float64)

    def confusion_matrix(self, normalize: bool = False) -> pd.DataFrame:
        """Pixels, actual classes as rows and predicted as columns (void left out); `normalize`: shares of each row."""
        frame = pd.DataFrame(self.cm.numpy(), index=pd.Index(self.classes, name="actual"),
                             columns=pd.Index(self.classes, name="predicted"))
        return frame.div(frame.sum(axis=1).clip(lower=1), axis=0) if normalize else frame

    def per_class(self) -> pd.DataFrame:
        """Per class: IoU, recall, true pixels, predicted pixels; then the mean IoU over the classes that occur."""
        return iou_table(self.cm, self.classes or [])

    def top_losses(self, k: int = 9) -> pd.DataFrame:
        """The `k` images with the highest loss (mean cross-entropy of their pixels), worst first, with their mIoU
        and pixel accuracy."""
        k = max(0, min(int(k), len(self)))
        top = self.per_image.sort_values("loss", ascending=False).head(k)
        return top.reset_index().rename(columns={"position": "index"})

    def plot_confusion_matrix(self, path: str | Path = "confusion_matrix.png", normalize: bool = True) -> Path:
        return save_figure(pixel_confusion_figure(self.cm, self.classes or []), path)

    def plot_top_losses(self, path: str | Path = "top_losses.png", k: int = 9) -> Path:
        """The `k` worst images as photo / truth / prediction rows."""
        if self.views is None or self.table is None:
            raise DataError("no images to show.")
        table = self.top_losses(min(k, 6) if k > 6 else k)
        if table.empty:
            raise DataError("no images to show: the set is empty.")
        photos, truths, preds = self.views(table["index"].tolist())
        titles = [f"{Path(str(r.item)).name}: loss {r.loss:.2f}, mIoU {r.miou:.2f}" for r in table.itertuples()]
        return save_figure(triptych_figure(photos, truths, preds, titles, self.table,
                                           f"the {len(table)} worst images (highest loss): photo / truth / prediction"), path)

    def save(self, folder: str | Path, k: int = 9) -> list[Path]:
        """confusion_matrix.csv/.png (pixels), per_class.csv (IoU), top_losses.csv and the worst images' triptychs."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [write_text(folder / "confusion_matrix.csv", self.confusion_matrix().to_csv()),
                   self.plot_confusion_matrix(folder / "confusion_matrix.png"),
                   write_text(folder / "per_class.csv", self.per_class().to_csv()),
                   write_text(folder / "top_losses.csv", self.top_losses(k).to_csv(index=False))]
        if len(self) and self.views is not None:
            written.append(self.plot_top_losses(folder / "top_losses.png", k))
        return written


def _image_row(item: Any, truth: torch.Tensor, pred: torch.Tensor, loss: float, pixels: int, n: int,
               classes: list[str]) -> tuple[dict[str, Any], torch.Tensor]:
    cm = confusion(pred, truth, n)
    s = scores(cm)
    return {"item": str(item), "loss": loss / max(pixels, 1), "miou": s["miou"], "pixel_accuracy": s["pixel_accuracy"],
            "actual": MASK.readable(truth[None], classes)[0], "predicted": MASK.readable(pred[None], classes)[0]}, cm


def _interpretation(rows: list[dict[str, Any]], cm: torch.Tensor, classes: list[str], table: ClassTable,
                    views: Views) -> SegmentInterpretation:
    per_image = pd.DataFrame(rows)
    per_image.index.name = "position"
    return SegmentInterpretation(MASK.name, torch.tensor(per_image["loss"].to_numpy()), torch.empty(0), classes,
                                 per_image["item"].tolist(), cm=cm, per_image=per_image, views=views, table=table)


@torch.no_grad()
def interpret_learner(learn: "Learner") -> SegmentInterpretation:
    """The validation set of a trained Learner, at the model's frame, a batch at a time."""
    dls, dl = learn.dls, learn.dls.valid
    classes, n = list(dls.table.names), len(dls.table.names)
    learn.model.eval()
    cm, rows = torch.zeros(n, n, dtype=torch.int64), []
    for start in range(0, dl.n, dl.bs):
        idx = torch.arange(start, min(start + dl.bs, dl.n))
        x, y = dl.make_batch(idx)
        logits = learn.model(x).float().cpu()
        y = y.cpu()
        losses = F.cross_entropy(logits, y.long(), ignore_index=VOID, reduction="none").flatten(1).sum(1)
        for j, i in enumerate(idx.tolist()):
            row, c = _image_row(dls.valid_paths[i], y[j], logits[j].argmax(0), float(losses[j]), int((y[j] != VOID).sum()),
                                n, classes)
            rows.append(row)
            cm += c

    def views(indices: list[int]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        x, y = dl.make_batch(torch.tensor(indices))
        with torch.no_grad():
            pred = learn.model(x).float().argmax(1).cpu()
        photos = dls.pipeline.normalize.denormalize(x.float()).clamp(0, 1).cpu()
        return list(photos), list(y.cpu()), list(pred)

    return _interpretation(rows, cm, classes, dls.table, views)


def interpret_model(predictor: "SegmentPredictor", data: Any, y: str | None) -> SegmentInterpretation:
    """A loaded model on labelled photos (a folder with its mask folder, or a CSV), each at its own size."""
    pairs = labelled_pairs(data, y)
    classes, n = list(predictor.classes or []), len(predictor.classes or [])
    cm, rows = torch.zeros(n, n, dtype=torch.int64), []
    for photo_path, (_, truth, pred, loss, pixels) in zip(pairs.photos, scored_images(predictor, pairs)):
        row, c = _image_row(photo_path, truth, pred, loss, pixels, n, classes)
        rows.append(row)
        cm += c

    def views(indices: list[int]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        chosen = Pairs([pairs.photos[i] for i in indices], [pairs.masks[i] for i in indices],
                       [pairs.split[i] for i in indices], pairs.how, pairs.root)
        photos, truths, preds = [], [], []
        for photo, truth, pred, _, _ in scored_images(predictor, chosen):
            photos.append(photo.float() / 255)
            truths.append(truth)
            preds.append(pred)
        return photos, truths, preds

    return _interpretation(rows, cm, classes, predictor.table, views)
