"""ONNX export for serving: one self-describing `.onnx` file that runs without quicklearn or torch.

    quicklearn.export_onnx("model_dir")          # -> model_dir/model.onnx, checked against PyTorch

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

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._version import __version__
from .errors import ConfigError, QuicklearnError
from .fileio import atomic_path
from .progress import progress

if TYPE_CHECKING:
    from .export import Predictor
    from .tabular_predictor import TabularPredictor

__all__ = ["export_onnx", "describe_onnx", "ONNX_FILE", "METADATA_KEY", "PARITY_LIMIT"]

log = logging.getLogger("quicklearn")

ONNX_FILE = "model.onnx"
METADATA_KEY = "quicklearn"
PARITY_LIMIT = 1e-3  # max |ONNX - PyTorch| over every output; above it the file is not written
CHECK_BATCH = 3
INSTALL_HINT = 'pip install "quicklearn[onnx]"'


class _ImageServing(nn.Module):
    """uint8 (B,C,S,S) -> /255 -> (x - mean) / std -> network -> logits + probs (or the de-standardized value)."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], kind: str,
                 target_stats: tuple[float, float] | None):
        super().__init__()
        self.model, self.kind = model, kind
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.target_stats = target_stats

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = (image.float() / 255 - self.mean) / self.std
        return _outputs(self.model(x), self.kind, self.target_stats)


class _TableServing(nn.Module):
    """float32 (B, n_features) pre-processed rows -> the table model -> logits + probs (or the value)."""

    def __init__(self, model: nn.Module, kind: str, target_stats: tuple[float, float] | None):
        super().__init__()
        self.model, self.kind, self.target_stats = model, kind, target_stats

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _outputs(self.model(features), self.kind, self.target_stats)


def _outputs(out: torch.Tensor, kind: str, target_stats: tuple[float, float] | None) -> tuple[torch.Tensor, ...]:
    if kind == "regression":
        mean, std = target_stats or (0.0, 1.0)
        return (out[:, 0] * std + mean,)
    return out, (out.sigmoid() if kind == "multi" else out.softmax(1))


def _output_names(kind: str) -> list[str]:
    return ["value"] if kind == "regression" else ["logits", "probs"]


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


def _load_model(model: "str | Path | Predictor | TabularPredictor") -> tuple[Any, Path | None]:
    if isinstance(model, (str, Path)):
        from .export import load

        folder = Path(model).expanduser()
        if not folder.exists():
            raise QuicklearnError(f"{folder}: no such model folder. Give the folder written by `quicklearn train` "
                                  "or `learn.export(...)`.")
        return load(folder), folder
    if not all(hasattr(model, a) for a in ("model", "config", "kind")):
        raise ConfigError(f"export_onnx takes a model folder or a loaded model (quicklearn.load), not a "
                          f"{type(model).__name__}; for a Learner, call learn.export(folder) first.")
    return model, None


def _target_stats(config: dict) -> tuple[float, float] | None:
    stats = config.get("target_stats")
    return (float(stats[0]), float(stats[1])) if stats else None


def _serving_module(predictor: Any) -> tuple[nn.Module, torch.Tensor, str, dict]:
    """The module to export, an example input, the input's name and the metadata describing both."""
    config = predictor.config
    task, kind = config.get("task", "vision"), predictor.kind
    if task not in ("vision", "tabular"):
        raise QuicklearnError(f"ONNX export covers image and table models; this is a {task} model (its tokenizer "
                              "runs outside any graph). Serve its model folder (model.safetensors, config.json and "
                              "tokenizer/) with quicklearn.load instead.")
    net = copy.deepcopy(predictor.model).float().cpu().eval()
    gen = torch.Generator().manual_seed(0)
    meta: dict[str, Any] = {"quicklearn_version": __version__, "task": task, "kind": kind,
                            "classes": predictor.classes, "thresh": config.get("thresh", 0.5),
                            "target_stats": config.get("target_stats")}
    if task == "vision":
        p = predictor.pipeline
        shape = (p.channels, p.size, p.size)
        wrapper: nn.Module = _ImageServing(net, p.normalize.mean, p.normalize.std, kind, _target_stats(config))
        example = torch.randint(0, 256, (2, *shape), dtype=torch.uint8, generator=gen)
        meta.update(
            input={"name": "image", "dtype": "uint8", "shape": ["batch", *shape],
                   "how": f"decode ({'RGB' if p.channels == 3 else 'grayscale'}), resize to {p.size}x{p.size} "
                          f"(resize mode {p.resize_mode!r}), channels first, values 0-255"},
            size=p.size, channels=p.channels, resize_mode=p.resize_mode,
            mean=list(p.normalize.mean), std=list(p.normalize.std))
        return wrapper.eval(), example, "image", meta
    proc = predictor.processor  # a table model
    columns = [*proc.cat_names, *proc.cont_names]
    wrapper = _TableServing(net, kind, _target_stats(config))
    example = _random_features(proc.cardinalities, len(proc.cont_names), 2, gen)
    meta.update(
        input={"name": "features", "dtype": "float32", "shape": ["batch", len(columns)],
               "how": "the model folder's pre-processing (TabularProcessor.transform): one code per categorical "
                      "column (0 unknown, 1 missing, 2.. the levels below in order), then (value - mean) / std "
                      "per continuous column, missing values filled with the median"},
        feature_columns=columns, n_categorical=len(proc.cat_names), processor=proc.to_dict())
    return wrapper.eval(), example, "features", meta


def _random_features(cardinalities: list[int], n_cont: int, n: int, gen: torch.Generator) -> torch.Tensor:
    codes = [torch.randint(0, c, (n, 1), generator=gen).float() for c in cardinalities]
    return torch.cat([*codes, torch.randn(n, n_cont, generator=gen)], 1)


def _reference(predictor: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """What PyTorch predicts for `x`, through the Predictor's own code path (the pipeline's normalization, not
    the serving wrapper's), so a wrong wrapper shows up as a parity failure."""
    with torch.no_grad():
        if predictor.config.get("task", "vision") == "vision":
            inp = predictor.pipeline.valid_batch(x.to(predictor.device))  # Predictor.raw's batch step
        else:
            inp = x.to(predictor.device)  # TabularPredictor.raw after its transform
        out = predictor.model(inp).float().cpu()
    if predictor.kind == "regression":
        mean, std = predictor.config["target_stats"]
        return [out.flatten() * std + mean]
    return [out, out.sigmoid() if predictor.kind == "multi" else out.softmax(1)]


def _check(predictor: Any, model_bytes: bytes, input_name: str, example: torch.Tensor, ort: Any) -> float:
    """Run the exported graph once with onnxruntime on a small random batch; max |ONNX - PyTorch| over all outputs."""
    gen = torch.Generator().manual_seed(1)
    if example.dtype == torch.uint8:
        x = torch.randint(0, 256, (CHECK_BATCH, *example.shape[1:]), dtype=torch.uint8, generator=gen)
    else:
        proc = predictor.processor
        x = _random_features(proc.cardinalities, len(proc.cont_names), CHECK_BATCH, gen)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    got = session.run(None, {input_name: x.numpy()})
    want = _reference(predictor, x)
    return max(float((torch.from_numpy(g) - w).abs().max()) for g, w in zip(got, want))


def export_onnx(model: "str | Path | Predictor | TabularPredictor", path: str | Path | None = None, *,
                opset: int | None = None, check: bool = True) -> Path:
    """Write an image (or table) model as one ONNX file with a dynamic batch axis: pre-processing inside, classes
    and input recipe in its metadata. `model`: a model folder (default `path`: MODEL_DIR/model.onnx) or a loaded
    predictor. `check`: run it once with onnxruntime and refuse a file whose outputs differ from PyTorch's by more
    than 1e-3."""
    predictor, folder = _load_model(model)
    if path is None:
        if folder is None:
            raise ConfigError("export_onnx(predictor) needs path=...: a loaded model does not know its folder.")
        path = folder / ONNX_FILE
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name such as {path / ONNX_FILE}.")
    _require_onnx()
    wrapper, example, input_name, meta = _serving_module(predictor)
    ort = _onnxruntime() if check else None
    with progress() as bar:
        task = bar.add_task("ONNX export", total=3 if ort else 2, info="tracing") if bar else None
        proto = _export_proto(wrapper, example, input_name, _output_names(predictor.kind), opset)
        if bar:
            bar.advance(task, 1)
        if ort is not None:
            if bar:
                bar.update(task, info="checking with onnxruntime")
            diff = _check(predictor, proto.SerializeToString(), input_name, example, ort)
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
