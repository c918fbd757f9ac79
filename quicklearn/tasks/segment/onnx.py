"""ONNX export of segmentation models: uint8 photos at the model's frame in; /255, the encoder's mean/std, the
network and each pixel's class inside the graph; "logits" (B, C, h, w) and "classes" (B, h, w, int64) out. The
parity check compares the logits, and accepts a different class only where PyTorch's two logits nearly tie."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from quicklearn.serving.graph import base_meta, export_copy, output_names, outputs, predictor_outputs
from quicklearn.tasks.base import OnnxSpec

if TYPE_CHECKING:
    from quicklearn.tasks.segment.predictor import SegmentPredictor

__all__ = ["SegmentServing", "onnx_spec", "compare_outputs", "TIE"]

TIE = 1e-3  # PyTorch's logits of two classes closer than this: either class is a right answer


class SegmentServing(nn.Module):
    """uint8 (B, 3, h, w) -> /255 -> (x - mean) / std -> network -> logits and class maps."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], kind: str):
        super().__init__()
        self.model, self.kind = model, kind
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = (image.float() / 255 - self.mean) / self.std
        return outputs(self.model(x), self.kind, None)


def compare_outputs(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    """The largest |logit difference|; a pixel whose class differs counts as infinitely different unless PyTorch's
    logits of the two classes are within TIE of each other (then ONNX's rounding may pick either)."""
    (g_logits, g_classes), (w_logits, w_classes) = got, want
    diff = float((g_logits - w_logits).abs().max())
    differ = g_classes != w_classes
    if bool(differ.any()):
        a = w_logits.gather(1, w_classes[:, None].long())[:, 0][differ]
        b = w_logits.gather(1, g_classes[:, None].long())[:, 0][differ]
        if float((a - b).abs().max()) > TIE:
            return float("inf")
    return diff


def onnx_spec(predictor: "SegmentPredictor") -> OnnxSpec:
    """The serving module, its uint8 example input and metadata (frame, classes, mask values, colours, void)."""
    p = predictor.pipeline
    h, w = p.frame
    shape = (3, h, w)
    module = SegmentServing(export_copy(predictor.model), p.normalize.mean, p.normalize.std, predictor.kind).eval()
    t = predictor.table
    meta = base_meta(predictor) | dict(
        input={"name": "image", "dtype": "uint8", "shape": ["batch", *shape],
               "how": f"decode (RGB), resize the whole photo to {h}x{w} (height x width), channels first, values 0-255; "
                      "resize the outputs back to the photo's size"},
        frame=[h, w], mean=list(p.normalize.mean), std=list(p.normalize.std),
        mask_values=list(t.values), void=t.void, colors=[list(c) for c in t.colors])

    def random_input(n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen)

    def reference(x: torch.Tensor) -> list[torch.Tensor]:
        """SegmentPredictor's own batch step: the pipeline's normalization, not the wrapper's."""
        return predictor_outputs(predictor, p.valid_batch(x.to(predictor.device)))

    return OnnxSpec(module, random_input(2, torch.Generator().manual_seed(0)), "image", output_names(predictor.kind), meta,
                    random_input, reference, compare_outputs)
