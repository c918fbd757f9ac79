"""The tabular task: a CSV or DataFrame and a target column -> column roles -> embeddings + MLP. It is the
fallback of task inference: any CSV that no other task claims is a table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quicklearn.core.errors import ConfigError
from quicklearn.tasks.base import OnnxSpec, Option, Predicted, ServeSpec, Task
from quicklearn.tasks.tabular.recipe import TabularRecipe, learner_kwargs

if TYPE_CHECKING:
    import torch

    from quicklearn.analysis.interpretation import Interpretation
    from quicklearn.train.callbacks.base import Callback
    from quicklearn.train.learner import Learner

__all__ = ["TabularTask", "TASK"]


def _names(value: str | None) -> list[str] | None:
    """Comma-separated column names -> a list."""
    return None if value is None else [v.strip() for v in str(value).split(",") if v.strip()]


class TabularTask(Task):
    name = "tabular"
    summary = "tables: classification and regression on a CSV's columns (embeddings + MLP)"
    recipe = TabularRecipe
    items = "rows"
    noun = "tables"
    detect_order = 90
    fallback = True
    options = (
        Option("--cat", "data.cat_names", "Comma-separated columns to treat as categorical.", parse=_names),
        Option("--cont", "data.cont_names", "Comma-separated columns to treat as continuous.", parse=_names),
        Option("--drop", "data.drop", "Comma-separated columns to leave out.", parse=_names),
        Option("--date-parts", "data.date_parts", "Use date columns as year/month/day of week/elapsed.", bool),
        Option("--scaling", "data.scaling",
               "Continuous columns: auto (standard; ranks for heavy tails), standard, quantile or robust."),
        Option("--ensemble", "model.ensemble", "MLPs trained as one batched model (1: one MLP).", int),
        Option("--patience", "training.patience", "Early stopping: epochs without a better validation loss.", int),
        Option("--baseline", "baseline", "Also fit scikit-learn's HistGradientBoosting on the same split and print "
               "both models' metrics (needs quicklearn[baseline]).", bool),
    )

    def detect(self, data: Path) -> str | None:
        if data.is_file() and data.suffix.lower() in (".csv", ".tsv", ".txt"):
            return "no image-path or long free-text column"
        return None

    def check(self, recipe: TabularRecipe) -> None:  # type: ignore[override]
        """The target and every column named exist (read from the CSV's first rows), before anything is announced."""
        from quicklearn.data.frames import check_columns, read_head

        d = recipe.data
        if not d.y:
            raise ConfigError("tabular data needs its target column: give --target COLUMN or set data.y in the recipe.")
        frame, where = read_head(d.path)
        split = d.splitter.partition(":")[2] if d.splitter.startswith(("column:", "time:")) else None
        check_columns(frame, where, target=d.y, feature=[*(d.cat_names or []), *(d.cont_names or []), *d.drop],
                      split=[split] if split else [])

    def describe(self, recipe: TabularRecipe, out: Path) -> str:  # type: ignore[override]
        return (f"training a tabular model on {recipe.data.path}, target {recipe.data.y!r}, "
                f"{recipe.fit.epochs} epochs, batch size {recipe.training.bs} -> {out}")

    def build(self, recipe: TabularRecipe, *, path: Path | None, progress: bool | None,  # type: ignore[override]
              cbs: Sequence["Callback"]) -> "Learner":
        from quicklearn.tasks.tabular.learner import tabular_learner

        return tabular_learner(recipe.data.path, path=path, progress=progress, cbs=cbs,
                               recipe=recipe.model_dump(mode="json"), **learner_kwargs(recipe))

    def fit_kwargs(self, recipe: TabularRecipe, learn: "Learner") -> dict[str, Any]:  # type: ignore[override]
        kw = recipe.fit.model_dump()
        if kw["epochs"] == "auto":
            from quicklearn.tasks.tabular.learner import auto_epochs

            kw["epochs"] = auto_epochs(learn.dls)
        return kw

    def baseline(self, recipe: TabularRecipe, learn: "Learner") -> dict[str, Any] | None:  # type: ignore[override]
        if not recipe.baseline:
            return None
        from quicklearn.tasks.tabular.baseline import fit_baseline

        return fit_baseline(learn)

    def load(self, folder: Path, config: dict, state: dict[str, "torch.Tensor"], device: Any) -> Any:
        from quicklearn.tasks.tabular.predictor import TabularPredictor

        return TabularPredictor.from_files(folder, config, state, device)

    def predict_inputs(self, predictor: Any, inputs: list[str], *, thresh: Any = None, tta: bool = False) -> Predicted:
        from quicklearn.serving.predictor import predict_csv_files

        return predict_csv_files(predictor, inputs, thresh=thresh, tta=tta)

    def evaluate(self, predictor: Any, data: Any, y: str | None = None, tta: bool = False) -> dict[str, Any]:
        from quicklearn.analysis.labelled import labelled_rows, score
        from quicklearn.tasks.tabular.data import _cat_key

        if tta:
            raise ConfigError("--tta is for image models; a table has no views to average.")
        frame, where, _, targets = labelled_rows(predictor, data, y, _cat_key)
        return score(predictor, predictor.raw(frame, where), targets)

    def data_checks(self, recipe: TabularRecipe) -> Any:  # type: ignore[override]
        from quicklearn.tasks.tabular.checks import tabular_checks

        return tabular_checks(recipe)

    def interpret_learner(self, learn: "Learner") -> "Interpretation":
        from quicklearn.tasks.tabular.interpret import interpret_learner

        return interpret_learner(learn)

    def interpret_model(self, predictor: Any, data: Any, y: str | None) -> "Interpretation":
        from quicklearn.tasks.tabular.interpret import interpret_model

        return interpret_model(predictor, data, y)

    def show_batch(self, recipe: TabularRecipe, out: Path, n: int) -> str:  # type: ignore[override]
        """The first training rows as the model reads them (printed: a table is read, not looked at)."""
        self.check(recipe)
        return self.build(recipe, path=None, progress=False, cbs=()).dls.show_batch_text(n)

    def serve(self, predictor: Any) -> ServeSpec:
        from quicklearn.tasks.tabular.serve import serve_spec

        return serve_spec(predictor)

    def onnx(self, predictor: Any) -> OnnxSpec:
        from quicklearn.tasks.tabular.onnx import onnx_spec

        return onnx_spec(predictor)


TASK = TabularTask()
