"""The collab task's own commands: `quicklearn recommend MODEL --user ID` and `quicklearn similar MODEL --item ID`.

The typer app has no name, so its commands join `quicklearn` itself (not a `quicklearn collab ...` group).
(No `from __future__ import annotations` here: typer reads the commands' annotations, which name `typer`, a name
imported inside commands_app so that the module stays cheap to import.)"""


from pathlib import Path
from typing import Annotated, Any, Optional

__all__ = ["commands_app", "emit_items", "load_collab"]


def load_collab(model_dir: Path) -> Any:
    """The collab model folder's predictor (config.json, checksums and weights checked as `quicklearn.load` does;
    this task's own loader, since a task folder sits below the registry that `quicklearn.load` asks)."""
    from quicklearn.core.errors import ConfigError, QuicklearnError
    from quicklearn.core.safe_load import read_safetensors
    from quicklearn.serving.format import WEIGHTS, read_config, verify_checksums
    from quicklearn.tasks.collab.predictor import CollabPredictor

    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise QuicklearnError(f"{path}: no such model folder. Give the folder `quicklearn train` wrote.")
    config = read_config(path)
    if config["task"] != "collab":
        raise ConfigError(f"{path} is a {config['task']} model; recommend and similar need a collab model (trained on "
                          "user, item, rating rows).")
    verify_checksums(path, config)
    state = read_safetensors(path / WEIGHTS, "Export the model again, or copy the model folder again.", QuicklearnError)
    return CollabPredictor.from_files(path, config, state, "cpu")


def emit_items(frame: Any, fmt: str, out_file: Optional[Path], title: str, console: Any) -> None:
    """A recommendation or similarity table: printed (table, csv, json) or written to `out_file` (.json, else CSV)."""
    import io

    from rich.table import Table

    from quicklearn.core.errors import ConfigError

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"--format {fmt!r}: use table, csv or json.")
    if out_file is not None:
        if out_file.suffix.lower() == ".json":
            out_file.write_text(frame.to_json(orient="records", indent=2))
        else:
            frame.to_csv(out_file, index=False)
        console.print(f"wrote {len(frame)} items to {out_file}", highlight=False)
        return
    if fmt == "json":
        console.print_json(frame.to_json(orient="records"))
        return
    if fmt == "csv":
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        console.print(buf.getvalue(), end="", highlight=False, markup=False, soft_wrap=True)
        return
    table = Table(title=title)
    table.add_column("#", justify="right")
    for col in frame.columns:
        table.add_column(str(col), justify="right" if frame[col].dtype.kind in "fiu" else "left", overflow="fold")
    for k, row in enumerate(frame.itertuples(index=False), 1):
        table.add_row(str(k), *[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


def commands_app() -> Any:
    """`quicklearn recommend` and `quicklearn similar` (top-level commands: the app has no name)."""
    import typer
    from rich.console import Console

    app = typer.Typer(no_args_is_help=True)
    out = Console()  # an unknown user's fallback is announced by recommend's warning (stderr)
    Model = Annotated[Path, typer.Argument(help="A collab model folder written by `quicklearn train`.")]
    N = Annotated[int, typer.Option("-n", "--n", help="How many items.")]
    Format = Annotated[str, typer.Option("--format", "-f", help="table | csv | json.")]
    OutFile = Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the list to a file (.json, else CSV).")]
    MinRatings = Annotated[int, typer.Option("--min-ratings", help="Leave out items with fewer training ratings.")]
    Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")]

    @app.command("recommend")
    def recommend(
        model_dir: Model,
        user: Annotated[str, typer.Option("--user", "-u", help="The user's ID, as in the ratings.")],
        n: N = 10,
        exclude_seen: Annotated[bool, typer.Option("--exclude-seen", help="Leave out items the user rated.")] = False,
        min_ratings: MinRatings = 0,
        format: Format = "table",
        out_file: OutFile = None,
        debug: Debug = False,
    ) -> None:
        """A user's top items by predicted rating: item, title (when known), predicted rating."""
        model = load_collab(model_dir)
        frame = model.recommend(user, n, exclude_seen=exclude_seen, min_ratings=min_ratings)
        seen = ", seen items left out" if exclude_seen else ""
        emit_items(frame, format, out_file, f"top {len(frame)} for user {user}{seen}", out)

    @app.command("similar")
    def similar(
        model_dir: Model,
        item: Annotated[str, typer.Option("--item", "-i", help="The item's ID or title.")],
        n: N = 10,
        min_ratings: MinRatings = 10,
        format: Format = "table",
        out_file: OutFile = None,
        debug: Debug = False,
    ) -> None:
        """The items nearest to an item by the cosine of their embeddings (items with 10+ training ratings)."""
        model = load_collab(model_dir)
        code = model.find_item(item)
        name = model.index.title(code) or model.index.ids("item", [code])[0]
        frame = model.similar(item, n, min_ratings=min_ratings)
        emit_items(frame, format, out_file, f"{len(frame)} items nearest to {name}", out)

    return app
