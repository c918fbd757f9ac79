"""Heads: pool the body's features, then classify/regress; sized from the data.

Defaults follow fastai's proven head for small data: concat of average and max pooling, BatchNorm, dropout,
a hidden layer, then the output layer. `hidden=None` gives the lean timm-style head (pool, dropout, linear).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

__all__ = ["HeadConfig", "Head", "Pool"]


@dataclass(frozen=True)
class HeadConfig:
    pool: Literal["avg", "avgmax"] = "avgmax"
    hidden: int | None = 512
    batchnorm: bool = True
    dropout: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)


class Pool(nn.Module):
    """Global pooling of a feature map (B,C,H,W) or token sequence (B,N,C) to (B,C) or (B,2C) for avgmax
    ([average, max], fastai's concat pooling). Feature maps go through timm's SelectAdaptivePool2d; token
    sequences (a ViT body with global_pool="") pool over the tokens here, which timm's 2-D pooling cannot."""

    def __init__(self, kind: str):
        super().__init__()
        from timm.layers import SelectAdaptivePool2d

        self.kind = kind
        self.pool2d = SelectAdaptivePool2d(pool_type="catavgmax" if kind == "avgmax" else "avg", flatten=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return self.pool2d(x)
        avg = x.mean(dim=1)
        if self.kind == "avg":
            return avg
        return torch.cat([avg, x.amax(dim=1)], dim=1)


class Head(nn.Module):
    def __init__(self, in_features: int, n_out: int, cfg: HeadConfig = HeadConfig()):
        super().__init__()
        feats = in_features * (2 if cfg.pool == "avgmax" else 1)
        layers: list[nn.Module] = [Pool(cfg.pool)]
        if cfg.hidden:
            if cfg.batchnorm:
                layers.append(nn.BatchNorm1d(feats))
            layers += [nn.Dropout(cfg.dropout / 2), nn.Linear(feats, cfg.hidden, bias=not cfg.batchnorm), nn.ReLU(inplace=True)]
            feats = cfg.hidden
        if cfg.batchnorm:
            layers.append(nn.BatchNorm1d(feats))
        layers += [nn.Dropout(cfg.dropout), nn.Linear(feats, n_out)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
