"""What each CLI command does, in terms of the library's public API (app.py only declares the options).

Nothing here knows a task by name: the recipe's task (from the registry) checks, announces, builds, predicts."""

from __future__ import annotations

import io
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from quicklearn.core.errors import ConfigError
from quicklearn.tasks.base import Option, Task


@dataclass
class TrainRequest:
    """`quicklearn train` as one object: the options given (flag -> value, as typed), every option the command
    has (flag -> Option), and the run's own switches."""

    given: dict[str, Any]
    options: dict[str, Option]
    recipe: str | None = None
    task: str | None = None
    overwrite: bool = False
    resume: bool = False
    print_config: bool = False
    gpus: str | None = None
    argv: list[str] = field(default_factory=list)
    check: bool = True  # the quick data check before training (--no-check: off)


def _resolve_recipe(recipe: str | None, task: str | None, data: str | None, console: Console):
    """The recipe to start from: a file or shipped name, else the task's defaults (the task inferred from the
    data, announced, when --task is not given)."""
    from quicklearn.config.files import load_recipe
    from quicklearn.config.schema import parse_recipe
    from quicklearn.tasks.registry import DEFAULT_TASK, get_task, infer_task

    if recipe:
        base = load_recipe(recipe)
        if task and task != base.task:
            raise ConfigError(f"--task {task} contradicts the recipe's task {base.task!r}.")
        return base
    if task is None:
        if data is None:
            return parse_recipe({"task": DEFAULT_TASK})
        found, why = infer_task(data)
        console.print(f"task: [bold]{found.name}[/] ({why}; pass --task to choose)", highlight=False)
        return parse_recipe({"task": found.name})
    return parse_recipe({"task": get_task(task).name})


def _all_options() -> dict[str, Option]:
    from quicklearn.tasks.registry import all_tasks

    from .options import COMMON

    opts = {o.flag: o for o in COMMON}
    for task in all_tasks():
        for o in task.options:
            opts.setdefault(o.flag, o)
    return opts


def _resolve_options(base: Any, task: Task, given: dict[str, Any], options: dict[str, Option]) -> Any:
    """The recipe with the given options applied; an option the task does not have is refused, one line that
    names the task(s) it belongs to."""
    from quicklearn.config.schema import merge_overrides
    from quicklearn.tasks.registry import all_tasks

    from .options import COMMON

    own = {o.flag for o in COMMON} | {o.flag for o in task.options}
    for flag in given:
        if flag not in own:
            owners = [t for t in all_tasks() if any(o.flag == flag for o in t.options)]
            refined = {name for t in owners for name in t.refines}
            owners.sort(key=lambda t: t.name not in refined)  # the general task first (images before segmentation)
            where = " and ".join(t.noun for t in owners) or "another task"
            hint = f" (--task {owners[0].name})" if owners else ""
            raise ConfigError(f"{flag} is for {where}{hint}; this is a {task.name} run.")
    return merge_overrides(base, {options[flag].key: options[flag].value(v) for flag, v in given.items()})


def train(req: TrainRequest, console: Console) -> int:
    """Train as the options say; with `--gpus N` (N > 1) check them here, then start N processes: their exit code."""
    from quicklearn.config.run import check_out_dir, default_out_dir, run_recipe
    from quicklearn.core import distributed as ddp
    from quicklearn.core import launch
    from quicklearn.tasks.registry import get_task

    procs = 1
    if ddp.launched_by_torchrun():
        ddp.init_from_env()  # now, so that only rank 0 announces
        if req.gpus is not None and ddp.is_main():
            console.print(f"--gpus {req.gpus} ignored: this is one of {ddp.world_size()} processes torchrun started", highlight=False)
    elif req.gpus is not None and not req.print_config:
        procs, why = launch.processes_for(req.gpus, req.given.get("--device"))
        console.print(why, highlight=False)
    launcher = console
    if procs > 1 or not ddp.is_main():  # the started rank 0 announces; the launcher and other ranks stay quiet
        console = Console(quiet=True)
    notes = Console(stderr=True) if req.print_config else console  # --print-config: stdout is the YAML alone
    given = dict(req.given)
    base = _resolve_recipe(req.recipe, req.task, given.get("--data"), notes)
    task = get_task(base.task)
    if "--data" not in given and base.data.path is None and (sample := task.default_data()):
        given["--data"] = sample
        notes.print(f"no --data given: using the bundled sample ({sample})", highlight=False)
    resolved = _resolve_options(base, task, given, req.options)
    if req.print_config:
        console.print(yaml.safe_dump(resolved.model_dump(mode="json"), sort_keys=False), end="", highlight=False, markup=False,
                      soft_wrap=True)
        return 0
    # under torchrun every rank takes rank 0's default folder name (it holds a timestamp)
    out_dir = Path(resolved.output.out or str(ddp.broadcast_object(str(default_out_dir(resolved.data.path)))))
    task.check(resolved)  # a typo fails before anything is announced
    if procs > 1:  # refuse a bad --out once, here; every process must write to the same folder: name it here
        check_out_dir(out_dir, req.overwrite, req.resume)
        given_out = resolved.output.out is not None
        return launch.launch(procs, req.argv + ([] if given_out else ["--out", str(out_dir)]),
                             say=lambda line: launcher.print(line, highlight=False, markup=False, soft_wrap=True))
    if ddp.is_distributed():
        console.print(f"data-parallel: {ddp.world_size()} processes under torchrun; the batch size is the global one, "
                      "split across them", highlight=False)
    console.print(task.describe(resolved, out_dir), highlight=False)
    try:
        result = run_recipe(resolved, out=out_dir, overwrite=req.overwrite, resume=req.resume, check=req.check)
    finally:
        # under torchrun: take the process group down before the interpreter exits; a gloo group left alive can
        # abort its process at exit ("terminate called without an active exception")
        main_rank = ddp.is_main()
        if ddp.launched_by_torchrun():
            ddp.cleanup()
    if not main_rank:
        return 0
    learn = result.learner
    dls = learn.dls
    table = Table(title=f"done in {result.wall_s:.0f} s", show_header=False)
    table.add_column("")
    table.add_column("")
    table.add_row(f"train / valid {task.items}", f"{dls.train.n} / {dls.valid.n}")
    if dls.vocab:
        classes = ", ".join(dls.vocab.classes[:8]) + (" ..." if len(dls.vocab) > 8 else "")
        table.add_row("classes", classes)
    if "weights" in learn.config["model"]:
        table.add_row("weights", learn.config["model"]["weights"])
    base = result.baseline
    if base:  # side by side: the network (what the folder holds) and the reference model on the same rows
        table.add_row("valid", f"network  |  {base['model']} (baseline, {base['wall_s']:.1f} s)")
    for k, v in result.metrics.items():
        other = base["metrics"].get(k) if base else None
        table.add_row(f"valid {k}", f"{v:.4f}" + (f"  |  {other:.4f}" if other is not None else ""))
    table.add_row("model folder", str(result.out))
    if (result.out / "training_curves.png").exists():
        table.add_row("training curves", str(result.out / "training_curves.png"))
    if (result.out / "tensorboard").is_dir():
        table.add_row("tensorboard", f"tensorboard --logdir {result.out / 'tensorboard'}")
    console.print(table)
    return 0


def predict(model_dir: Path, inputs: list[str], fmt: str, out_file: Path | None, console: Console, *,
            thresh: str | None = None, tta: bool = False, out_dir: Path | None = None) -> None:
    import quicklearn as ql
    from quicklearn.tasks.registry import get_task

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"--format {fmt!r}: use table, csv or json.")
    model = ql.load(model_dir)
    task = get_task(model.task)
    if out_dir is not None and not task.predict_out_dir:
        raise ConfigError(f"--out-dir is for models that write files per input (segmentation masks); this is a "
                          f"{task.name} model: use --out FILE for its predictions.")
    extra = {"out_dir": out_dir} if task.predict_out_dir else {}
    predicted = task.predict_inputs(model, inputs, thresh=thresh, tta=tta, **extra)
    df = predicted.frame
    if _emit_frame(df, fmt, out_file, console):
        return
    table = Table()
    if predicted.index_label:
        table.add_column(predicted.index_label, justify="right")
    for col in predicted.shown:
        numeric = col in df.columns and df[col].dtype.kind == "f"
        # fold, not ellipsis: a long path must still show its file name
        table.add_column(str(col), justify="right" if numeric else "left", overflow="fold")
    for i, row in df[predicted.shown].iterrows():
        cells = ["" if v is None or (isinstance(v, float) and v != v) else f"{v:.3f}" if isinstance(v, float) else str(v)
                 for v in row]
        table.add_row(*([str(i)] if predicted.index_label else []), *cells)
    console.print(table)


def _emit_frame(df: Any, fmt: str, out_file: Path | None, console: Console) -> bool:
    """Write predictions to `out_file` (.json, else CSV) or print them as JSON or CSV; False when the caller
    should print its own table instead (`--format table`)."""
    if out_file:
        if out_file.suffix.lower() == ".json":
            out_file.write_text(df.to_json(orient="records", indent=2))
        else:
            df.to_csv(out_file, index=False)
        console.print(f"wrote {len(df)} predictions to {out_file}", highlight=False)
    elif fmt == "json":
        console.print_json(df.to_json(orient="records"))
    elif fmt == "csv":
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        console.print(buf.getvalue(), end="", highlight=False, markup=False, soft_wrap=True)
    else:
        return False
    return True


def evaluate(model_dir: Path, data: str, target: str | None, fmt: str, console: Console, *, tta: bool = False) -> None:
    import quicklearn as ql
    from quicklearn.analysis.evaluate import evaluate_model

    if fmt not in ("table", "json"):
        raise ConfigError(f"--format {fmt!r}: use table or json.")
    result = evaluate_model(ql.load(model_dir), data, y=target, tta=tta)
    if fmt == "json":
        console.print_json(json.dumps(result))
        return
    console.print(f"{model_dir} evaluated on {data}{' with TTA' if tta else ''} ({result['n']} items)",
                  highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result["metrics"].items():
        table.add_row(k, f"{v:.4f}")
    console.print(table)


def interpret(model_dir: Path, data: str, target: str | None, out_dir: Path | None, top_losses: int,
              console: Console) -> None:
    import quicklearn as ql

    if top_losses < 1:
        raise ConfigError(f"--top-losses {top_losses}: list at least 1 item.")
    interp = ql.interpret(ql.load(model_dir), data, y=target)
    console.print(f"{model_dir} interpreted on {data} ({len(interp)} items)", highlight=False, soft_wrap=True)
    kind = interp.target_kind
    if kind.classifier:
        console.print(_frame_table(interp.per_class(), "per label" if kind.thresholded else "per class", index="class"))
    if kind.classifier and not kind.thresholded:
        pairs = interp.most_confused()
        if pairs:
            shown = pairs[:15]
            table = Table(title=f"most confused{'' if len(pairs) <= 15 else f' (15 of {len(pairs)} pairs)'}")
            for col in ("actual", "predicted as", "count"):
                table.add_column(col, justify="right" if col == "count" else "left")
            for a, p, n in shown:
                table.add_row(a, p, str(n))
            console.print(table)
        else:
            console.print("no confused pairs: every item is classified right", highlight=False)
    if not kind.classifier:
        table = Table(title="regression")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in interp.regression_metrics().items():
            table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
        console.print(table)
    if interp.importance is not None:
        fi = interp.feature_importance().rename(columns={"importance": interp.importance_label})
        console.print(_frame_table(fi, "permutation feature importance (3 shuffles per column)"))
    for name, extra in interp.tables.items():  # the task's own tables
        console.print(_frame_table(extra, name.replace("_", " ")))
    worst = interp.top_losses(top_losses)
    worst["item"] = [s if len(s) <= 80 else s[:79] + "…" for s in worst["item"]]
    console.print(_frame_table(worst if kind.classifier and not kind.thresholded else worst.drop(columns="probability"),
                               f"top {len(worst)} losses"))
    paths = interp.save(out_dir or model_dir / "interpretation", k=top_losses)
    console.print("wrote:", highlight=False)
    for p in paths:
        console.print(f"  {p}", highlight=False, soft_wrap=True)


def _frame_table(df: Any, title: str, index: str | None = None) -> Table:
    """A DataFrame as a rich table: numbers right-aligned (4 significant digits), text folded rather than cut."""
    import pandas as pd

    table = Table(title=title)
    if index:
        table.add_column(index)
    for col in df.columns:
        numeric = pd.api.types.is_numeric_dtype(df[col])
        table.add_column(str(col), justify="right" if numeric else "left", overflow="fold")
    for name, row in df.iterrows():
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
        table.add_row(*([str(name)] if index else []), *cells)
    return table


def lr_find(data: str, task: str | None, given: dict[str, Any], plot: Path, console: Console) -> None:
    """The learning-rate finder on the model `quicklearn train` would build from these options, frozen."""
    from quicklearn.tasks.registry import get_task

    base = _resolve_recipe(None, task, data, console)
    the_task = get_task(base.task)
    resolved = _resolve_options(base, the_task, {"--data": data, **given}, _all_options())
    learn = the_task.build(resolved, path=None, progress=None, cbs=())
    learn.freeze()
    result = learn.lr_find(plot=plot)
    console.print(f"suggested learning rate: [bold]{result.suggestion:.2e}[/] (plot: {result.plot})", highlight=False)


def show_batch(data: str | None, task: str | None, given: dict[str, Any], out_file: Path, n: int, console: Console) -> None:
    """A look at training examples as the model sees them, for the data's task."""
    from quicklearn.tasks.registry import get_task

    base = _resolve_recipe(None, task, data, console)
    the_task = get_task(base.task)
    if data is None:
        data = the_task.default_data()
        if data is None:
            raise ConfigError(f"show-batch needs --data for a {the_task.name} task.")
        console.print(f"no --data given: using the bundled sample ({data})", highlight=False)
    resolved = _resolve_options(base, the_task, {"--data": data, **given}, _all_options())
    console.print(the_task.show_batch(resolved, out_file, n), highlight=False, markup=False)


def check(data: str, task: str | None, target: str | None, out_dir: Path | None, strict: bool, console: Console) -> int:
    """`quicklearn check`: the task's data checks, the summary table, --out's files; the exit code (2: --strict failed)."""
    import quicklearn as ql
    from quicklearn.analysis.check.summary import summary_table

    report = ql.check(data, task=task, target=target, out=out_dir)
    console.print(summary_table(report))
    for fact in report.facts:
        console.print(f"  {fact}", highlight=False, soft_wrap=True)
    if report.files:
        console.print(f"wrote {', '.join(str(f) for f in report.files[:2])} and {len(report.files) - 2} contact sheet(s)"
                      if len(report.files) > 2 else f"wrote {', '.join(str(f) for f in report.files)}", highlight=False)
    code = report.exit_code(strict)
    if code:
        failing = report.failing()
        kinds = sorted({f.kind for f in failing})
        console.print(f"[bold red]--strict: {len(failing)} finding(s) of {', '.join(kinds)}[/]", highlight=False)
    return code


def info(console: Console) -> None:
    import timm
    import torch
    import torchvision

    import quicklearn as ql
    from quicklearn.core.cachedir import cache_dir
    from quicklearn.tasks.registry import all_tasks
    from quicklearn.train.learner import resolve_device

    table = Table(title="quicklearn", show_header=False)
    table.add_column("")
    table.add_column("")
    table.add_row("quicklearn", ql.__version__)
    table.add_row("python", platform.python_version())
    table.add_row("torch / torchvision / timm", f"{torch.__version__} / {torchvision.__version__} / {timm.__version__}")
    dev = resolve_device("auto")
    gpu = f" ({torch.cuda.get_device_name(0)})" if dev.type == "cuda" else ""
    table.add_row("device", f"{dev}{gpu}; {torch.get_num_threads()} CPU threads")
    table.add_row("cache folder", str(cache_dir()))
    table.add_row("tasks", ", ".join(t.name for t in all_tasks()))
    for task in all_tasks():
        for key, value in task.info():
            table.add_row(key, value)
    console.print(table)


def recipes_list(console: Console) -> None:
    from quicklearn.config.files import shipped_recipes
    from quicklearn.tasks.registry import DEFAULT_TASK

    table = Table(title="shipped recipes (quicklearn train --recipe NAME)")
    table.add_column("name")
    table.add_column("task")
    table.add_column("description")
    for name, path in shipped_recipes().items():
        text = path.read_text(encoding="utf-8")
        first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
        task = (yaml.safe_load(text) or {}).get("task", DEFAULT_TASK)
        table.add_row(name, task, first)
    console.print(table)


def recipes_show(name: str, console: Console) -> None:
    from quicklearn.config.files import find_recipe

    console.print(find_recipe(name).read_text(encoding="utf-8"), end="", highlight=False, markup=False, soft_wrap=True)


def schema() -> dict:
    from quicklearn.config.schema import recipe_schema

    return recipe_schema()


def export(model_dir: Path, onnx: bool, out_file: Path | None, opset: int | None, console: Console) -> None:
    import quicklearn as ql
    from quicklearn.serving.onnx import describe_onnx

    if not onnx:
        raise ConfigError("quicklearn export needs a format; the one available is --onnx (one .onnx file for onnxruntime "
                          "and other ONNX servers). The model folder itself is already what quicklearn.load reads.")
    console.print(f"exporting {model_dir} to ONNX (tracing the model takes a few seconds)", highlight=False)
    path = ql.export_onnx(model_dir, out_file, opset=opset)
    info = describe_onnx(path)
    console.print(f"wrote {path} ({info['bytes'] / 1e6:.1f} MB, opset {info['opset']})", highlight=False, soft_wrap=True)
    table = Table()
    for col in ("", "name", "dtype", "shape"):
        table.add_column(col)
    for role in ("inputs", "outputs"):
        for v in info[role]:
            table.add_row(role[:-1], v["name"], v["dtype"], "(" + ", ".join(str(d) for d in v["shape"]) + ")")
    console.print(table)
    check = (info["metadata"] or {}).get("check")
    if check:
        console.print(f"parity: max |ONNX - PyTorch| = {check['max_abs_diff']:.2e} on a random batch of {check['batch']}",
                      highlight=False)
    else:
        console.print('parity: not checked (onnxruntime is not installed: pip install "quicklearn[onnx]")', highlight=False)


def serve(model_dir: Path, console: Console, **options: Any) -> None:
    """`quicklearn serve`: the settings from the options, the start-up checks, then the server until SIGTERM."""
    from quicklearn.serving.http.server import serve as run_server
    from quicklearn.serving.http.settings import ServeSettings

    settings = ServeSettings(model_dir, **options)
    run_server(settings, announce=lambda line: console.print(line, highlight=False, soft_wrap=True))
