"""Reading tensors from files without running code: torch.load(weights_only=True) and safetensors, with
one-line errors that name the file and the fix."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch
from torch import Tensor

from quicklearn.core.errors import QuicklearnError, WeightsError

__all__ = ["torch_load", "pickle_kind", "read_safetensors"]


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else 'no detail'}"


def torch_load(path: Path, *, map_location: str | torch.device = "cpu", fix: str,
               error: type[QuicklearnError] = WeightsError) -> object:
    """`torch.load(weights_only=True)`: tensors and plain containers only, so a file can never run code.
    A refused or unreadable file becomes one line (`error`) that names it and ends with `fix`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on foreign pickle protocols: the error below says enough
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused a global: the pickle would build (or run) objects
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise error(f"{path}: holds Python objects besides tensors{what}, which quicklearn never unpickles (loading "
                    f"them could run code); nothing was loaded. {fix}") from None
    except Exception as exc:  # zip or pickle stream cut short, not a torch file at all
        raise error(f"{path}: cannot be read as a torch file, corrupted or truncated? ({_first_line(exc)}). {fix}") from None


def pickle_kind(path: Path) -> str | None:
    """'torch zip' or 'Python pickle' when the file starts like one, else None. Only meaningful once a file failed
    to read as safetensors: a valid safetensors header may begin with any bytes."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"PK":
        return "torch zip"
    if head[:1] == b"\x80" and head[1:] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "Python pickle"
    return None


def read_safetensors(path: Path, fix: str, error: type[QuicklearnError] = WeightsError) -> dict[str, Tensor]:
    """The tensors of a .safetensors file (never unpickled); a pickle in its place, or a corrupted or truncated
    file, becomes one line (`error`) that names it and ends with `fix`."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors' own errors: header too large, incomplete metadata, ...
        failure = exc
    kind = pickle_kind(path)  # only now guess what it is: a valid header may begin with any bytes
    if kind:
        raise error(f"{path}: is a {kind} file, not safetensors; "
                    f"quicklearn never unpickles it (loading it could run code), nothing was loaded. {fix}")
    raise error(f"{path}: not a readable safetensors file, corrupted or truncated ({path.stat().st_size} bytes; "
                f"{_first_line(failure)}). {fix}")
