"""What runs a batch: the task's predictor in PyTorch, or its exported ONNX graph in onnxruntime.

Both take the items `ServeSpec.prepare` made and give outputs with one row per item, as `predictor.raw` gives
them (logits; regression values in the target's units), so the task's `answer` reads either the same way."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from quicklearn.core.errors import ConfigError, QuicklearnError
from quicklearn.tasks.base import ServeSpec

__all__ = ["Backend", "make_backend"]

log = logging.getLogger("quicklearn")


class Backend:
    """A batch runner: `run(items) -> outputs` (a tensor, one row per item) and a name for /info."""

    name = "torch"

    def __init__(self, run: Callable[[list[Any]], Any]):
        self._run = run

    def run(self, items: list[Any]) -> Any:
        with torch.inference_mode():
            return self._run(items)


class OnnxBackend(Backend):
    """The task's ONNX graph (serving/onnx.py's export, checked against PyTorch when written), run by onnxruntime;
    the graph's first output is what the predictor's `raw` gives."""

    name = "onnx"

    def __init__(self, session: Any, input_name: str, to_input: Callable[[list[Any]], Any], path: Path):
        self.session, self.input_name, self.to_input, self.path = session, input_name, to_input, path

    def run(self, items: list[Any]) -> Any:
        out = self.session.run(None, {self.input_name: self.to_input(items)})[0]
        return torch.from_numpy(out)


def make_backend(kind: str, predictor: Any, spec: ServeSpec, threads: int | None = None) -> Backend:
    """The backend `--backend` names: torch (the spec's `run`, else `predictor.raw`), or onnx: the model exported
    now to a temporary file (never a stale model.onnx beside the weights) and loaded in onnxruntime."""
    if kind == "torch":
        return Backend(spec.run or (lambda items: predictor.raw(items, bs=max(1, len(items)))))
    if spec.onnx_input is None:
        raise ConfigError(f"--backend onnx: {predictor.task} models are not served through ONNX (their task has no "
                          "ONNX form); use --backend torch.")
    try:
        import onnxruntime as ort
    except ImportError:
        raise QuicklearnError('--backend onnx needs onnxruntime: pip install "quicklearn[onnx]".') from None
    from quicklearn.serving.onnx import export_onnx

    folder = Path(tempfile.mkdtemp(prefix="quicklearn-serve-"))
    path = export_onnx(predictor, folder / "model.onnx")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    log.info("serving %s through onnxruntime", path)
    return OnnxBackend(session, session.get_inputs()[0].name, spec.onnx_input, path)
