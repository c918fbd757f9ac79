"""The vision task's part of the command line: predicting on image files, folders and CSVs of paths, and the
`quicklearn weights` commands (offline pretrained weights for any timm architecture).

(No `from __future__ import annotations` here: typer reads the commands' annotations, which name `typer`, a
name imported inside weights_app so that the module stays cheap to import.)"""


from pathlib import Path
from typing import Annotated, Any

from quicklearn.core.errors import DataError
from quicklearn.tasks.base import Predicted

__all__ = ["predict_images", "weights_app"]


def predict_images(predictor: Any, inputs: list[str], *, thresh: str | None = None, tta: bool = False) -> Predicted:
    """`quicklearn predict` on images: image files and folders give one row each (`path`, then the prediction
    columns); a CSV of image paths gives its own rows with the prediction columns appended. thresh: the --thresh
    text (multi-label)."""
    import pandas as pd

    from quicklearn.serving.predictor import cli_thresh, shown_columns
    from quicklearn.tasks.vision.sources import folder_source

    thresholds = cli_thresh(predictor, thresh)
    frames: list[Any] = []
    paths: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_file() and p.suffix.lower() == ".csv":
            frames.append(predictor.predict(p, thresh=thresholds, tta=tta))
        elif p.is_dir():
            paths += folder_source(p).paths
        elif p.exists():
            paths.append(p)
        else:
            raise DataError(f"{p}: no such file or folder.")
    if paths:
        files = pd.DataFrame({"path": [str(q) for q in paths]})
        frames.insert(0, predictor.append_predictions(files, predictor.raw(paths, tta=tta), "the images", thresholds))
    df = pd.concat(frames, ignore_index=True)
    return Predicted(df, (["path"] if "path" in df.columns else []) + shown_columns(predictor))


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
