"""The vision task's part of the command line: predicting on image files, folders and CSVs of paths, and the
`quicklearn weights` commands (offline pretrained weights for any timm architecture).

(No `from __future__ import annotations` here: typer reads the commands' annotations, which name `typer`, a
name imported inside weights_app so that the module stays cheap to import.)"""


from pathlib import Path
from typing import Annotated, Any

from quicklearn.core.errors import ConfigError, DataError
from quicklearn.tasks.base import Predicted

__all__ = ["collect_inputs", "predict_images", "weights_app"]


def collect_inputs(inputs: list[str]) -> tuple[list[Path], Any]:
    """Image files, the images under folders, and the image paths of a CSV (whose rows come back too)."""
    from quicklearn.tasks.vision.sources import csv_source, folder_source

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


def predict_images(predictor: Any, inputs: list[str], *, thresh: str | None = None, tta: bool = False) -> Predicted:
    """`quicklearn predict` on images: one row per image (path, prediction, probability); a CSV of paths gives
    its own rows with the prediction columns appended. thresh: the --thresh text (multi-label)."""
    import pandas as pd

    from quicklearn.serving.thresholds import check_thresh, parse_thresh

    thresholds = None
    if thresh is not None:
        if predictor.kind != "multi":
            raise ConfigError(f"--thresh is for multi-label models; this model's target is {predictor.kind}.")
        thresholds = check_thresh(parse_thresh(thresh), predictor.classes or [], "--thresh")
    paths, frame = collect_inputs(inputs)
    preds = predictor.predict(paths, thresh=thresholds, tta=tta)
    rows = [{"path": str(p), "prediction": pr.label if not isinstance(pr.label, list) else " ".join(pr.label),
             "probability": pr.probability} for p, pr in zip(paths, preds)]
    if frame is not None and len(frame) == len(rows):  # a CSV input: its rows with the predictions appended
        df = frame.copy()
        df["prediction"] = [r["prediction"] for r in rows]
        df["probability"] = [r["probability"] for r in rows]
        return Predicted(df, [c for c in ("prediction", "probability") if c in df.columns])
    return Predicted(pd.DataFrame(rows, columns=["path", "prediction", "probability"]), ["path", "prediction", "probability"])


def weights_app() -> Any:
    """`quicklearn weights import FILE --arch NAME` and `quicklearn weights list`."""
    import typer
    from rich.console import Console
    from rich.table import Table

    app = typer.Typer(name="weights", help="Offline pretrained weights: import a file into the cache, list the cache.",
                      no_args_is_help=True)
    out = Console()

    @app.command("import")
    def weights_import(
        file: Annotated[Path, typer.Argument(help="A weights file (.pth, .pt, .bin or .safetensors).")],
        arch: Annotated[str, typer.Option(help="The timm architecture the weights belong to.")],
        debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    ) -> None:
        """Map a weights file onto a timm architecture and store it in the offline cache."""
        from quicklearn.tasks.vision.backbones import check_arch
        from quicklearn.tasks.vision.weights import import_weights

        check_arch(arch)
        path = import_weights(file, arch)
        out.print(f"imported {file} as {arch} -> {path}", highlight=False)

    @app.command("list")
    def weights_list(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False) -> None:
        """List the weights in the offline cache."""
        from quicklearn.tasks.vision.weights import list_cached, weights_dir

        entries = list_cached()
        if not entries:
            out.print(f"no weights cached in {weights_dir()}", highlight=False)
            return
        table = Table(title=str(weights_dir()))
        for col in ("arch", "source", "mapped"):
            table.add_column(col)
        for e in entries:
            table.add_row(str(e.get("arch")), str(e.get("source", e.get("note", ""))), str(e.get("mapping", "")))
        out.print(table)

    return app
