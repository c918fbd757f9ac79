"""The collab models: a rating from a user code and an item code.

    model = CollabModel(n_users=611, n_items=9725, n_factors=50, arch="dot", y_range=(0.05, 5.45))
    ratings = model(codes)          # codes: int64 (B, 2) = (user, item); ratings: (B, 1) in the y_range

    raw = mu + b_user + b_item + known * interaction(user, item)
    rating = lo + (hi - lo) * sigmoid(raw)

interaction: the dot product of the user's and the item's factor vectors (arch "dot", fastai's
EmbeddingDotBias), an MLP over their concatenated embeddings (arch "nn", fastai's EmbeddingNN, here with the
same biases), or the sum of both ("both"). Code 0 is "not seen in training": its embedding rows are zeros and
never trained (padding_idx), its bias is masked out, and the interaction is dropped when either side is unknown,
so an unknown user gets the learned global mean plus the item's bias (and the other way round), squashed like
every prediction.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["CollabModel", "emb_size"]


def emb_size(n: int) -> int:
    """The MLP's embedding width for `n` codes: fastai's rule of thumb, min(600, round(1.6 * n ** 0.56))."""
    return int(min(600, round(1.6 * n**0.56)))


def _embedding(n: int, width: int, std: float) -> nn.Embedding:
    e = nn.Embedding(int(n), int(width), padding_idx=0)
    with torch.no_grad():
        nn.init.trunc_normal_(e.weight, std=std, a=-2 * std, b=2 * std)
        e.weight[0].zero_()
    return e


class CollabModel(nn.Module):
    def __init__(self, n_users: int, n_items: int, n_factors: int = 50, arch: str = "dot",
                 layers: Sequence[int] = (100,), dropout: float = 0.1,
                 y_range: tuple[float, float] | None = (0.0, 5.5), mean: float | None = None):
        super().__init__()
        if arch not in ("dot", "nn", "both"):
            raise ValueError(f"arch={arch!r}: use dot, nn or both")
        self.arch = arch
        self.y_range = tuple(float(v) for v in y_range) if y_range is not None else None
        # biases are 1-D parameters, so the optimizer's rule (no weight decay on biases) keeps them free: measured on
        # movielens-small (benchmarks/collab.py), decaying them like the factors cost 1.5% RMSE (0.848 vs 0.836)
        self.user_bias, self.item_bias = nn.Parameter(torch.zeros(n_users)), nn.Parameter(torch.zeros(n_items))
        self.global_bias = nn.Parameter(torch.tensor(self._raw_of(mean) if mean is not None else 0.0))
        if arch in ("dot", "both"):
            self.user_factors = _embedding(n_users, n_factors, 0.01)
            self.item_factors = _embedding(n_items, n_factors, 0.01)
        if arch in ("nn", "both"):
            self.user_emb = _embedding(n_users, emb_size(n_users), 0.01)
            self.item_emb = _embedding(n_items, emb_size(n_items), 0.01)
            width = self.user_emb.embedding_dim + self.item_emb.embedding_dim
            blocks: list[nn.Module] = []
            for size in layers:
                blocks += [nn.Linear(width, int(size)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
                width = int(size)
            self.mlp = nn.Sequential(*blocks, nn.Linear(width, 1))

    def _raw_of(self, rating: float) -> float:
        """The pre-squash value whose prediction is `rating` (the global bias starts at the training mean)."""
        if self.y_range is None:
            return float(rating)
        lo, hi = self.y_range
        p = min(max((float(rating) - lo) / (hi - lo), 1e-4), 1 - 1e-4)
        return math.log(p / (1 - p))

    def interaction(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """The (B,) term that needs both sides: dot product, MLP output, or their sum."""
        out = torch.zeros(user.shape, dtype=self.user_bias.dtype, device=user.device)
        if self.arch in ("dot", "both"):
            out = out + (self.user_factors(user) * self.item_factors(item)).sum(1)
        if self.arch in ("nn", "both"):
            out = out + self.mlp(torch.cat([self.user_emb(user), self.item_emb(item)], 1))[:, 0]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        user, item = x[:, 0].long(), x[:, 1].long()
        dtype = self.user_bias.dtype
        u_known, i_known = (user > 0).to(dtype), (item > 0).to(dtype)  # code 0: no bias, and row 0 never trains
        raw = (self.global_bias + u_known * self.user_bias[user] + i_known * self.item_bias[item]
               + u_known * i_known * self.interaction(user, item))
        if self.y_range is not None:
            lo, hi = self.y_range
            raw = torch.sigmoid(raw) * (hi - lo) + lo
        return raw[:, None]

    def item_vectors(self) -> torch.Tensor:
        """Each item's embedding (row 0: unknown): the dot product's factors, or the MLP's embedding for arch nn."""
        return (self.item_factors if self.arch in ("dot", "both") else self.item_emb).weight

    def groups(self) -> list[list[nn.Parameter]]:
        """One layer group: trained from scratch, nothing to freeze."""
        return [list(self.parameters())]
