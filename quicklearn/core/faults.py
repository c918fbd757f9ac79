"""Test hooks: simulate a crash or a GPU out-of-memory at named points of a run, so tests can prove that work survives.

    QUICKLEARN_TEST_KILL_AT=<point>[:<n>]   SIGKILL this process the n-th time <point> is reached (no n: the first)
    QUICKLEARN_TEST_OOM_AT=<point>[:<n>]    raise torch.cuda.OutOfMemoryError there (no n: every time; CPU torch too)

Points: `batch` (each training batch, before its step), `validate` (each validation batch, after its forward),
`rename:<file name>` (an atomic write, between the temporary file and its rename; fileio.atomic_path), `export`
(between a model folder's weights and its config.json). The counts are per process. Unset (always, outside tests):
a `kill_point` call is one environment lookup and does nothing.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["kill_point", "KILL_VAR", "OOM_VAR"]

KILL_VAR = "QUICKLEARN_TEST_KILL_AT"
OOM_VAR = "QUICKLEARN_TEST_OOM_AT"
_reached: Counter[tuple[str, str]] = Counter()  # (variable, point) -> times reached in this process; test hook only


def _due(var: str, name: str) -> bool:
    """True when `var` names the point `name` and, with ":n", this is the n-th time it is reached."""
    spec = os.environ.get(var)
    if not spec:
        return False
    point, _, count = spec.rpartition(":")
    if not count.isdigit():  # no ":n": the whole value is the point, due every time it is reached
        return spec == name
    if point != name:
        return False
    _reached[(var, name)] += 1
    return _reached[(var, name)] == int(count)


def kill_point(name: str) -> None:
    """A named point where a test may kill this process (SIGKILL: no cleanup runs) or raise a GPU out-of-memory."""
    if _due(KILL_VAR, name):
        os.kill(os.getpid(), signal.SIGKILL)
    if _due(OOM_VAR, name):
        import torch

        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated by {OOM_VAR}={os.environ[OOM_VAR]})")
