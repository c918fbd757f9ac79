"""The Task interface: one kind of problem quicklearn trains, as one object that the rest of the package asks.

A task says how to recognise its data (`detect`), which recipe it reads (`recipe`, built from the shared
sections in config/sections.py), how it builds its Learner (`build`), what its model folder holds and how to
load it back (`load`; the data's own part of config.json comes from its DataLoaders), how to interpret,
evaluate, export and serve it (`serve`: what `quicklearn serve` reads and answers), and which `quicklearn train` options and which commands are its own. The registry
(tasks/registry.py) finds tasks by name or by data; nothing outside tasks/ names one.

A method a task leaves out answers with one line saying that this task has no such thing.

    class ToyTask(Task):
        name, summary, recipe = "toy", "numbers in, a class out", ToyRecipe
        def build(self, recipe, *, path, progress, cbs): return toy_learner(recipe.data.path, ...)
        def load(self, folder, config, state, device): return ToyPredictor(...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from quicklearn.core.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from quicklearn.analysis.check.findings import DataChecks
    from quicklearn.analysis.interpretation import Interpretation
    from quicklearn.config.sections import Recipe
    from quicklearn.train.callbacks.base import Callback
    from quicklearn.train.learner import Learner

__all__ = ["Task", "Option", "OnnxSpec", "Predicted", "ServeSpec", "ServeField", "ServeRoute", "Upload"]


@dataclass(frozen=True)
class Option:
    """A `quicklearn train` option: its flag, the recipe key it sets, its help, and how its value is read.

    type: str, int, float, or bool for a flag that is on when given. parse: the command-line text -> the recipe
    value (e.g. comma-separated names -> a list). Options shared by every task live in cli/options.py; a task's
    own go in its `options`, and the CLI refuses them for any other task."""

    flag: str
    key: str
    help: str
    type: type = str
    parse: Callable[[Any], Any] | None = None
    short: str | None = None

    @property
    def param(self) -> str:
        """The option's name as a Python identifier (`--freeze-epochs` -> `freeze_epochs`)."""
        return self.flag.lstrip("-").replace("-", "_")

    def value(self, raw: Any) -> Any:
        """The recipe value of what was typed."""
        return self.parse(raw) if self.parse is not None and raw is not None else raw


@dataclass
class OnnxSpec:
    """What a task exports to ONNX: the module to trace, an example input (its batch axis is made dynamic), the
    input's name, the output names, the metadata that describes them, and for the parity check a random input
    maker and the outputs the task's own predictor gives (a wrong wrapper shows up as a difference).
    compare(onnx_outputs, reference_outputs) -> the difference checked against the limit; None = the largest
    absolute difference of any output (a task with integer outputs, such as segmentation's class maps, where
    near-tied logits may pick either class, says how they compare)."""

    module: "torch.nn.Module"
    example: "torch.Tensor"
    input_name: str
    output_names: list[str]
    meta: dict[str, Any]
    random_input: Callable[[int, "torch.Generator"], "torch.Tensor"]
    reference: Callable[["torch.Tensor"], list["torch.Tensor"]]
    compare: Callable[[list["torch.Tensor"], list["torch.Tensor"]], float] | None = None


@dataclass
class Predicted:
    """What `quicklearn predict` shows of one call: the predictions as a table, and the columns of it that the
    terminal table shows (the full frame goes to --out / --format csv|json)."""

    frame: "pd.DataFrame"
    shown: list[str] = field(default_factory=list)
    index_label: str | None = None  # show the frame's row numbers under this heading


@dataclass(frozen=True)
class Upload:
    """One file a client uploaded to the HTTP server: its file name (a label for the answer, never opened as a
    path), the content type it was sent as (already checked against its bytes) and the bytes."""

    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ServeField:
    """One JSON field of a request: a table's column, a text, a user ID, a route's parameter. The server builds
    the request's validation model (and /docs) from these, the page its form. type: text (a long string), string,
    number (an integer or a float; null is a missing value), integer, boolean, category (any scalar: a string,
    number or boolean; null is a missing value) or id (a string or an integer). required: without a default; `default` otherwise. choices: the values the page
    offers (a category's training levels); example: what the page's form starts with."""

    name: str
    type: str = "string"
    required: bool = True
    default: Any = None
    example: Any = None
    choices: list[Any] | None = None
    help: str = ""


@dataclass
class ServeRoute:
    """A route of a task's own on the HTTP server (collab's POST /recommend): a JSON body with `fields`, answered
    by handle(body: dict) -> JSON-able (a list of records shows on the page as a table; a DataError is the
    request's 400). The server adds it behind the same key, limits and one-line errors as /predict."""

    path: str
    summary: str
    fields: list[ServeField]
    handle: Callable[[dict[str, Any]], Any]


@dataclass
class ServeSpec:
    """How `quicklearn serve` serves a task's model: what the server (quicklearn/serving/http/) asks, so that it
    holds no per-task code.

    files: /predict reads multipart `files` (of `media_types`, checked against their bytes); else JSON
      {"rows": [...]}, each row an object of `fields` (unknown or missing fields are refused naming them).
    prepare(uploads or rows) -> (items, records): run per request, before batching: the checked model inputs,
      one per item, and what each item's answer starts with (the file's name, the row itself). A DataError is the
      request's 400 and never reaches the batch.
    run(items) -> outputs, one per item along the first axis: the items of many requests in one forward pass
      (None: `predictor.raw(items)`).
    answer(records, outputs) -> the JSON records of those items, in the shape of `quicklearn predict --format
      json` (None: the records with the prediction columns appended, `Predictor.append_predictions`).
    onnx_input(items) -> the ONNX graph's input for a batch (numpy), whose first output is what `run` gives;
      None: this task is not served through onnxruntime.
    routes: the task's own routes. card: rows of the page's model card ("input size": "64 x 64 px", ...).
    example() -> one item as `prepare` makes it, for timing batch sizes at start-up (serving/http/sizing.py);
      None: the server batches up to 32 unless told otherwise."""

    prepare: Callable[[list[Any]], tuple[list[Any], list[dict[str, Any]]]]
    files: bool = False
    media_types: tuple[str, ...] = ()
    fields: list[ServeField] = field(default_factory=list)
    run: Callable[[list[Any]], Any] | None = None
    answer: Callable[[list[dict[str, Any]], Any], list[dict[str, Any]]] | None = None
    onnx_input: Callable[[list[Any]], Any] | None = None
    routes: list[ServeRoute] = field(default_factory=list)
    card: dict[str, Any] = field(default_factory=dict)
    example: Callable[[], Any] | None = None


class Task:
    """Base class of a task: subclass it, set the class attributes, implement `build` and `load`; the rest is
    optional. Register the object: one line in tasks/registry.py for a built-in task, or the entry point group
    `quicklearn.tasks` for a package's own (see docs/ARCHITECTURE.md, "How to add a task")."""

    name: ClassVar[str]
    summary: ClassVar[str]
    recipe: ClassVar[type["Recipe"]]
    items: ClassVar[str] = "items"  # how messages count the data: images, rows, texts
    noun: ClassVar[str] = "this task"  # how messages name the task's data: "--ema is for images"
    detect_order: ClassVar[int] = 50  # task inference asks the tasks by ascending order
    fallback: ClassVar[bool] = False  # claims any data it can read; only chosen when no other task claims it
    # tasks whose data this task's is a special case of: when both claim some data, this one is chosen (a photo
    # folder with a mask folder beside it is also "a folder of images", but segmentation data first)
    refines: ClassVar[tuple[str, ...]] = ()
    predict_out_dir: ClassVar[bool] = False  # predict_inputs takes out_dir=: it writes files per input (--out-dir)
    options: ClassVar[Sequence[Option]] = ()

    # ---- recognising data --------------------------------------------------------------------------------
    def detect(self, data: Path) -> str | None:
        """Why `data` (an existing file or folder) is this task's, in a few words; None when it is not. May raise
        a ConfigError when the data could be this task's or another's and the user must say which (the registry
        raises it only when no other task claims the data)."""
        return None

    def default_data(self) -> str | None:
        """The data `quicklearn train` uses when given none (a bundled sample), or None."""
        return None

    # ---- training -----------------------------------------------------------------------------------------
    def check(self, recipe: "Recipe") -> None:
        """Refuse a recipe that cannot run before anything is announced or read (a typo in an architecture)."""

    def describe(self, recipe: "Recipe", out: Path) -> str:
        """The one line `quicklearn train` prints before it starts."""
        return f"training a {self.name} model on {recipe.data.path} -> {out}"  # type: ignore[attr-defined]

    def build(self, recipe: "Recipe", *, path: Path | None, progress: bool | None, cbs: Sequence["Callback"]) -> "Learner":
        """The Learner the recipe describes, through the same Python API a user calls."""
        raise NotImplementedError

    def fit_kwargs(self, recipe: "Recipe", learn: "Learner") -> dict[str, Any]:
        """The keyword arguments of `Learner.fine_tune` the recipe's fit section says."""
        return recipe.fit.model_dump()

    def baseline(self, recipe: "Recipe", learn: "Learner") -> dict[str, Any] | None:
        """A reference model fitted on the same training items and scored on the same validation items, when the
        recipe asks for one (tables: `--baseline`, gradient boosting): {"model", "metrics", "wall_s"}; else None."""
        return None

    # ---- the model folder -----------------------------------------------------------------------------------
    def load(self, folder: Path, config: dict, state: dict[str, "torch.Tensor"], device: "str | torch.device") -> Any:
        """The predictor of a model folder this task wrote: config.json and the verified weights are read."""
        raise NotImplementedError

    # ---- using a model ----------------------------------------------------------------------------------------
    def predict_inputs(self, predictor: Any, inputs: list[str], *, thresh: Any = None, tta: bool = False) -> Predicted:
        """What `quicklearn predict MODEL INPUTS...` prints or writes. A task with `predict_out_dir` also takes
        `out_dir` (a Path, or None when --out-dir is not given) and writes its files there (segmentation's masks)."""
        raise self._refuse("predicting from the command line")

    def evaluate(self, predictor: Any, data: Any, y: str | None = None, tta: bool = False) -> dict[str, Any]:
        """{"n", "metrics"} of the model on labelled data it has not seen (`quicklearn evaluate`; see analysis/labelled.score)."""
        raise self._refuse("evaluate")

    def interpret_learner(self, learn: "Learner") -> "Interpretation":
        """The Interpretation of a trained Learner's validation set."""
        raise self._refuse("interpret")

    def interpret_model(self, predictor: Any, data: Any, y: str | None) -> "Interpretation":
        """The Interpretation of a loaded model on labelled `data`."""
        raise self._refuse("interpret")

    def onnx(self, predictor: Any) -> OnnxSpec:
        """What to export to ONNX; a task without an ONNX form says why and what to do instead."""
        raise self._refuse("ONNX export")

    def show_batch(self, recipe: "Recipe", out: Path, n: int) -> str:
        """Show a few training examples as the model sees them: write `out` (or print them) and say what was done."""
        raise self._refuse("show-batch")

    def serve(self, predictor: Any) -> ServeSpec:
        """How `quicklearn serve` reads requests for this model, batches them and answers (see ServeSpec)."""
        raise self._refuse("serving over HTTP (quicklearn serve)")

    def data_checks(self, recipe: "Recipe") -> "DataChecks | None":
        """What `quicklearn check` looks for in the recipe's data (duplicates, leakage across the split, label errors,
        ...): the task's checkers over its items (see analysis/check/findings.py; a built-in task's are in its
        checks.py). `quicklearn train` runs the cheap ones first. None: this task has no data checks."""
        return None

    # ---- the command line -------------------------------------------------------------------------------------
    def commands(self) -> list[Any]:
        """typer apps of this task's own commands, added to `quicklearn`: an app with a name is a group of commands
        (`quicklearn weights import ...`), an app without one adds its commands at the top (`quicklearn recommend`)."""
        return []

    def info(self) -> list[tuple[str, str]]:
        """Rows for `quicklearn info` (e.g. which offline weights are installed)."""
        return []

    def _refuse(self, what: str) -> ConfigError:
        return ConfigError(f"{what} is not available for {self.name} models.")

    def __repr__(self) -> str:
        return f"<Task {self.name}>"
