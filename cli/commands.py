"""What each CLI command does, in terms of the library's public API (app.py only declares the options)."""

from __future__ import annotations

import io
import json
import platform
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from quicklearn.errors import ConfigError, DataError


def _bundled_sample() -> Path:
    from importlib.resources import files

    return Path(str(files("quicklearn_examples") / "hymenoptera"))


def _resolve_recipe(recipe: str | None, task: str | None, data: str | None, console: Console):
    from quicklearn.config import load_recipe, parse_recipe
    from quicklearn.run import infer_task

    if recipe:
        base = load_recipe(recipe)
        if task and task != base.task:
            raise ConfigError(f"--task {task} contradicts the recipe's task {base.task!r}.")
        return base
    if task is None:
        data_for_task = data
        if data_for_task is None:
            return parse_recipe({"task": "vision"})
        task, why = infer_task(data_for_task)
        console.print(f"task: [bold]{task}[/] ({why}; pass --task to choose)", highlight=False)
    if task not in ("vision", "tabular", "text"):
        raise ConfigError(f"--task {task!r}: use vision, tabular or text.")
    return parse_recipe({"task": task})


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def train(*, data, recipe, task, target, arch, weights, epochs, freeze_epochs, lr, size, bs, seed, device, valid_pct,
          out, overwrite, resume, print_config, console: Console, split=None, text_col=None, max_len=None, cat=None, cont=None, drop=None,
          date_parts=None, tensorboard=False, kind=None, mixup=None, cutmix=None, ema=None, progressive=None,
          gpus: str | None = None, argv: list[str] | None = None) -> int:
    """Train as the options say; with `--gpus N` (N > 1) check them here, then start N processes: their exit code."""
    from quicklearn import distributed as ddp
    from quicklearn import launch
    from quicklearn.config import merge_overrides
    from quicklearn.run import check_out_dir, default_out_dir, run_recipe

    procs = 1
    if ddp.launched_by_torchrun():
        ddp.init_from_env()  # now, so that only rank 0 announces
        if gpus is not None and ddp.is_main():
            console.print(f"--gpus {gpus} ignored: this is one of {ddp.world_size()} processes torchrun started", highlight=False)
    elif gpus is not None and not print_config:
        procs, why = launch.processes_for(gpus, device)
        console.print(why, highlight=False)
    launcher = console
    if procs > 1 or not ddp.is_main():  # the started rank 0 announces; the launcher and other ranks stay quiet
        console = Console(quiet=True)
    notes = Console(stderr=True) if print_config else console  # --print-config: stdout is the YAML alone
    base = _resolve_recipe(recipe, task, data, notes)
    if data is None and base.data.path is None and base.task == "vision":
        data = str(_bundled_sample())
        notes.print(f"no --data given: using the bundled sample ({data})", highlight=False)
    bs_value: Any = None if bs is None else (bs if bs == "auto" else _int(bs, "--bs"))
    overrides = {
        "data.path": data, "data.y": target, "data.valid_pct": valid_pct, "model.arch": arch, "model.weights": weights,
        "fit.epochs": epochs, "fit.freeze_epochs": freeze_epochs, "fit.base_lr": lr, "transforms.size": size,
        "training.bs": bs_value, "training.seed": seed, "training.device": device,
        "output.out": str(out) if out else None, "data.splitter": split, "data.kind": kind, "output.tensorboard": tensorboard or None,
    }
    table_only = {"data.cat_names": _names(cat), "data.cont_names": _names(cont), "data.drop": _names(drop),
                  "data.date_parts": date_parts}
    given = [k for k, v in table_only.items() if v is not None]
    if given and base.task != "tabular":
        raise ConfigError(f"--{given[0].split('.')[1].replace('_names', '').replace('_', '-')} is for tables (--task tabular).")
    overrides.update(table_only)
    image_only = {"training.mixup": mixup, "training.cutmix": cutmix, "training.ema": ema, "training.progressive": progressive}
    given = [k for k, v in image_only.items() if v is not None]
    if given and base.task != "vision":
        raise ConfigError(f"--{given[0].split('.')[1]} is for images (--task vision).")
    overrides.update(image_only)
    if (text_col is not None or max_len is not None) and base.task != "text":
        raise ConfigError(f"{'--text-col' if text_col is not None else '--max-len'} is for texts (--task text).")
    if text_col is not None:
        cols = _names(text_col) or []
        overrides["data.text_col"] = cols[0] if len(cols) == 1 else cols
    if base.task == "text":
        overrides["model.max_len"] = max_len
    if base.task == "text":
        overrides = {k: v for k, v in overrides.items() if not k.startswith("transforms.") and k != "model.weights"}
        if weights:
            raise ConfigError("--weights is for images; a text encoder comes with its weights (--arch minilm, a folder or a hub name).")
    elif base.task != "vision":
        overrides = {k: v for k, v in overrides.items() if not k.startswith(("transforms.", "model."))}
        if bs_value == "auto" and base.task == "text":
            raise ConfigError("--bs auto is for images and tables; give a number for texts.")
    resolved = merge_overrides(base, overrides)
    if print_config:
        console.print(yaml.safe_dump(resolved.model_dump(mode="json"), sort_keys=False), end="", highlight=False, markup=False,
                      soft_wrap=True)
        return 0
    # under torchrun every rank takes rank 0's default folder name (it holds a timestamp)
    out_dir = Path(resolved.output.out or str(ddp.broadcast_object(str(default_out_dir(resolved.data.path)))))
    if resolved.task == "vision":
        from quicklearn.models.backbones import check_arch

        t, m, f = resolved.transforms, resolved.model, resolved.fit
        check_arch(m.arch)  # a typo fails before anything is announced
    if procs > 1:  # refuse a bad --out once, here; every process must write to the same folder: name it here
        check_out_dir(out_dir, overwrite, resume)
        given_out = resolved.output.out is not None
        return launch.launch(procs, (argv or []) + ([] if given_out else ["--out", str(out_dir)]),
                             say=lambda line: launcher.print(line, highlight=False, markup=False, soft_wrap=True))
    if ddp.is_distributed():
        console.print(f"data-parallel: {ddp.world_size()} processes under torchrun; the batch size is the global one, "
                      "split across them", highlight=False)
    if resolved.task == "vision":
        console.print(
            f"training [bold]{m.arch}[/] (weights: {m.weights or 'none'}) on {resolved.data.path} at {t.size}px, "
            f"batch size {resolved.training.bs}, {f.freeze_epochs} frozen + {f.epochs} unfrozen epochs, device {resolved.training.device}"
            f" -> {out_dir}", highlight=False)
    elif resolved.task == "text":
        f, m = resolved.fit, resolved.model
        console.print(f"fine-tuning text encoder [bold]{m.arch}[/] on {resolved.data.path}, target {resolved.data.y!r}, "
                      f"{f.freeze_epochs} frozen + {f.epochs} unfrozen epochs, max {m.max_len} tokens -> {out_dir}", highlight=False)
    elif resolved.task == "tabular":
        f = resolved.fit
        console.print(f"training a tabular model on {resolved.data.path}, target {resolved.data.y!r}, "
                      f"{f.epochs} epochs, batch size {resolved.training.bs} -> {out_dir}", highlight=False)
    result = run_recipe(resolved, out=out_dir, overwrite=overwrite, resume=resume)
    if not ddp.is_main():
        return 0
    learn = result.learner
    dls = learn.dls
    table = Table(title=f"done in {result.wall_s:.0f} s", show_header=False)
    table.add_column("")
    table.add_column("")
    items = {"tabular": "rows", "text": "texts"}.get(resolved.task, "images")
    table.add_row(f"train / valid {items}", f"{dls.train.n} / {dls.valid.n}")
    if dls.vocab:
        classes = ", ".join(dls.vocab.classes[:8]) + (" ..." if len(dls.vocab) > 8 else "")
        table.add_row("classes", classes)
    if "weights" in learn.config["model"]:
        table.add_row("weights", learn.config["model"]["weights"])
    for k, v in result.metrics.items():
        table.add_row(f"valid {k}", f"{v:.4f}")
    table.add_row("model folder", str(result.out))
    if (result.out / "training_curves.png").exists():
        table.add_row("training curves", str(result.out / "training_curves.png"))
    if (result.out / "tensorboard").is_dir():
        table.add_row("tensorboard", f"tensorboard --logdir {result.out / 'tensorboard'}")
    console.print(table)


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} {value!r}: expected a whole number (or 'auto').") from None


def _collect_inputs(inputs: list[str]) -> tuple[list[Path], Any]:
    from quicklearn.data.sources import csv_source, folder_source

    paths: list[Path] = []
    frame = None
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            paths += folder_source(p).paths
        elif p.suffix.lower() == ".csv":
            src = csv_source(p)
            paths += src.paths
            frame = src.frame
        elif p.exists():
            paths.append(p)
        else:
            raise DataError(f"{p}: no such file or folder.")
    return paths, frame


def predict(model_dir: Path, inputs: list[str], fmt: str, out_file: Path | None, console: Console, *,
            thresh: str | None = None, tta: bool = False) -> None:
    import quicklearn as ql
    from quicklearn.thresholds import check_thresh, parse_thresh

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"--format {fmt!r}: use table, csv or json.")
    model = ql.load(model_dir)
    task = model.config.get("task", "vision")
    if task in ("tabular", "text"):
        if thresh is not None or tta:
            raise ConfigError(f"{'--thresh' if thresh is not None else '--tta'} is for image models; this is a {task} model.")
        _predict_rows(model, task, inputs, fmt, out_file, console)
        return
    thresholds = None
    if thresh is not None:
        if model.kind != "multi":
            raise ConfigError(f"--thresh is for multi-label models; this model's target is {model.kind}.")
        thresholds = check_thresh(parse_thresh(thresh), model.classes or [], "--thresh")
    paths, frame = _collect_inputs(inputs)
    preds = model.predict(paths, thresh=thresholds, tta=tta)
    rows = [{"path": str(p), "prediction": pr.label if not isinstance(pr.label, list) else " ".join(pr.label),
             "probability": pr.probability} for p, pr in zip(paths, preds)]
    if frame is not None and len(frame) == len(rows):  # a CSV input: its rows with the predictions appended
        df = frame.copy()
        df["prediction"] = [r["prediction"] for r in rows]
        df["probability"] = [r["probability"] for r in rows]
    else:
        import pandas as pd

        df = pd.DataFrame(rows)
    if not _emit_frame(df, fmt, out_file, console):
        table = Table()
        for col in ("path", "prediction", "probability"):
            # fold, not ellipsis: a long path must still show its file name
            table.add_column(col, justify="right" if col == "probability" else "left", overflow="fold")
        for r in rows:
            prob = "" if r["probability"] is None else f"{r['probability']:.3f}"
            table.add_row(r["path"], str(r["prediction"]), prob)
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


def _predict_rows(model: Any, task: str, inputs: list[str], fmt: str, out_file: Path | None, console: Console) -> None:
    """A tabular or text model: each CSV's rows with the prediction columns appended (one CSV, or several in turn)."""
    import pandas as pd

    if not inputs or not all(Path(i).suffix.lower() in (".csv", ".tsv", ".txt") for i in inputs):
        raise DataError(f"a {task} model predicts on CSV files; got {inputs[0] if inputs else 'nothing'}.")
    df = pd.concat([model.predict(Path(i).expanduser()) for i in inputs], ignore_index=True)
    if not _emit_frame(df, fmt, out_file, console):
        shown = df[[c for c in df.columns if c.endswith(("_pred", "_prob"))]]
        table = Table()
        table.add_column("row", justify="right")
        for col in shown.columns:
            table.add_column(col, justify="right")
        for i, row in shown.iterrows():
            table.add_row(str(i), *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
        console.print(table)


def evaluate(model_dir: Path, data: str, target: str | None, fmt: str, console: Console, *, tta: bool = False) -> None:
    from quicklearn.evaluate import evaluate_model
    import quicklearn as ql

    metrics = evaluate_model(ql.load(model_dir), data, y=target, tta=tta)
    if fmt == "json":
        console.print_json(json.dumps(metrics))
        return
    console.print(f"{model_dir} evaluated on {data}{' with TTA' if tta else ''}", highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)


def interpret(model_dir: Path, data: str, target: str | None, out_dir: Path | None, top_losses: int,
              console: Console) -> None:
    import quicklearn as ql
    from quicklearn.importance import importance_label

    if top_losses < 1:
        raise ConfigError(f"--top-losses {top_losses}: list at least 1 item.")
    interp = ql.interpret(ql.load(model_dir), data, y=target)
    console.print(f"{model_dir} interpreted on {data} ({len(interp)} items)", highlight=False, soft_wrap=True)
    if interp.kind in ("single", "multi"):
        console.print(_frame_table(interp.per_class(), "per class" if interp.kind == "single" else "per label", index="class"))
    if interp.kind == "single":
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
    if interp.kind == "regression":
        table = Table(title="regression")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in interp.regression_metrics().items():
            table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
        console.print(table)
    if interp.importance is not None:
        fi = interp.feature_importance().rename(columns={"importance": importance_label(interp.kind)})
        console.print(_frame_table(fi, "permutation feature importance (3 shuffles per column)"))
    worst = interp.top_losses(top_losses)
    worst["item"] = [s if len(s) <= 80 else s[:79] + "…" for s in worst["item"]]
    console.print(_frame_table(worst.drop(columns="probability") if interp.kind != "single" else worst,
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


def lr_find(data: str, arch: str, weights: str, size: int, bs: int, plot: Path, console: Console) -> None:
    import quicklearn as ql

    learn = ql.vision_learner(data, arch=arch, weights=weights, size=size, bs=bs)
    learn.freeze()
    result = learn.lr_find(plot=plot)
    console.print(f"suggested learning rate: [bold]{result.suggestion:.2e}[/] (plot: {result.plot})", highlight=False)


def show_batch(data: str | None, out_file: Path, size: int, n: int, console: Console) -> None:
    import quicklearn as ql

    if data is None:
        data = str(_bundled_sample())
        console.print(f"no --data given: using the bundled sample ({data})", highlight=False)
    dls = ql.image_dataloaders(data, size=size)
    path = dls.show_batch(out_file, n=n)
    classes = ", ".join(dls.vocab.classes) if dls.vocab else dls.kind
    console.print(f"{dls.train.n} train / {dls.valid.n} valid images; classes: {classes}", highlight=False)
    console.print(f"saved {path}", highlight=False)


def info(console: Console) -> None:
    import timm
    import torch
    import torchvision

    import quicklearn as ql
    from quicklearn.models.weights import bundled_status, cache_dir, list_cached
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
    for arch, installed in bundled_status().items():
        table.add_row(f"offline weights {arch}", "installed" if installed else "not installed")
    table.add_row("cached weights", ", ".join(str(c.get("arch")) for c in list_cached()) or "none")
    console.print(table)


def recipes_list(console: Console) -> None:
    from quicklearn.config import shipped_recipes

    table = Table(title="shipped recipes (quicklearn train --recipe NAME)")
    table.add_column("name")
    table.add_column("task")
    table.add_column("description")
    for name, path in shipped_recipes().items():
        text = path.read_text(encoding="utf-8")
        first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
        task = (yaml.safe_load(text) or {}).get("task", "vision")
        table.add_row(name, task, first)
    console.print(table)


def recipes_show(name: str, console: Console) -> None:
    from quicklearn.config import find_recipe

    console.print(find_recipe(name).read_text(encoding="utf-8"), end="", highlight=False, markup=False, soft_wrap=True)


def schema() -> dict:
    from quicklearn.config import recipe_schema

    return recipe_schema()


def weights_import(file: Path, arch: str, console: Console) -> None:
    from quicklearn.models.backbones import check_arch
    from quicklearn.models.weights import import_weights

    check_arch(arch)
    path = import_weights(file, arch)
    console.print(f"imported {file} as {arch} -> {path}", highlight=False)


def weights_list(console: Console) -> None:
    from quicklearn.models.weights import list_cached, weights_dir

    entries = list_cached()
    if not entries:
        console.print(f"no weights cached in {weights_dir()}", highlight=False)
        return
    table = Table(title=str(weights_dir()))
    for col in ("arch", "source", "mapped"):
        table.add_column(col)
    for e in entries:
        table.add_row(str(e.get("arch")), str(e.get("source", e.get("note", ""))), str(e.get("mapping", "")))
    console.print(table)


def export(model_dir: Path, onnx: bool, out_file: Path | None, opset: int | None, console: Console) -> None:
    import quicklearn as ql
    from quicklearn.onnx_export import describe_onnx

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
