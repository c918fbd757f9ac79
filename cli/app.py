"""The `quicklearn` command: a thin layer over the Python API. Every user error is one line and a non-zero exit."""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from quicklearn.errors import QuicklearnError

from . import commands

app = typer.Typer(
    help="quicklearn: point it at your data, get a strong fine-tuned model in minutes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
recipes_app = typer.Typer(help="The shipped recipes: list, show, and the schema they follow.", no_args_is_help=True)
weights_app = typer.Typer(help="Offline pretrained weights: import a file into the cache, list the cache.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
app.add_typer(weights_app, name="weights")

out = Console()
err = Console(stderr=True)


def _user_errors(fn):
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

DataOpt = Annotated[Optional[str], typer.Option("--data", "-d", help="Folder of images (one sub-folder per class) or a CSV.")]
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


@app.command()
@_user_errors
def train(
    ctx: typer.Context,
    data: DataOpt = None,
    recipe: Annotated[Optional[str], typer.Option(help="Recipe file or shipped name (vision, vision-fast-cpu, ...).")] = None,
    task: Annotated[Optional[str], typer.Option(help="vision | tabular | text (inferred from the data when left out).")] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-y", help="Target: a CSV column or a regex on the file name.")] = None,
    kind: Annotated[Optional[str], typer.Option(help="single | multi | regression [default: inferred from the target].")] = None,
    arch: Annotated[Optional[str], typer.Option(help="timm architecture [default: tf_efficientnet_lite0].")] = None,
    weights: Annotated[Optional[str], typer.Option(help="imagenet | PATH to a weights file | none.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Unfrozen epochs, after the frozen ones [default: 3].")] = None,
    freeze_epochs: Annotated[Optional[int], typer.Option(help="Epochs with the backbone frozen [default: 1].")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Base learning rate [default: 2e-3].")] = None,
    size: Annotated[Optional[int], typer.Option(help="Image size in pixels [default: 224].")] = None,
    bs: Annotated[Optional[str], typer.Option(help="Batch size, or 'auto' [default: 32].")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed [default: 42].")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | cuda:1 | mps.")] = None,
    valid_pct: Annotated[Optional[float], typer.Option(help="Validation share when the data has no split [default: 0.2].")] = None,
    split: Annotated[Optional[str], typer.Option(help="auto | random | stratified; tables also column:NAME | time:NAME.")] = None,
    text_col: Annotated[Optional[str], typer.Option("--text-col", help="Texts: the text column(s), comma-separated [default: the longest].")] = None,
    max_len: Annotated[Optional[int], typer.Option("--max-len", help="Texts: tokens per text [default: 256].")] = None,
    cat: Annotated[Optional[str], typer.Option(help="Tables: comma-separated columns to treat as categorical.")] = None,
    cont: Annotated[Optional[str], typer.Option(help="Tables: comma-separated columns to treat as continuous.")] = None,
    drop: Annotated[Optional[str], typer.Option(help="Tables: comma-separated columns to leave out.")] = None,
    date_parts: Annotated[Optional[bool], typer.Option("--date-parts", help="Tables: use date columns as year/month/day of week/elapsed.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder [default: runs/<data>-<time>].")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out from its last checkpoint.")] = False,
    mixup: Annotated[Optional[float], typer.Option(help="Images: mixup's Beta alpha, e.g. 0.4 [default: off].")] = None,
    cutmix: Annotated[Optional[float], typer.Option(help="Images: CutMix's Beta alpha, e.g. 1.0 [default: off].")] = None,
    ema: Annotated[Optional[float], typer.Option(help="Images: keep an EMA of the weights with this decay, e.g. 0.998 [default: off].")] = None,
    progressive: Annotated[Optional[float], typer.Option(help="Images: train at this fraction of --size first, e.g. 0.5 [default: off].")] = None,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also log to TensorBoard in <out>/tensorboard (pip install \"quicklearn[tensorboard]\").")] = False,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the full recipe these options resolve to, and exit.")] = False,
    gpus: Annotated[Optional[str], typer.Option(help="Processes on this machine, one per GPU: N or 'all' (starts torchrun; with --device cpu, N CPU processes).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Fine-tune a pretrained model on your data and save it to a model folder."""
    code = commands.train(
        data=data, recipe=recipe, task=task, target=target, arch=arch, weights=weights, epochs=epochs,
        freeze_epochs=freeze_epochs, lr=lr, size=size, bs=bs, seed=seed, device=device, valid_pct=valid_pct,
        split=split, text_col=text_col, max_len=max_len, cat=cat, cont=cont, drop=drop, date_parts=date_parts, out=out_dir, overwrite=overwrite, resume=resume, print_config=print_config, console=out,
        tensorboard=tensorboard, kind=kind, mixup=mixup, cutmix=cutmix, ema=ema, progressive=progressive,
        gpus=gpus, argv=_given_args(ctx),
    )
    if code:
        raise typer.Exit(code)


@app.command()
@_user_errors
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by `quicklearn train`.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders, or a CSV (image paths; or rows for a table or text model).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json.")] = "table",
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the predictions to this file.")] = None,
    thresh: Annotated[Optional[str], typer.Option(help="Multi-label images: threshold(s), 0.3, or per label cat=0.3,dog=0.6 (default: the model's own).")] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Images: average over flips and a zoomed crop (test-time augmentation; 4x slower).")] = False,
    debug: DebugOpt = False,
) -> None:
    """Predict with a trained model: images (files, folders, a CSV of paths), or the rows of a CSV for table and text models."""
    commands.predict(model_dir, inputs, format, out_file, out, thresh=thresh, tta=tta)


@app.command()
@_user_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by `quicklearn train`.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Labelled images: a folder per class, or a CSV.")],
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
    arch: Annotated[str, typer.Option(help="timm architecture.")] = "tf_efficientnet_lite0",
    weights: Annotated[str, typer.Option(help="imagenet | PATH | none.")] = "imagenet",
    size: Annotated[int, typer.Option(help="Image size.")] = 224,
    bs: Annotated[int, typer.Option(help="Batch size.")] = 32,
    plot: Annotated[Path, typer.Option("--out", "-o", help="Where to save the plot.")] = Path("lr_find.png"),
    debug: DebugOpt = False,
) -> None:
    """Sweep learning rates on the frozen model, print the suggestion and save the plot."""
    commands.lr_find(data, arch, weights, size, bs, plot, out)


@app.command("show-batch")
@_user_errors
def show_batch(
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="Folder of images or a CSV [default: the bundled sample].")] = None,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("show_batch.png"),
    size: Annotated[int, typer.Option(help="Image size.")] = 224,
    n: Annotated[int, typer.Option(help="How many images.")] = 16,
    debug: DebugOpt = False,
) -> None:
    """Save a PNG grid of augmented training images with their labels."""
    commands.show_batch(data, out_file, size, n, out)


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


@weights_app.command("import")
@_user_errors
def weights_import(
    file: Annotated[Path, typer.Argument(help="A weights file (.pth, .pt, .bin or .safetensors).")],
    arch: Annotated[str, typer.Option(help="The timm architecture the weights belong to.")],
    debug: DebugOpt = False,
) -> None:
    """Map a weights file onto a timm architecture and store it in the offline cache."""
    commands.weights_import(file, arch, out)


@weights_app.command("list")
@_user_errors
def weights_list(debug: DebugOpt = False) -> None:
    """List the weights in the offline cache."""
    commands.weights_list(out)



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
