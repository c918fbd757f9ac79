"""What every task's ONNX serving graph shares: the outputs by target kind (logits + probs, or the value in the
target's units) and the metadata every exported file carries."""

from __future__ import annotations

import copy
from typing import Any

import torch

from quicklearn._version import __version__
from quicklearn.data.kinds import get_kind

__all__ = ["outputs", "output_names", "target_stats", "base_meta", "export_copy", "predictor_outputs"]


def outputs(out: torch.Tensor, kind: str, stats: tuple[float, float] | None) -> tuple[torch.Tensor, ...]:
    """The graph's outputs: (logits, softmax or sigmoid probs), or (value,) de-standardized for regression."""
    return get_kind(kind).graph_outputs(out, stats)


def output_names(kind: str) -> list[str]:
    return list(get_kind(kind).output_names)


def target_stats(config: dict) -> tuple[float, float] | None:
    """A regression target's (mean, std) from config.json, or None."""
    stats = config.get("target_stats")
    return (float(stats[0]), float(stats[1])) if stats else None


def base_meta(predictor: Any) -> dict[str, Any]:
    """The metadata keys of every exported file: version, task, kind, classes, thresholds, target statistics."""
    config = predictor.config
    return {"quicklearn_version": __version__, "task": predictor.task, "kind": predictor.kind,
            "classes": predictor.classes, "thresh": config.get("thresh", 0.5), "target_stats": config.get("target_stats")}


def export_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float32 CPU copy of the network in eval mode, so exporting never moves or changes the predictor's."""
    return copy.deepcopy(model).float().cpu().eval()


def predictor_outputs(predictor: Any, model_input: torch.Tensor) -> list[torch.Tensor]:
    """What the predictor's own network gives for a model input, as the graph's outputs: the parity check's
    reference (it runs the predictor's code path, not the serving wrapper's, so a wrong wrapper shows up)."""
    with torch.no_grad():
        out = predictor.model(model_input.to(predictor.device)).float().cpu()
    flat = predictor.target_kind.standardized  # a value per item: one column, flattened like raw()'s
    return [o.flatten() if flat else o for o in outputs(out, predictor.kind, target_stats(predictor.config))]
