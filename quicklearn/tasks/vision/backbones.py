"""Backbones: any timm architecture by name, its pretrained weights resolved by `weights.py`.

Like timm's registry/builder split: the name resolves to a builder (timm) and a pretrained config (mean/std,
input size, classifier and first-conv names) that travels with the model. The body is built without
classifier and without pooling; the head (`heads.py`) pools and classifies.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import torch
from torch import nn

from quicklearn.core.errors import ConfigError, WeightsError
from quicklearn.tasks.vision.weights import resolve_pretrained

__all__ = ["DEFAULT_ARCH", "check_arch", "create_body", "body_param_groups", "pretrained_cfg"]

log = logging.getLogger("quicklearn")

DEFAULT_ARCH = "tf_efficientnet_lite0"


def check_arch(arch: str) -> None:
    """Raise ConfigError with the closest names when timm does not know `arch`, and with the tags that exist when
    `arch` is a known architecture with a pretrained tag timm does not have (`resnet18.bogus`)."""
    import timm

    if timm.is_model(arch):
        base, _, tag = arch.partition(".")
        if tag and not timm.list_pretrained(arch):  # is_model() ignores the tag; create_model() would not
            tags = [name.partition(".")[2] for name in timm.list_pretrained(f"{base}.*")]
            known = f"its tags are {', '.join(tags)}" if tags else "it has no pretrained tags"
            raise ConfigError(f"architecture {arch!r}: timm's {base} has no pretrained tag {tag!r}; {known}. "
                              f"Use one of them, or {base!r} alone for its default weights.")
        return
    close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else " See `timm.list_models()` for names."
    raise ConfigError(f"unknown architecture {arch!r}.{hint}")


def pretrained_cfg(arch: str) -> dict:
    import timm

    cfg = timm.get_pretrained_cfg(arch)
    return cfg.to_dict() if cfg is not None else {}


def create_body(arch: str = DEFAULT_ARCH, *, weights: str | Path | None = "imagenet", in_chans: int = 3) -> tuple[nn.Module, str]:
    """The feature extractor of `arch` (no classifier, no pooling) and a description of where its weights came from."""
    import timm

    check_arch(arch)
    body = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="", in_chans=in_chans)
    state, description = resolve_pretrained(arch, weights)
    if state is not None:
        _load_into(body, arch, state, in_chans)
    log.info("backbone %s: %s", arch, description)
    return body, description


def _load_into(body: nn.Module, arch: str, state: dict[str, torch.Tensor], in_chans: int) -> None:
    """Load a timm-layout state dict into the body: classifier dropped, stem adapted with timm's adapt_input_conv.

    Not timm's create_model(pretrained_cfg_overlay=dict(file=...)), on purpose: weights.resolve_pretrained hands
    a state dict from one of four sources, and a foreign .pth given as weights= is mapped onto timm's names in
    memory (there is no timm-layout file to point timm at); timm's loader would also end a mismatch with its
    multi-line strict-load error instead of the one line below that names the fix."""
    from timm.models import adapt_input_conv

    cfg = pretrained_cfg(arch)
    classifier = cfg.get("classifier", "classifier")
    prefixes = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    state = {k: v for k, v in state.items() if not any(k == p or k.startswith(p + ".") for p in prefixes)}
    first = cfg.get("first_conv")
    if in_chans != 3 and first:
        for name in ([first] if isinstance(first, str) else first):
            key = name + ".weight"
            if key in state:
                state[key] = adapt_input_conv(in_chans, state[key])
    missing, unexpected = body.load_state_dict(state, strict=False)
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise WeightsError(
            f"the pretrained weights do not fit {arch}'s body ({what}). "
            f"Re-import them with `quicklearn weights import FILE --arch {arch}`."
        )


def body_param_groups(body: nn.Module, n_groups: int = 2) -> list[list[nn.Parameter]]:
    """Split the body's parameters into `n_groups` contiguous groups, early layers first (for discriminative lr)."""
    from timm.models import group_parameters

    try:
        grouped = group_parameters(body, body.group_matcher(coarse=True))  # type: ignore[operator]
        names = [grouped[k] for k in sorted(grouped)]
    except (AttributeError, NotImplementedError, TypeError):
        names = [[n] for n, _ in body.named_parameters()]
    params = dict(body.named_parameters())
    layers = [[params[n] for n in group if n in params] for group in names]
    layers = [g for g in layers if g]
    n_groups = max(1, min(n_groups, len(layers)))
    total = sum(p.numel() for g in layers for p in g)
    groups: list[list[nn.Parameter]] = [[] for _ in range(n_groups)]
    seen = 0
    for g in layers:
        size = sum(p.numel() for p in g)
        # place each layer by the midpoint of its parameters, so one huge last stage still gets a group of its own
        k = min(n_groups - 1, int(n_groups * (seen + size / 2) / max(total, 1)))
        groups[k].extend(g)
        seen += size
    return [g for g in groups if g]
