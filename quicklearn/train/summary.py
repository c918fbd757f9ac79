"""learn.summary(): layers, output shapes, parameter counts and what trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from quicklearn.train.learner import Learner

__all__ = ["model_summary"]


def model_summary(learn: "Learner", depth: int = 2) -> str:
    """A text table of the model's modules down to `depth`, from one forward pass of a validation batch."""
    model = learn.model
    rows: list[tuple[str, str, str, int, int]] = []
    hooks = []
    modules = [(n, m) for n, m in model.named_modules() if n and n.count(".") < depth]

    def hook(name, mod):
        def f(_m, _inp, out):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else "-"
            params = sum(p.numel() for p in mod.parameters())
            trainable = sum(p.numel() for p in mod.parameters() if p.requires_grad)
            rows.append((name, type(mod).__name__, str(shape), params, trainable))
        return f

    for name, mod in modules:
        hooks.append(mod.register_forward_hook(hook(name, mod)))
    try:
        x, _ = next(iter(learn.dls.valid))
        model.eval()
        with torch.no_grad():
            model(x[:2])
    finally:
        for h in hooks:
            h.remove()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    w = max([len(r[0]) for r in rows] + [6])
    lines = [f"{'layer':<{w}}  {'type':<22} {'output shape':<20} {'params':>10} {'trainable':>10}", "-" * (w + 68)]
    lines += [f"{n:<{w}}  {t:<22} {s:<20} {p:>10,} {tr:>10,}" for n, t, s, p, tr in rows]
    lines += ["-" * (w + 68), f"total params {total:,}; trainable {trainable:,} ({100 * trainable / max(total, 1):.1f}%); "
              f"frozen groups {learn.frozen_to} of {learn.n_groups}"]
    return "\n".join(lines)
