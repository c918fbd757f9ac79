"""The model quicklearn trains and exports: a timm body plus our head, with its parameter groups."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from quicklearn.tasks.vision.backbones import DEFAULT_ARCH, body_param_groups, create_body
from quicklearn.tasks.vision.heads import Head, HeadConfig

__all__ = ["TransferModel", "build_model"]


class TransferModel(nn.Module):
    """body (pretrained features) -> head (pool + classify). `groups()` orders parameters early layers -> head."""

    def __init__(self, body: nn.Module, head: nn.Module, n_body_groups: int = 2):
        super().__init__()
        self.body = body
        self.head = head
        self.n_body_groups = n_body_groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def groups(self) -> list[list[nn.Parameter]]:
        return body_param_groups(self.body, self.n_body_groups) + [list(self.head.parameters())]


def build_model(
    arch: str = DEFAULT_ARCH,
    n_out: int = 2,
    *,
    weights: str | Path | None = "imagenet",
    in_chans: int = 3,
    head: HeadConfig = HeadConfig(),
    n_body_groups: int = 2,
) -> tuple[TransferModel, str]:
    """Build body + head for `n_out` outputs; returns the model and where its body's weights came from."""
    body, description = create_body(arch, weights=weights, in_chans=in_chans)
    return TransferModel(body, Head(body.num_features, n_out, head), n_body_groups), description
