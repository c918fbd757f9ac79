"""The tabular model: one embedding per categorical column, concatenated with the continuous columns, then an MLP.

    model = TabularModel([5, 4, 12], n_cont=3, n_out=2, layers=(200, 100))
    logits = model(x)        # x: float (B, 3 + 3): categorical codes first, then normalized continuous values

Embedding width per column: `emb_size(levels) = min(600, round(1.6 * levels ** 0.56))` (fastai's rule of thumb,
which grows slowly with the number of levels and is capped so rare huge vocabularies do not dominate).
Blocks: Linear -> BatchNorm -> ReLU -> Dropout. Regression can squash the output into `y_range` with a sigmoid.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["TabularModel", "emb_size"]


def emb_size(levels: int) -> int:
    """Embedding width for a categorical column with `levels` codes (unknown and missing included)."""
    return int(min(600, round(1.6 * levels**0.56)))


class TabularModel(nn.Module):
    def __init__(
        self,
        cardinalities: Sequence[int],
        n_cont: int,
        n_out: int,
        layers: Sequence[int] = (200, 100),
        dropout: float = 0.1,
        embed_dropout: float = 0.0,
        y_range: tuple[float, float] | None = None,
    ):
        super().__init__()
        self.n_cat, self.n_cont = len(cardinalities), int(n_cont)
        self.embeds = nn.ModuleList(nn.Embedding(int(c), emb_size(int(c))) for c in cardinalities)
        self.embed_drop = nn.Dropout(embed_dropout)
        self.bn_cont = nn.BatchNorm1d(self.n_cont) if self.n_cont else None
        width = sum(e.embedding_dim for e in self.embeds) + self.n_cont
        blocks: list[nn.Module] = []
        for size in layers:
            blocks += [nn.Linear(width, int(size)), nn.BatchNorm1d(int(size)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = int(size)
        self.mlp = nn.Sequential(*blocks)
        self.out = nn.Linear(width, int(n_out))
        self.y_range = tuple(float(v) for v in y_range) if y_range is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.n_cat:
            codes = x[:, : self.n_cat].long()
            parts.append(self.embed_drop(torch.cat([e(codes[:, i]) for i, e in enumerate(self.embeds)], 1)))
        if self.n_cont:
            parts.append(self.bn_cont(x[:, self.n_cat :]))
        out = self.out(self.mlp(torch.cat(parts, 1)))
        if self.y_range is not None:
            lo, hi = self.y_range
            out = torch.sigmoid(out) * (hi - lo) + lo
        return out

    def groups(self) -> list[list[nn.Parameter]]:
        """One layer group: a table model trains from scratch, nothing to freeze."""
        return [list(self.parameters())]
