"""The text task: labelled texts in a CSV or DataFrame -> a pretrained transformer encoder (MiniLM offline) with
a pooled head, fine-tuned. Needs the `[text]` extra (Hugging Face transformers), imported only when used."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quicklearn.core.errors import ConfigError
from quicklearn.tasks.base import Option, Predicted, ServeSpec, Task
from quicklearn.tasks.text.recipe import TextRecipe, learner_kwargs

if TYPE_CHECKING:
    import torch

    from quicklearn.analysis.interpretation import Interpretation
    from quicklearn.train.callbacks.base import Callback
    from quicklearn.train.learner import Learner

__all__ = ["TextTask", "TASK"]

LONG_TEXT, SHORT_TEXT = 100, 30  # mean characters: above LONG it is free text; between the two it may be a category


def _text_cols(value: str | None) -> str | list[str] | None:
    """--text-col a or a,b -> 'a' or ['a', 'b']."""
    if value is None:
        return None
    cols = [v.strip() for v in str(value).split(",") if v.strip()]
    return cols[0] if len(cols) == 1 else cols


class TextTask(Task):
    name = "text"
    summary = "texts: classification and regression by fine-tuning a pretrained transformer (MiniLM offline)"
    recipe = TextRecipe
    items = "texts"
    noun = "texts"
    detect_order = 20
    options = (
        Option("--arch", "model.arch", "The architecture: a timm name for images, minilm, a folder or a hub name for texts."),
        Option("--text-col", "data.text_col", "The text column(s), comma-separated (the longest texts' when left out).", parse=_text_cols),
        Option("--max-len", "model.max_len", "Tokens per text.", int),
    )

    def detect(self, data: Path) -> str | None:
        if not (data.is_file() and data.suffix.lower() in (".csv", ".tsv", ".txt")):
            return None
        import pandas as pd

        from quicklearn.data.sources import peek_table

        frame = peek_table(data)
        # object (pandas 2) or the str dtype (pandas 3 reads text columns as str, not object)
        lengths = {c: frame[c].dropna().astype(str).str.len().mean()
                   for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype)}
        long = [c for c, n in lengths.items() if n > LONG_TEXT]
        if long:
            return f"column {long[0]!r} holds long free text"
        mid = [c for c, n in lengths.items() if SHORT_TEXT < n <= LONG_TEXT]
        if mid:
            raise ConfigError(f"{data}: column {mid[0]!r} could be free text or a category; say which with --task text "
                              "or --task tabular.")
        return None

    def check(self, recipe: TextRecipe) -> None:  # type: ignore[override]
        """The label column and the text columns named exist (read from the CSV's first rows), before anything
        is announced."""
        from quicklearn.data.frames import check_columns, read_head

        d = recipe.data
        if not d.y:
            raise ConfigError("text data needs its target column: give --target COLUMN or set data.y in the recipe.")
        frame, where = read_head(d.path)
        split = d.splitter.partition(":")[2] if d.splitter.startswith(("column:", "time:")) else None
        check_columns(frame, where, target=d.y, text=d.text_col or [], split=[split] if split else [])

    def describe(self, recipe: TextRecipe, out: Path) -> str:  # type: ignore[override]
        f, m = recipe.fit, recipe.model
        return (f"fine-tuning text encoder [bold]{m.arch}[/] on {recipe.data.path}, target {recipe.data.y!r}, "
                f"{f.freeze_epochs} frozen + {f.epochs} unfrozen epochs, max {m.max_len} tokens -> {out}")

    def build(self, recipe: TextRecipe, *, path: Path | None, progress: bool | None,  # type: ignore[override]
              cbs: Sequence["Callback"]) -> "Learner":
        from quicklearn.tasks.text.learner import text_learner

        return text_learner(recipe.data.path, path=path, progress=progress, cbs=cbs,
                            recipe=recipe.model_dump(mode="json"), **learner_kwargs(recipe))

    def load(self, folder: Path, config: dict, state: dict[str, "torch.Tensor"], device: Any) -> Any:
        from quicklearn.tasks.text.predictor import TextPredictor

        return TextPredictor.from_files(folder, config, state, device)

    def predict_inputs(self, predictor: Any, inputs: list[str], *, thresh: Any = None, tta: bool = False) -> Predicted:
        from quicklearn.serving.predictor import predict_csv_files

        return predict_csv_files(predictor, inputs, thresh=thresh, tta=tta)

    def evaluate(self, predictor: Any, data: Any, y: str | None = None, tta: bool = False) -> dict[str, Any]:
        from quicklearn.analysis.interpretation import predict_in_chunks
        from quicklearn.analysis.labelled import labelled_rows, score
        from quicklearn.data.frames import check_column
        from quicklearn.tasks.text.data import join_texts, text_separator

        if tta:
            raise ConfigError("--tta is for image models; a text has no views to average.")
        frame, where, _, targets = labelled_rows(predictor, data, y)
        for col in predictor.text_cols:
            check_column(frame, col, "text", where)
        texts = join_texts(frame, predictor.text_cols, text_separator(predictor.tokenizer), where)
        return score(predictor, predict_in_chunks(predictor.raw, texts, "texts"), targets)

    def data_checks(self, recipe: TextRecipe) -> Any:  # type: ignore[override]
        from quicklearn.tasks.text.checks import text_checks

        return text_checks(recipe)

    def interpret_learner(self, learn: "Learner") -> "Interpretation":
        from quicklearn.tasks.text.interpret import interpret_learner

        return interpret_learner(learn)

    def interpret_model(self, predictor: Any, data: Any, y: str | None) -> "Interpretation":
        from quicklearn.tasks.text.interpret import interpret_model

        return interpret_model(predictor, data, y)

    def serve(self, predictor: Any) -> ServeSpec:
        from quicklearn.tasks.text.serve import serve_spec

        return serve_spec(predictor)

    def onnx(self, predictor: Any) -> Any:
        raise ConfigError("ONNX export covers image and table models; this is a text model (its tokenizer runs outside "
                          "any graph). Serve its model folder (model.safetensors, config.json and tokenizer/) with "
                          "quicklearn.load instead.")

    def show_batch(self, recipe: TextRecipe, out: Path, n: int) -> str:  # type: ignore[override]
        """A few training texts, decoded from their token ids, with their labels (printed)."""
        self.check(recipe)
        learn = self.build(recipe, path=None, progress=False, cbs=())
        return learn.dls.show_batch(n)


TASK = TextTask()
