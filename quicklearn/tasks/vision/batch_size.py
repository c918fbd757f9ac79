"""bs='auto': the largest power-of-two batch that fits the device's memory for this model and image size.

The probe runs in the precision training will use (fp32 needs about twice bf16's activation memory), on this
process's own GPU. Data-parallel, every rank probes its own GPU, they agree on the smallest (`min_over_ranks`),
and the global batch is that per-GPU batch times the number of processes (`global_batch_size`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

__all__ = ["find_batch_size", "global_batch_size"]

log = logging.getLogger("quicklearn")


def global_batch_size(model: nn.Module, dls: Any, device: torch.device, dtype: torch.dtype | None,
                      world: int = 1, default: int = 32) -> int:
    """bs='auto' for `world` processes: each probes its own device (`find_batch_size`), all take the smallest
    per-device batch, and the global batch is that times `world`, at most the training set. On CPU/MPS `default`
    is the global batch (memory is not the limit there)."""
    from quicklearn.core.distributed import min_over_ranks

    if device.type != "cuda":
        return min(default, dls.train.n)
    per_device = min_over_ranks(find_batch_size(model, dls, device, dtype, default=default))  # every rank calls it
    return max(1, min(per_device * max(1, world), dls.train.n))


def find_batch_size(model: nn.Module, dls: Any, device: torch.device, dtype: torch.dtype | None = torch.bfloat16,
                    default: int = 32, largest: int = 512) -> int:
    """Try forward+backward at decreasing powers of two on CUDA under autocast to `dtype` (None: fp32), the
    precision training will use; on CPU/MPS keep `default` (memory is not the limit there)."""
    if device.type != "cuda":
        return default
    n = dls.train.n
    size, ch = dls.pipeline.size, dls.pipeline.channels
    model = model.to(device).train()
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}  # probing updates BatchNorm statistics
    try:
        return _probe(model, device, n, size, ch, largest, dtype)
    finally:
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)


def _probe(model: nn.Module, device: torch.device, n: int, size: int, ch: int, largest: int,
           dtype: torch.dtype | None) -> int:
    bs = largest
    while bs >= 2:
        try:
            x = torch.randn(bs, ch, size, size, device=device)
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
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
