"""The model folder format: its file names, its version, the checksums config.json records of its files, and
reading config.json back (checked, one-line errors); below the task registry, so a task folder may use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from quicklearn.core.errors import QuicklearnError
from quicklearn.core.fileio import sha256_file

__all__ = ["FORMAT_VERSION", "WEIGHTS", "CONFIG", "file_checksums", "verify_checksums", "read_config"]


FORMAT_VERSION = 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def file_checksums(folder: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{name: {"sha256", "bytes"}} of files in `folder`: recorded in config.json so `load` can tell a corrupted or
    truncated copy from a good one (hashing costs ~0.2 s per 100 MB)."""
    return {n: {"sha256": sha256_file(folder / n), "bytes": (folder / n).stat().st_size} for n in names}


def verify_checksums(folder: Path, config: Mapping[str, Any]) -> None:
    """Check the files config.json's "checksums" lists (folders exported before it have none: nothing to check);
    a missing, truncated or corrupted file raises a QuicklearnError naming it, the expected and the found value."""
    sums = config.get("checksums") or {}
    redo = "Export the model again, or copy the whole model folder again from where it was written."
    if not isinstance(sums, Mapping) or not all(isinstance(v, Mapping) and isinstance(v.get("sha256"), str)
                                                for v in sums.values()):
        raise QuicklearnError(f"{folder / CONFIG}: 'checksums' must map file names to {{sha256, bytes}}. {redo}")
    for name, want in sums.items():
        f = folder / name
        if not f.is_file():
            raise QuicklearnError(f"{f}: missing; {CONFIG} lists it as part of the model. {redo}")
        size = f.stat().st_size
        if "bytes" in want and size != want["bytes"]:
            from quicklearn.core.safe_load import pickle_kind

            if f.suffix == ".safetensors" and (kind := pickle_kind(f)):  # say what it is, not just "truncated"
                raise QuicklearnError(f"{f}: is a {kind} file, not safetensors; quicklearn never unpickles it "
                                      f"(loading it could run code), nothing was loaded. {redo}")
            how = "truncated" if size < want["bytes"] else "corrupted"
            raise QuicklearnError(f"{f}: {how}: expected {want['bytes']} bytes, found {size}. {redo}")
        if (found := sha256_file(f)) != want["sha256"]:
            raise QuicklearnError(f"{f}: corrupted: sha256 expected {want['sha256'][:16]}..., found {found[:16]}... "
                                  f"(same size, different content). {redo}")


def read_config(path: Path) -> dict[str, Any]:
    """config.json of the model folder `path`, checked to be one quicklearn can read; one-line errors otherwise."""
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        pickles = sorted(p.name for p in path.glob("*") if p.suffix.lower() in {".pt", ".pth", ".bin", ".pkl", ".ckpt"})
        if pickles and not (path / WEIGHTS).exists():  # say why that file is not loaded
            raise QuicklearnError(f"{path}: not a quicklearn model directory: it holds {pickles[0]} but no {WEIGHTS}, and "
                                  f"quicklearn never unpickles a model file (it could run code). An unfinished run: "
                                  f"`quicklearn train --resume --out {path}`; foreign weights: `quicklearn weights import FILE --arch ARCH`.")
        raise QuicklearnError(f"{path}: not a quicklearn model directory (needs {CONFIG} and {WEIGHTS}). Train one with `quicklearn train`.")
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QuicklearnError(f"{path / CONFIG}: not valid JSON ({e}). Export the model again.") from None
    if not isinstance(config, dict) or not isinstance(config.get("model", {}), dict):
        raise QuicklearnError(f"{path / CONFIG}: not a quicklearn model config (a JSON object with a 'model' object). Export the model again.")
    made_by = config.get("quicklearn_version", "unknown")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise QuicklearnError(f"{path} was written by quicklearn {made_by} in a newer format; upgrade quicklearn to load it.")
    if not isinstance(config.get("task"), str):
        raise QuicklearnError(f"{path / CONFIG}: no 'task' says which kind of model this is. Export the model again.")
    return config
