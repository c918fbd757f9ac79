"""ONNX export for serving: one self-describing `.onnx` file that runs without quicklearn or torch.

    quicklearn.export_onnx("model_dir")          # -> model_dir/model.onnx, checked against PyTorch

The model's task says what the graph is (`Task.onnx` -> an OnnxSpec: tasks/vision/onnx.py, tasks/tabular/onnx.py);
this module exports it with a dynamic batch axis, checks it with onnxruntime and writes it.

Image models take input "image": uint8 (batch, C, size, size), i.e. decoded and resized to `size`; the graph does
/255, the backbone's mean/std normalization and the network, and outputs "logits" and "probs" (softmax for one
label per image, sigmoid for multi-label) or, for regression, "value" in the target's units. Table models take
"features": float32 (batch, n_categorical + n_continuous), the output of the model folder's pre-processing
(codes, then normalized numbers; its recipe is in the metadata). Everything a client needs (classes, kind, size,
mean/std, the parity measured at export) is JSON under the metadata key "quicklearn".

Exporter: torch's dynamo-based `torch.onnx.export(..., dynamo=True)` (needs onnxscript, the `[onnx]` extra),
chosen over the TorchScript-based one after trying both with torch 2.14 on tf_efficientnet_lite0 and resnet18
at 224 px (CPU, one thread):
  - the TorchScript exporter is deprecated in torch 2.14 (a DeprecationWarning: "will be removed"); dynamo warns nothing;
  - on tf_efficientnet_lite0 TorchScript keeps timm's run-time "same" padding arithmetic (636 nodes), dynamo
    specializes the fixed image size and leaves 99 nodes (ONNX Runtime, batch 8, one noisy run: 75 vs 96 ms);
  - both keep the batch axis dynamic (checked with batches of 1, 3 and 5) and match PyTorch equally
    (max |logit diff| ~3e-5 for a random-init lite0, ~3e-8 for resnet18);
  - dynamo is slower to export (lite0: ~8 s vs ~1 s; resnet18: ~4 s vs ~0.4 s), which a one-off export can afford.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quicklearn.core.errors import ConfigError, QuicklearnError
from quicklearn.core.fileio import atomic_path
from quicklearn.core.progress import progress
from quicklearn.serving.load import load
from quicklearn.serving.predictor import Predictor
from quicklearn.tasks.base import OnnxSpec
from quicklearn.tasks.registry import get_task

__all__ = ["export_onnx", "describe_onnx", "onnx_spec_of", "check_parity", "ONNX_FILE", "METADATA_KEY", "PARITY_LIMIT"]

log = logging.getLogger("quicklearn")

ONNX_FILE = "model.onnx"
METADATA_KEY = "quicklearn"
PARITY_LIMIT = 1e-3  # max |ONNX - PyTorch| over every output; above it the file is not written
CHECK_BATCH = 3
INSTALL_HINT = 'pip install "quicklearn[onnx]"'


def _require_onnx() -> None:
    """The dynamo exporter needs onnx and onnxscript; say how to get them instead of an ImportError deep in torch."""
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise QuicklearnError(f"ONNX export needs {' and '.join(missing)}, which are not installed. "
                              f'Install the extra: {INSTALL_HINT}')


def _onnxruntime() -> Any | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _load_model(model: "str | Path | Predictor") -> tuple[Predictor, Path | None]:
    if isinstance(model, (str, Path)):
        folder = Path(model).expanduser()
        if not folder.exists():
            raise QuicklearnError(f"{folder}: no such model folder. Give the folder written by `quicklearn train` "
                                  "or `learn.export(...)`.")
        return load(folder), folder
    if not isinstance(model, Predictor):
        raise ConfigError(f"export_onnx takes a model folder or a loaded model (quicklearn.load), not a "
                          f"{type(model).__name__}; for a Learner, call learn.export(folder) first.")
    return model, None


def onnx_spec_of(predictor: Predictor) -> OnnxSpec:
    """What the predictor's task exports: the module, an example input and its metadata."""
    return get_task(predictor.task).onnx(predictor)


def check_parity(spec: OnnxSpec, model_bytes: bytes, ort: Any) -> float:
    """Run the exported graph once with onnxruntime on a small random batch; max |ONNX - PyTorch| over all outputs,
    PyTorch's being what the task's own predictor gives (so a wrong serving wrapper shows up)."""
    x = spec.random_input(CHECK_BATCH, torch.Generator().manual_seed(1))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    got = [torch.from_numpy(g) for g in session.run(None, {spec.input_name: x.numpy()})]
    want = spec.reference(x)
    if spec.compare is not None:
        return spec.compare(got, want)
    return max(float((g - w).abs().max()) for g, w in zip(got, want))


def export_onnx(model: "str | Path | Predictor", path: str | Path | None = None, *, opset: int | None = None,
                check: bool = True) -> Path:
    """Write a model as one ONNX file with a dynamic batch axis: pre-processing inside, classes and input recipe in
    its metadata (for the tasks that have an ONNX form: images, tables). `model`: a model folder (default `path`:
    MODEL_DIR/model.onnx) or a loaded predictor. `check`: run it once with onnxruntime and refuse a file whose
    outputs differ from PyTorch's by more than 1e-3."""
    predictor, folder = _load_model(model)
    if path is None:
        if folder is None:
            raise ConfigError("export_onnx(predictor) needs path=...: a loaded model does not know its folder.")
        path = folder / ONNX_FILE
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name such as {path / ONNX_FILE}.")
    spec = onnx_spec_of(predictor)
    _require_onnx()
    meta = dict(spec.meta)
    ort = _onnxruntime() if check else None
    with progress() as bar:
        task = bar.add_task("ONNX export", total=3 if ort else 2, info="tracing") if bar else None
        proto = _export_proto(spec.module, spec.example, spec.input_name, spec.output_names, opset)
        if bar:
            bar.advance(task, 1)
        if ort is not None:
            if bar:
                bar.update(task, info="checking with onnxruntime")
            diff = check_parity(spec, proto.SerializeToString(), ort)
            if not diff <= PARITY_LIMIT:
                raise QuicklearnError(
                    f"{path}: not written: the ONNX graph's outputs differ from PyTorch's by up to {diff:.3g} "
                    f"(limit {PARITY_LIMIT:g}). Try another --opset, or report it with the model's arch.")
            meta["check"] = {"max_abs_diff": diff, "batch": CHECK_BATCH, "reference": "PyTorch (quicklearn Predictor)"}
            if bar:
                bar.advance(task, 1)
        else:
            meta["check"] = None
            if check:
                log.warning("onnxruntime is not installed: the ONNX file is not checked against PyTorch (%s).", INSTALL_HINT)
        meta["outputs"] = _describe_graph(proto)["outputs"]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        with atomic_path(path) as tmp:
            tmp.write_bytes(proto.SerializeToString())
        if bar:
            bar.update(task, advance=1, info=f"wrote {path.name}")
    return path


def _export_proto(wrapper: nn.Module, example: torch.Tensor, input_name: str, output_names: list[str],
                  opset: int | None) -> Any:
    """torch.onnx dynamo export with a dynamic batch axis -> onnx.ModelProto (weights inside, not external)."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    with warnings.catch_warnings():
        # the exporter's own FutureWarnings about its internals say nothing a user can act on
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.onnx")
        try:
            program = torch.onnx.export(
                wrapper, (example,), dynamo=True, verbose=False, opset_version=opset, input_names=[input_name],
                output_names=output_names, dynamic_shapes={input_name: {0: batch}}, optimize=True)
        except (ImportError, ModuleNotFoundError) as e:
            raise QuicklearnError(f"ONNX export needs a package that is missing ({e}). Install the extra: {INSTALL_HINT}") from e
    return program.model_proto


def _describe_graph(proto: Any) -> dict:
    def shape(v: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    from onnx import helper

    def dtype(v: Any) -> str:
        return str(helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type))

    return {
        "inputs": [{"name": v.name, "dtype": dtype(v), "shape": shape(v)} for v in proto.graph.input],
        "outputs": [{"name": v.name, "dtype": dtype(v), "shape": shape(v)} for v in proto.graph.output],
        "opset": max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None),
    }


def describe_onnx(path: str | Path) -> dict:
    """An exported file's inputs and outputs (name, dtype, shape), opset, size in bytes and quicklearn metadata."""
    _require_onnx()
    import onnx

    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, OSError, ... for a file that is not ONNX
        raise QuicklearnError(f"{path}: not a readable ONNX file ({e}).") from None
    meta = next((p.value for p in proto.metadata_props if p.key == METADATA_KEY), None)
    return {**_describe_graph(proto), "bytes": path.stat().st_size, "metadata": json.loads(meta) if meta else None}
