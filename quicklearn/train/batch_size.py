"""bs='auto': the largest power-of-two batch that fits the device's memory for this model and image size."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

__all__ = ["find_batch_size"]

log = logging.getLogger("quicklearn")


def find_batch_size(model: nn.Module, dls: Any, device: torch.device, default: int = 32, largest: int = 512) -> int:
    """Try forward+backward at decreasing powers of two on CUDA; on CPU/MPS keep `default` (memory is not the limit there)."""
    if device.type != "cuda":
        return default
    n = dls.train.n
    size, ch = dls.pipeline.size, dls.pipeline.channels
    model = model.to(device).train()
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}  # probing updates BatchNorm statistics
    try:
        return _probe(model, device, n, size, ch, largest)
    finally:
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)


def _probe(model: nn.Module, device: torch.device, n: int, size: int, ch: int, largest: int) -> int:
    bs = largest
    while bs >= 2:
        try:
            x = torch.randn(bs, ch, size, size, device=device)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                model(x).float().sum().backward()
            model.zero_grad(set_to_none=True)
            del x
            torch.cuda.empty_cache()
            chosen = min(bs // 2, max(2, n // 4))  # half the largest that fits: headroom for optimizer state and fragmentation
            log.info("bs=auto: %d fits; using %d", bs, chosen)
            return chosen
        except torch.cuda.OutOfMemoryError:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            bs //= 2
    return 2
