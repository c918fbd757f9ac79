"""The `quicklearn` command: a thin layer over the Python API. Every user error is one line and a non-zero exit.

`train` is assembled from the options every task shares (cli/options.py) and each registered task's own
(`Task.options`); a task's own commands (`quicklearn weights ...` for images) come from `Task.commands()`.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from quicklearn.core.errors import QuicklearnError
from quicklearn.tasks.base import Option, Task
from quicklearn.tasks.registry import all_tasks

from . import commands
from .options import COMMON

app = typer.Typer(
    help="quicklearn: point it at your data, get a strong fine-tuned model in minutes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
recipes_app = typer.Typer(help="The shipped recipes: list, show, and the schema they follow.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

out = Console()
err = Console(stderr=True)


def _user_errors(fn: Callable) -> Callable:
    """Turn a QuicklearnError into one red line on stderr and exit code 1; `--debug` keeps the traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except QuicklearnError as e:
            if kwargs.get("debug"):
                raise
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")]


def _given_args(ctx: typer.Context) -> list[str]:
    """The options given on the command line, as arguments again: what `--gpus N` hands to the processes it starts."""
    args: list[str] = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        value = ctx.params.get(param.name)
        if source is None or source.name not in ("COMMANDLINE", "ENVIRONMENT") or value is None or not param.opts:
            continue
        if getattr(param, "is_flag", False):
            flag = param.opts[0] if value else (param.secondary_opts or [None])[0]
            args += [flag] if flag else []
        else:
            args += [param.opts[0], str(value)]
    return args


def _train_options() -> list[tuple[Option, list[Task] | None]]:
    """The shared options (owners None), then each task's own with the tasks that have it (a flag two tasks
    declare appears once: they must set the same key)."""
    seen: dict[str, tuple[Option, list[Task] | None]] = {o.flag: (o, None) for o in COMMON}
    for task in all_tasks():
        for opt in task.options:
            known = seen.get(opt.flag)
            if known is None:
                seen[opt.flag] = (opt, [task])
            elif known[1] is None or known[0].key != opt.key:
                raise QuicklearnError(f"task {task.name}'s option {opt.flag} sets {opt.key}, but {opt.flag} already "
                                      f"sets {known[0].key}; give it another name.")
            else:
                known[1].append(task)
    return list(seen.values())


def _default(task: Task, key: str) -> Any:
    """The default of recipe key `key` ("fit.epochs") in `task`'s recipe, or None where it has none."""
    value: Any = task.recipe.model_validate({"task": task.name}).model_dump(mode="json")
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _help(opt: Option, owners: list[Task]) -> str:
    """The option's help with its default for each task that has it ("[default: 3 for vision, auto for tabular]"),
    markup-escaped so that rich shows brackets as typed."""
    from rich.markup import escape

    shown = {t.name: _default(t, opt.key) for t in owners}
    shown = {name: v for name, v in shown.items() if v is not None and v is not False and v != [] and v != ""}
    text = escape(opt.help)
    if shown and opt.type is not bool:
        values = {name: ",".join(map(str, v)) if isinstance(v, list) else str(v) for name, v in shown.items()}
        if len(set(values.values())) == 1 and len(values) == len(owners):
            text += f" \\[default: {next(iter(values.values()))}]"
        else:
            text += " \\[default: " + ", ".join(f"{v} for {name}" for name, v in values.items()) + "]"
    return text


def _panel(owners: list[Task] | None) -> str | None:
    """Help panels: the shared options under "Options", a task's own under its data's name."""
    if owners is None:
        return None
    nouns = " and ".join(t.noun for t in owners)
    return f"{nouns[0].upper()}{nouns[1:]} (--task {', '.join(t.name for t in owners)})"


def _parameter(opt: Option, owners: list[Task] | None) -> inspect.Parameter:
    names = [opt.flag, *([opt.short] if opt.short else [])]
    info = dict(help=_help(opt, owners if owners is not None else all_tasks()), rich_help_panel=_panel(owners))
    if opt.type is bool:
        return inspect.Parameter(opt.param, inspect.Parameter.KEYWORD_ONLY, default=False,
                                 annotation=Annotated[bool, typer.Option(*names, **info)])
    kind = str if opt.parse is not None else opt.type
    return inspect.Parameter(opt.param, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[Optional[kind], typer.Option(*names, **info)])


RUN = "Run"  # the help panel of the switches about the run itself
_RUN_PARAMS = [
    inspect.Parameter("recipe", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[str], typer.Option(help="Recipe file or shipped name (vision, vision-fast-cpu, ...).", rich_help_panel=RUN)]),
    inspect.Parameter("task", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[str], typer.Option(help="The task (inferred from the data when left out): vision, tabular, text or a plugin's.",
                                         rich_help_panel=RUN)]),
    inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option(help="Replace an existing --out folder.", rich_help_panel=RUN)]),
    inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option(help="Continue an interrupted run in --out from its last checkpoint.", rich_help_panel=RUN)]),
    inspect.Parameter("print_config", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--print-config", help="Print the full recipe these options resolve to, and exit.",
                          rich_help_panel=RUN)]),
    inspect.Parameter("no_check", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--no-check", help="Skip the quick data check (duplicates, leakage across the split, hidden "
                                              "folders) before training.", rich_help_panel=RUN)]),
    inspect.Parameter("gpus", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[str], typer.Option(help="Processes on this machine, one per GPU: N or 'all' (starts torchrun; with "
                                         "--device cpu, N CPU processes).", rich_help_panel=RUN)]),
    inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks.", rich_help_panel=RUN)]),
]


def _train_command() -> Callable:
    """`quicklearn train`, its parameters generated from the options of every registered task."""
    declared = _train_options()
    options = [o for o, _ in declared]

    def train(ctx: typer.Context, **params: Any) -> None:
        """Fine-tune a pretrained model on your data and save it to a model folder."""
        given = {o.flag: params[o.param] for o in options
                 if ctx.get_parameter_source(o.param) is not None
                 and ctx.get_parameter_source(o.param).name in ("COMMANDLINE", "ENVIRONMENT")
                 and params[o.param] is not None}
        request = commands.TrainRequest(
            given=given, options={o.flag: o for o in options}, recipe=params["recipe"], task=params["task"],
            overwrite=params["overwrite"], resume=params["resume"], print_config=params["print_config"],
            gpus=params["gpus"], argv=_given_args(ctx), check=not params["no_check"])
        code = commands.train(request, out)
        if code:
            raise typer.Exit(code)

    ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    train.__signature__ = inspect.Signature([ctx_param, *[_parameter(o, owners) for o, owners in declared], *_RUN_PARAMS])  # type: ignore[attr-defined]
    return train


app.command("train")(_user_errors(_train_command()))


@app.command()
@_user_errors
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by `quicklearn train`.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders, or a CSV (image paths; or rows for a table or text model).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json.")] = "table",
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the predictions to this file.")] = None,
    thresh: Annotated[Optional[str], typer.Option(help="Multi-label images: threshold(s), 0.3, or per label cat=0.3,dog=0.6 (default: the model's own).")] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Images: average over flips and a zoomed crop (test-time augmentation; 4x slower).")] = False,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Segmentation: write a mask PNG and an overlay JPEG per photo into this folder.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Predict with a trained model: images (files, folders, a CSV of paths), or the rows of a CSV for table and text models."""
    commands.predict(model_dir, inputs, format, out_file, out, thresh=thresh, tta=tta, out_dir=out_dir)


@app.command()
@_user_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by `quicklearn train`.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Labelled data: images (a folder per class, or a CSV), or the CSV of a table or text model.")],
    target: Annotated[Optional[str], typer.Option("--target", "-y", help="Label column of a CSV.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json.")] = "table",
    tta: Annotated[bool, typer.Option("--tta", help="Predict with test-time augmentation (flips and a zoomed crop; 4x slower).")] = False,
    debug: DebugOpt = False,
) -> None:
    """Measure a trained model on labelled data it has not seen."""
    commands.evaluate(model_dir, data, target, format, out, tta=tta)


@app.command()
@_user_errors
def interpret(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by `quicklearn train`.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Labelled data: images (a folder per class, or a CSV), or the CSV of a table or text model.")],
    target: Annotated[Optional[str], typer.Option("--target", "-y", help="Label column of a CSV (default: the one the model was trained on).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the PNGs and CSVs (default: MODEL_DIR/interpretation).")] = None,
    top_losses: Annotated[int, typer.Option("--top-losses", help="How many worst items to list and show.")] = 9,
    debug: DebugOpt = False,
) -> None:
    """Where a model errs: confusion matrix, per-class table, top losses, feature importance; tables and PNGs."""
    commands.interpret(model_dir, data, target, out_dir, top_losses, out)


@app.command("lr-find")
@_user_errors
def lr_find(
    data: Annotated[str, typer.Option("--data", "-d", help="Folder of images or a CSV.")],
    task: Annotated[Optional[str], typer.Option(help="The task (inferred from the data when left out).")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture [default: the task's].")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Images: imagenet | PATH | none.")] = None,
    size: Annotated[Optional[int], typer.Option(help="Images: image size [default: 224].")] = None,
    bs: Annotated[Optional[str], typer.Option(help="Batch size [default: the task's].")] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-y", help="Target column of a CSV.")] = None,
    plot: Annotated[Path, typer.Option("--out", "-o", help="Where to save the plot.")] = Path("lr_find.png"),
    debug: DebugOpt = False,
) -> None:
    """Sweep learning rates on the frozen model, print the suggestion and save the plot."""
    given = {k: v for k, v in {"--arch": arch, "--weights": weights, "--size": size, "--bs": bs, "--target": target}.items()
             if v is not None}
    commands.lr_find(data, task, given, plot, out)


@app.command("show-batch")
@_user_errors
def show_batch(
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="Images (a folder or a CSV of paths), a table or texts [default: the bundled sample].")] = None,
    task: Annotated[Optional[str], typer.Option(help="The task (inferred from the data when left out).")] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-y", help="Target column of a CSV.")] = None,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Images: the PNG to write.")] = Path("show_batch.png"),
    size: Annotated[Optional[int], typer.Option(help="Images: image size [default: 224].")] = None,
    n: Annotated[int, typer.Option(help="How many items.")] = 16,
    debug: DebugOpt = False,
) -> None:
    """Show training examples as the model sees them: augmented images as a PNG grid; rows and texts printed."""
    given = {k: v for k, v in {"--size": size, "--target": target}.items() if v is not None}
    commands.show_batch(data, task, given, out_file, n, out)


@app.command()
@_user_errors
def check(
    data: Annotated[str, typer.Option("--data", "-d", help="Images (a folder or a CSV of paths), a table or texts (a CSV).")],
    task: Annotated[Optional[str], typer.Option(help="The task (inferred from the data when left out).")] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-y", help="Label column of a CSV.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write report.md, issues.csv and contact sheets (PNG) here.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit with 2 when leakage or unreadable data is found (for CI).")] = False,
    debug: DebugOpt = False,
) -> None:
    """Find what is wrong with a data set before training on it: duplicates, leakage across the split, label errors, ..."""
    code = commands.check(data, task, target, out_dir, strict, out)
    if code:
        raise typer.Exit(code)


@app.command()
@_user_errors
def info(debug: DebugOpt = False) -> None:
    """Versions, device, cache folder and which offline weights are installed."""
    commands.info(out)


@recipes_app.command("list")
@_user_errors
def recipes_list(debug: DebugOpt = False) -> None:
    """List the shipped recipes."""
    commands.recipes_list(out)


@recipes_app.command("show")
@_user_errors
def recipes_show(name: Annotated[str, typer.Argument(help="A shipped recipe name or a recipe file.")], debug: DebugOpt = False) -> None:
    """Print a recipe."""
    commands.recipes_show(name, out)


@recipes_app.command("schema")
@_user_errors
def recipes_schema(debug: DebugOpt = False) -> None:
    """Print the recipe schema (JSON Schema, generated from the validation models)."""
    out.print_json(json.dumps(commands.schema()))


@app.command()
@_user_errors
def export(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by `quicklearn train`.")],
    onnx: Annotated[bool, typer.Option("--onnx", help="Write an ONNX file (normalization inside, dynamic batch) for onnxruntime.")] = False,
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help="The file to write (default: MODEL_DIR/model.onnx).")] = None,
    opset: Annotated[Optional[int], typer.Option(help="ONNX opset version (default: torch's exporter's, 20 with torch 2.14).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Export a trained image (or table) model for serving: `--onnx` writes one ONNX file, checked against PyTorch."""
    commands.export(model_dir, onnx, out_file, opset, out)


@app.command()
@_user_errors
def serve(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by `quicklearn train`.")],
    host: Annotated[str, typer.Option(help="The address to listen on; another than 127.0.0.1 is reachable from other machines (set an API key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Processes, each with its own copy of the model and its own batches.")] = 1,
    max_batch: Annotated[Optional[int], typer.Option("--max-batch", help="Most items in one forward pass (1: no batching; default: measured at start-up, the size with the fastest pass per item, up to 32).")] = None,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="Longest wait for a batch to fill, in ms.")] = 10.0,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Requests waiting for a batch before new ones get 503 + Retry-After.")] = 256,
    backend: Annotated[str, typer.Option(help="torch | onnx (onnxruntime, the onnx extra; image, table and collab models).")] = "torch",
    api_key: Annotated[Optional[str], typer.Option("--api-key", help="Require 'Authorization: Bearer KEY' (better: the QUICKLEARN_API_KEY environment variable; a command line shows in ps).")] = None,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="The largest request body, in MB.")] = 20.0,
    threads: Annotated[Optional[int], typer.Option(help="Intra-op threads of torch / onnxruntime (default: theirs).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Serve a model folder over HTTP: /predict (batched), /info, a web page at /, OpenAPI docs at /docs (needs the serve extra: pip install "quicklearn\\[serve]")."""
    commands.serve(model_dir, out, host=host, port=port, workers=workers, max_batch=max_batch, max_wait_ms=max_wait_ms,
                   max_queue=max_queue, backend=backend, api_key=api_key, max_body_mb=max_body_mb, threads=threads)


def _add_task_commands() -> None:
    """Each task's own commands, with the same one-line errors as every other command."""
    for task in all_tasks():
        for sub in task.commands():
            for command in sub.registered_commands:
                command.callback = _user_errors(command.callback)
            app.add_typer(sub, name=sub.info.name)


_add_task_commands()


def main() -> None:
    """Entry point of the `quicklearn` console script."""
    debug = "--debug" in sys.argv
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
