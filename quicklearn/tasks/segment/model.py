"""The segmentation model: segmentation-models-pytorch's decoders (Unet, FPN, DeepLabV3+) around any timm encoder
(`tu-<arch>`, features_only), with quicklearn's offline ImageNet weights loaded into the encoder (smp's own
`encoder_weights="imagenet"` would download them). Needs the `[segment]` extra.

Layer groups for freeze/unfreeze: the encoder (the body, split in two for discriminative rates), then the decoder
and the head together, which train from the start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from quicklearn.core.errors import ConfigError, QuicklearnError, WeightsError
from quicklearn.tasks.vision.backbones import DEFAULT_ARCH, body_param_groups, check_arch
from quicklearn.tasks.vision.weights import resolve_pretrained

__all__ = ["DECODERS", "Decoder", "SegmentationModel", "build_segmentation_model", "require_smp", "check_decoder"]

Decoder = Literal["unet", "fpn", "deeplabv3plus"]
DECODERS: dict[str, str] = {"unet": "Unet", "fpn": "FPN", "deeplabv3plus": "DeepLabV3Plus"}
INSTALL_HINT = 'pip install "quicklearn[segment]"'


def require_smp() -> Any:
    """segmentation_models_pytorch, or one line saying how to install it."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise QuicklearnError(f"segmentation needs segmentation-models-pytorch, which is not installed: {INSTALL_HINT}") from None
    return smp


def check_decoder(decoder: str) -> None:
    if decoder not in DECODERS:
        raise ConfigError(f"decoder={decoder!r}: use {', '.join(DECODERS)}.")


class SegmentationModel(nn.Module):
    """smp's encoder -> decoder -> head: logits (B, n_classes, H, W) at the input's size. `body` is the encoder."""

    def __init__(self, arch: str = DEFAULT_ARCH, n_classes: int = 2, decoder: str = "unet", in_chans: int = 3,
                 n_body_groups: int = 2):
        super().__init__()
        check_decoder(decoder)
        smp = require_smp()
        self.net = getattr(smp, DECODERS[decoder])(encoder_name=f"tu-{arch}", encoder_weights=None, in_channels=in_chans,
                                                   classes=n_classes)
        self.n_body_groups = n_body_groups

    @property
    def body(self) -> nn.Module:
        """The encoder (what freeze() freezes and freeze_bn_stats keeps on its pretrained statistics)."""
        return self.net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def groups(self) -> list[list[nn.Parameter]]:
        head = [*self.net.decoder.parameters(), *self.net.segmentation_head.parameters()]
        return body_param_groups(self.net.encoder.model, self.n_body_groups) + [head]


def build_segmentation_model(arch: str = DEFAULT_ARCH, n_classes: int = 2, *, decoder: str = "unet",
                             weights: str | Path | None = "imagenet", in_chans: int = 3) -> tuple[SegmentationModel, str]:
    """The model and where its encoder's weights came from (resolved as for classification: a file, the cache, a
    bundled package such as lite0's, or timm's hub; none = random init)."""
    check_arch(arch)
    model = SegmentationModel(arch, n_classes, decoder, in_chans)
    state, description = resolve_pretrained(arch, weights)
    if state is not None:
        encoder = model.net.encoder.model
        missing, _ = encoder.load_state_dict(state, strict=False)  # the classifier and the last 1x1 conv are not features
        if missing:
            raise WeightsError(f"the pretrained weights do not fit {arch}'s encoder (missing {missing[:3]}). Re-import "
                               f"them with `quicklearn weights import FILE --arch {arch}`.")
    return model, description
