"""The collab task: (user, item, rating) rows -> embeddings and biases -> predicted ratings, recommendations and
similar items. Task inference picks it for a CSV whose columns are exactly a user, an item and a rating (plus
an optional time and title): detect_order 15, before texts and the tabular fallback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quicklearn.core.errors import ConfigError
from quicklearn.tasks.base import OnnxSpec, Option, Predicted, ServeSpec, Task
from quicklearn.tasks.collab.recipe import CollabRecipe, learner_kwargs

if TYPE_CHECKING:
    import torch

    from quicklearn.analysis.interpretation import Interpretation
    from quicklearn.train.callbacks.base import Callback
    from quicklearn.train.learner import Learner

__all__ = ["CollabTask", "TASK"]


class CollabTask(Task):
    name = "collab"
    summary = "recommendations: predicted ratings from (user, item, rating) rows (embeddings and biases)"
    recipe = CollabRecipe
    items = "ratings"
    noun = "ratings"
    detect_order = 15
    options = (
        Option("--user", "data.user", "The user column (inferred from its name: user, userId, ...)."),
        Option("--item", "data.item", "The item column (inferred from its name: item, movieId, product, ...)."),
        Option("--titles", "data.titles", "Item titles: a column, a CSV of item + title, or none (inferred)."),
        Option("--duplicates", "data.duplicates", "A (user, item) pair rated twice: latest | mean | error."),
        Option("--factors", "model.n_factors", "Embedding width of the biased dot product.", int),
        Option("--arch", "model.arch", "The architecture: a timm name for images, minilm, a folder or a hub name for "
               "texts, dot | nn | both for ratings."),
    )

    def detect(self, data: Path) -> str | None:
        if not (data.is_file() and data.suffix.lower() in (".csv", ".tsv", ".txt")):
            return None
        from quicklearn.core.errors import DataError
        from quicklearn.data.sources import peek_table
        from quicklearn.tasks.collab.columns import claim_columns

        try:
            frame = peek_table(data, nrows=200)
        except DataError:
            return None  # unreadable: the task that reads it says why
        return claim_columns(frame)

    def check(self, recipe: CollabRecipe) -> None:  # type: ignore[override]
        """The columns named or inferred exist (read from the CSV's first rows), before anything is announced."""
        from quicklearn.data.frames import check_column, read_head
        from quicklearn.tasks.collab.columns import infer_columns

        d = recipe.data
        if d.path is None:
            raise ConfigError("collab data is a CSV of ratings: give --data FILE.")
        frame, where = read_head(d.path)
        time = d.splitter.partition(":")[2] if d.splitter.startswith("user-time:") else None
        infer_columns(frame, where, user=d.user, item=d.item, rating=d.y, time=time)
        if d.titles and d.titles.lower() != "none" and not Path(d.titles).expanduser().is_file():
            check_column(frame, d.titles, "titles", where)

    def describe(self, recipe: CollabRecipe, out: Path) -> str:  # type: ignore[override]
        m = recipe.model
        what = f"{m.n_factors} factors" if m.arch != "nn" else f"layers {m.layers}"
        return (f"training a collab model ({m.arch}, {what}) on {recipe.data.path}, split {recipe.data.splitter}, "
                f"{recipe.fit.epochs} epochs, batch size {recipe.training.bs} -> {out}")

    def build(self, recipe: CollabRecipe, *, path: Path | None, progress: bool | None,  # type: ignore[override]
              cbs: Sequence["Callback"]) -> "Learner":
        from quicklearn.tasks.collab.learner import collab_learner

        return collab_learner(recipe.data.path, path=path, progress=progress, cbs=cbs,
                              recipe=recipe.model_dump(mode="json"), **learner_kwargs(recipe))

    def fit_kwargs(self, recipe: CollabRecipe, learn: "Learner") -> dict[str, Any]:  # type: ignore[override]
        kw = recipe.fit.model_dump()
        if kw["epochs"] == "auto":
            from quicklearn.tasks.collab.learner import auto_epochs

            kw["epochs"] = auto_epochs(learn.dls)
        return kw

    def load(self, folder: Path, config: dict, state: dict[str, "torch.Tensor"], device: Any) -> Any:
        from quicklearn.tasks.collab.predictor import CollabPredictor

        return CollabPredictor.from_files(folder, config, state, device)

    def predict_inputs(self, predictor: Any, inputs: list[str], *, thresh: Any = None, tta: bool = False) -> Predicted:
        """`quicklearn predict MODEL pairs.csv`: the rows with `prediction` and `cold_start` appended."""
        from quicklearn.serving.predictor import predict_csv_files

        if thresh is not None:
            raise ConfigError("--thresh is for multi-label models; a collab model predicts ratings.")
        predicted = predict_csv_files(predictor, inputs, tta=tta)
        predicted.shown = [predictor.columns.user, predictor.columns.item, "prediction", "cold_start"]
        return predicted

    def evaluate(self, predictor: Any, data: Any, y: str | None = None, tta: bool = False) -> dict[str, Any]:
        from quicklearn.analysis.labelled import labelled_rows, score

        if tta:
            raise ConfigError("--tta is for image models; a (user, item) pair has no views to average.")
        frame, where, _, targets = labelled_rows(predictor, data, y)
        return score(predictor, predictor.raw_frame(frame, where), targets)

    def interpret_learner(self, learn: "Learner") -> "Interpretation":
        from quicklearn.tasks.collab.interpret import interpret_learner

        return interpret_learner(learn)

    def interpret_model(self, predictor: Any, data: Any, y: str | None) -> "Interpretation":
        from quicklearn.tasks.collab.interpret import interpret_model

        return interpret_model(predictor, data, y)

    def serve(self, predictor: Any) -> ServeSpec:
        from quicklearn.tasks.collab.serve import serve_spec

        return serve_spec(predictor)

    def onnx(self, predictor: Any) -> OnnxSpec:
        from quicklearn.tasks.collab.onnx import onnx_spec

        return onnx_spec(predictor)

    def show_batch(self, recipe: CollabRecipe, out: Path, n: int) -> str:  # type: ignore[override]
        """The first training ratings as the model reads them (printed)."""
        self.check(recipe)
        return self.build(recipe, path=None, progress=False, cbs=()).dls.show_batch_text(n)

    def commands(self) -> list[Any]:
        from quicklearn.tasks.collab.cli import commands_app

        return [commands_app()]


TASK = CollabTask()
