"""`quicklearn train --gpus N`: start N training processes on this machine with torchrun, so users need not learn it.

The launcher only builds and runs torch's own launcher (`python -m torch.distributed.run`, what the `torchrun`
script runs); the processes it starts set up DistributedDataParallel themselves from the environment
torchrun gives them (quicklearn/core/distributed.py).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from quicklearn.core.errors import ConfigError

__all__ = ["without_gpus", "torchrun_command", "equivalent_command", "processes_for", "launch"]

_CLI_MODULE = "quicklearn_cli.app"


def without_gpus(argv: Sequence[str]) -> list[str]:
    """`argv` minus `--gpus N` / `--gpus=N`: the started processes must train, not launch again."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--gpus":
            skip = True
        elif not arg.startswith("--gpus="):
            out.append(arg)
    return out


def _program() -> list[str]:
    """How torchrun starts `quicklearn`: the console script beside this Python, on PATH, or the CLI module."""
    beside = Path(sys.executable).parent / "quicklearn"
    exe = str(beside) if beside.is_file() else shutil.which("quicklearn")
    return ["--no-python", exe] if exe else ["--module", _CLI_MODULE]


def torchrun_command(n: int, argv: Sequence[str], *, program: Sequence[str] | None = None) -> list[str]:
    """The command that starts `n` processes of `quicklearn train ARGV` (minus --gpus) on this machine.

    `program` is torchrun's program part (default: `--no-python <the quicklearn script>`).
    """
    prog = list(program) if program is not None else _program()
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), *prog,
            "train", *without_gpus(argv)]


def equivalent_command(n: int, argv: Sequence[str]) -> str:
    """The same launch as a shell line a user can type (and then extend to several machines)."""
    return shlex.join(["torchrun", "--standalone", "--nproc_per_node", str(n), "--no-python", "quicklearn", "train",
                       *without_gpus(argv)])


def processes_for(gpus: str, device: str | None, *, cuda_count: int | None = None) -> tuple[int, str]:
    """How many processes `--gpus` asks for here, and a line saying so; a ConfigError when it cannot be done.

    `cuda_count` defaults to torch.cuda.device_count(). N > 1 needs N CUDA GPUs, or `--device cpu` (N gloo
    processes on the CPU, for testing); N = 1 or no GPU behind `all` trains in this process.
    """
    if cuda_count is None:
        import torch

        cuda_count = torch.cuda.device_count()
    dev = (device or "auto").strip().lower()
    if gpus.strip().lower() == "all":
        if dev == "cpu":
            raise ConfigError("--gpus all --device cpu: say how many CPU processes to start, e.g. --gpus 2.")
        if cuda_count <= 1:
            seen = "1 CUDA GPU visible" if cuda_count == 1 else "no CUDA GPU visible"
            return 1, f"--gpus all: {seen}; training in this one process"
        n = cuda_count
    else:
        try:
            n = int(gpus)
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"--gpus {gpus!r}: expected a number of processes (1 or more) or 'all'.")
    if n == 1:
        return 1, "--gpus 1: training in this one process"
    if dev == "cpu":
        return n, f"--gpus {n} --device cpu: {n} CPU processes (gloo backend)"
    if dev not in ("auto", "cuda"):
        raise ConfigError(f"--device {device} with --gpus {n}: each process takes its own GPU (cuda:LOCAL_RANK); "
                          "leave --device out, or use --device cpu for CPU processes.")
    if cuda_count == 0:
        raise ConfigError(f"--gpus {n}: no CUDA GPU is visible here; add --device cpu to run {n} CPU processes with "
                          f"gloo (for testing), or start them yourself: torchrun --nproc_per_node {n} --no-python "
                          "quicklearn train ...")
    if cuda_count < n:
        raise ConfigError(f"--gpus {n}: only {cuda_count} CUDA GPU(s) visible; use --gpus {cuda_count} or --gpus all.")
    return n, f"--gpus {n}: {n} processes, one per GPU (NCCL backend)"


def launch(n: int, argv: Sequence[str], *, say: Callable[[str], object] = print) -> int:
    """Run `quicklearn train ARGV` in `n` processes under torchrun with this environment; its exit code.

    Prints the equivalent torchrun command first, so the user learns the command that also spans machines.
    """
    say(f"starting {n} processes; the same as:\n  {equivalent_command(n, argv)}")
    sys.stdout.flush()
    proc = subprocess.Popen(torchrun_command(n, argv), env=dict(os.environ))
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached torchrun too: let it stop its workers before we go
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
            raise
