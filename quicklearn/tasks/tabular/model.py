"""The tabular model: one embedding per categorical column and one per continuous column, then an MLP, optionally
as a cheap ensemble of several MLPs trained as one batched model.

    model = TabularModel([5, 4, 12], n_cont=3, n_out=2, layers=(256, 256), num_embed=8, ensemble=6)
    logits = model(x)        # x: float (B, 3 + 3): categorical codes first, then scaled continuous values

- Categorical columns: `emb_size(levels) = min(600, round(1.6 * levels ** 0.56))` wide embeddings (fastai's rule).
- Continuous columns: with `num_embed` > 0, periodic embeddings (Gorishniy et al. 2022, "On Embeddings for Numerical
  Features in Tabular Deep Learning", PLR-lite): each value x becomes ReLU(Linear([cos 2 pi f x, sin 2 pi f x])) with
  `n_frequencies` trainable frequencies per column and one Linear shared by the columns; else the values
  themselves after a BatchNorm (fastai's way).
- Blocks: Linear -> BatchNorm -> ReLU -> Dropout (`ByteDropout` on the CPU, where torch's own mask costs more than
  the block's matmul).
- `ensemble` = k > 1: TabM-mini (Gorishniy et al. 2024): k members share the MLP; each scales the MLP's input by
  its own vector (random signs at start) and has its own output layer. In training the model returns each
  member's output, (B, k, n_out), and every member is trained on the loss (the Learner averages it over them);
  in evaluation it returns the members' average as the target kind averages predictions (probabilities for
  classes), (B, n_out). Regression can squash each output into `y_range` with a sigmoid.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from quicklearn.data.kinds import get_kind

__all__ = ["TabularModel", "PeriodicEmbedding", "ByteDropout", "emb_size", "model_kwargs"]


def emb_size(levels: int) -> int:
    """Embedding width for a categorical column with `levels` codes (unknown and missing included)."""
    return int(min(600, round(1.6 * levels**0.56)))


class ByteDropout(nn.Module):
    """Dropout whose CPU mask costs a fifth of torch's: one 64-bit random draw gives 8 mask bytes, each kept when
    it is at least round(p * 256), so p is kept to 1/256 (0.1 drops 26/256 = 10.2%); kept values are scaled by
    256 / (256 - that) as nn.Dropout scales them. torch draws its dropout mask one value at a time on the CPU, and
    the ensemble's B x k rows made it 22% of a training step; on other devices this is nn.Dropout's fused kernel.
    With no parameters or buffers, it stands in nn.Dropout's place in a state dict."""

    def __init__(self, p: float = 0.1):
        super().__init__()
        self.p = float(p)
        self.threshold = round(self.p * 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, True)
        n = x.numel()
        draws = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-(2**63), None)  # all 64 bits uniform
        keep = draws.view(torch.uint8)[:n].view(x.shape) >= self.threshold
        return x * (keep * (256 / (256 - self.threshold))).to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PeriodicEmbedding(nn.Module):
    """(B, F) values -> (B, F * d): per column, ReLU(Linear([cos(2 pi f x), sin(2 pi f x)])) over `n_frequencies`
    trainable frequencies f ~ N(0, scale^2); the Linear is shared by the columns (the "lite" variant)."""

    def __init__(self, n_features: int, d: int, n_frequencies: int = 16, scale: float = 0.3, with_value: bool = False):
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_features, n_frequencies) * scale)
        self.linear = nn.Linear(2 * n_frequencies, d)
        self.with_value = with_value
        self.d = d + int(with_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 2 * math.pi * x[..., None] * self.frequencies
        e = torch.relu(self.linear(torch.cat([torch.cos(z), torch.sin(z)], -1)))
        if self.with_value:  # the value itself beside its embedding: a linear effect needs no frequencies
            e = torch.cat([x[..., None], e], -1)
        return e.flatten(1)


class TabularModel(nn.Module):
    def __init__(
        self,
        cardinalities: Sequence[int],
        n_cont: int,
        n_out: int,
        layers: Sequence[int] = (128, 64),
        dropout: float = 0.1,
        embed_dropout: float = 0.0,
        y_range: tuple[float, float] | None = None,
        num_embed: int = 0,
        n_frequencies: int = 16,
        frequency_scale: float = 0.3,
        ensemble: int = 1,
        kind: str = "single",
        embed_value: bool = False,
    ):
        super().__init__()
        self.config = {"cardinalities": [int(c) for c in cardinalities], "n_cont": int(n_cont), "n_out": int(n_out),
                       "layers": [int(v) for v in layers], "dropout": float(dropout), "embed_dropout": float(embed_dropout),
                       "y_range": [float(v) for v in y_range] if y_range is not None else None,
                       "num_embed": int(num_embed), "n_frequencies": int(n_frequencies),
                       "frequency_scale": float(frequency_scale), "ensemble": int(ensemble), "kind": str(kind),
                       "embed_value": bool(embed_value)}
        self.n_cat, self.n_cont = len(cardinalities), int(n_cont)
        self.embeds = nn.ModuleList(nn.Embedding(int(c), emb_size(int(c))) for c in cardinalities)
        self.embed_drop = nn.Dropout(embed_dropout)
        self.num_embed = int(num_embed) if self.n_cont else 0
        self.bn_cont = nn.BatchNorm1d(self.n_cont) if self.n_cont and not self.num_embed else None
        self.cont_embed = (PeriodicEmbedding(self.n_cont, self.num_embed, n_frequencies, frequency_scale, embed_value)
                           if self.num_embed else None)
        width = sum(e.embedding_dim for e in self.embeds) + (self.n_cont * self.cont_embed.d if self.cont_embed else self.n_cont)
        self.members = max(1, int(ensemble))
        self.target_kind = get_kind(kind)
        if self.members > 1:  # TabM-mini's one adapter: each member scales the MLP's input by its own +-1 vector
            self.adapter = nn.Parameter(torch.randint(0, 2, (self.members, width)).float() * 2 - 1)
        blocks: list[nn.Module] = []
        for size in layers:
            blocks += [nn.Linear(width, int(size)), nn.BatchNorm1d(int(size)), nn.ReLU(inplace=True), ByteDropout(dropout)]
            width = int(size)
        self.mlp = nn.Sequential(*blocks)
        if self.members > 1:
            bound = 1 / math.sqrt(width)  # nn.Linear's initialization, for each member's own output layer
            self.head_weight = nn.Parameter(torch.empty(self.members, width, int(n_out)).uniform_(-bound, bound))
            self.head_bias = nn.Parameter(torch.empty(self.members, int(n_out)).uniform_(-bound, bound))
        else:
            self.out = nn.Linear(width, int(n_out))
        self.y_range = tuple(float(v) for v in y_range) if y_range is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.n_cat:
            codes = x[:, : self.n_cat].long()
            parts.append(self.embed_drop(torch.cat([e(codes[:, i]) for i, e in enumerate(self.embeds)], 1)))
        if self.n_cont:
            cont = x[:, self.n_cat :]
            parts.append(self.cont_embed(cont) if self.cont_embed is not None else self.bn_cont(cont))
        h = torch.cat(parts, 1)
        if self.members == 1:
            return self._squash(self.out(self.mlp(h)))
        # (B, k, width) -> one batch of B * k rows through the shared MLP -> (B, k, hidden); no batch size is
        # read, so an exported graph keeps its batch axis dynamic
        h = self.mlp((h[:, None, :] * self.adapter).flatten(0, 1)).unflatten(0, (-1, self.members))
        out = self._squash(torch.einsum("bkh,kho->bko", h, self.head_weight) + self.head_bias)
        if self.training:
            return out  # (B, k, n_out): each member's output, each trained on the loss
        return self.target_kind.average_views(list(out.unbind(1))).to(out.dtype)

    def _squash(self, out: torch.Tensor) -> torch.Tensor:
        if self.y_range is None:
            return out
        lo, hi = self.y_range
        return torch.sigmoid(out) * (hi - lo) + lo

    @property
    def out_features(self) -> int:
        return self.head_bias.shape[-1] if self.members > 1 else self.out.out_features

    def groups(self) -> list[list[nn.Parameter]]:
        """One layer group: a table model trains from scratch, nothing to freeze."""
        return [list(self.parameters())]


_REQUIRED = ("cardinalities", "n_cont", "n_out", "layers", "dropout")


def model_kwargs(config: dict) -> dict:
    """config.json's "model" -> TabularModel's keywords. Keys a folder written before them lacks take the value
    that folder was trained with (no numerical embeddings, one member), so every older folder still loads."""
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise KeyError(missing[0])
    defaults = {"embed_dropout": 0.0, "y_range": None, "num_embed": 0, "n_frequencies": 16, "frequency_scale": 0.3,
                "ensemble": 1, "kind": "single", "embed_value": False}
    return {**{k: config[k] for k in _REQUIRED}, **{k: config.get(k, v) for k, v in defaults.items()}}

