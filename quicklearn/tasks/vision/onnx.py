"""ONNX export of image models: uint8 images in; /255, the backbone's mean/std, the network and softmax/sigmoid
(or the de-standardized value) inside the graph. serving/onnx.py exports and checks what `onnx_spec` gives."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from quicklearn.serving.graph import base_meta, export_copy, output_names, outputs, predictor_outputs, target_stats
from quicklearn.tasks.base import OnnxSpec

if TYPE_CHECKING:
    from quicklearn.tasks.vision.predictor import ImagePredictor

__all__ = ["ImageServing", "onnx_spec"]


class ImageServing(nn.Module):
    """uint8 (B,C,S,S) -> /255 -> (x - mean) / std -> network -> logits + probs (or the de-standardized value)."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], kind: str,
                 stats: tuple[float, float] | None):
        super().__init__()
        self.model, self.kind = model, kind
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.target_stats = stats

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = (image.float() / 255 - self.mean) / self.std
        return outputs(self.model(x), self.kind, self.target_stats)


def onnx_spec(predictor: "ImagePredictor") -> OnnxSpec:
    """The image serving module, its uint8 example input and metadata (size, channels, mean/std, the recipe)."""
    p, kind = predictor.pipeline, predictor.kind
    shape = (p.channels, p.size, p.size)
    module = ImageServing(export_copy(predictor.model), p.normalize.mean, p.normalize.std, kind,
                          target_stats(predictor.config)).eval()
    meta = base_meta(predictor) | dict(
        input={"name": "image", "dtype": "uint8", "shape": ["batch", *shape],
               "how": f"decode ({'RGB' if p.channels == 3 else 'grayscale'}), resize to {p.size}x{p.size} "
                      f"(resize mode {p.resize_mode!r}), channels first, values 0-255"},
        size=p.size, channels=p.channels, resize_mode=p.resize_mode,
        mean=list(p.normalize.mean), std=list(p.normalize.std))

    def random_input(n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen)

    def reference(x: torch.Tensor) -> list[torch.Tensor]:
        """ImagePredictor.raw's own batch step: the pipeline's normalization, not the wrapper's."""
        return predictor_outputs(predictor, p.valid_batch(x.to(predictor.device)))

    return OnnxSpec(module, random_input(2, torch.Generator().manual_seed(0)), "image", output_names(kind), meta,
                    random_input, reference)
