"""Batch augmentation on the device: one homography per sample, one resampling pass per batch.

Images arrive pre-sized (a square a little larger than the training size, stored as uint8). Everything
random happens here, on whole batches, where the batch lives (CPU or CUDA): random-resized crop, flip,
rotate, zoom and perspective warp are composed into one 3x3 matrix per sample and applied by a single
`F.grid_sample`, so the image is interpolated once, not once per transform (fastai's `aug_transforms` idea).
The composed view is then pulled back inside the source image, so no padding (black or mirrored) shows.
Lighting (brightness, contrast) follows. Validation gets the deterministic `resize_batch`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Sequence

import timm
import torch
import torch.nn.functional as F
from torch import Tensor

from quicklearn.core.errors import ConfigError, DataError

__all__ = ["AugmentConfig", "augment_batch", "augment_with_masks", "resize_batch", "Normalize", "IMAGENET_MEAN",
           "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Columns of the per-sample uniform draws: every batch draws the same (B, 13) block whatever the config,
# so a seed gives the same stream of parameters whichever transforms are switched on.
_FLIP, _AFFINE, _ROT, _ZOOM, _WARP_X, _WARP_Y, _SCALE, _RATIO, _CX, _CY, _LIGHT, _BRIGHT, _CONTRAST = range(13)
_N_DRAWS = 13
_LOGIT_EPS = 1e-4


@dataclass(frozen=True)
class AugmentConfig:
    """Magnitudes of the random batch augmentation (defaults: fastai-like, mild enough for fine-tuning)."""

    flip: bool = True  # horizontal flip with p=0.5
    max_rotate: float = 10.0  # degrees, uniform in [-max, max]
    min_zoom: float = 1.0
    max_zoom: float = 1.1  # zoom in, uniform
    max_warp: float = 0.2  # perspective warp magnitude (0 disables)
    max_lighting: float = 0.2  # brightness and contrast change magnitude (0 disables)
    min_scale: float = 0.35  # random-resized crop: area kept in [min_scale, 1], aspect ratio in [3/4, 4/3]
    p_affine: float = 0.75  # probability each sample gets rotate/zoom/warp
    p_lighting: float = 0.75
    enabled: bool = True  # False -> only the deterministic center resize (what validation gets)

    def __post_init__(self) -> None:
        rules = [
            ("max_rotate", self.max_rotate >= 0, ">= 0 (degrees)"),
            ("min_zoom", 0 < self.min_zoom <= self.max_zoom, "> 0 and <= max_zoom"),
            ("max_warp", 0 <= self.max_warp < 1, "in [0, 1)"),
            ("max_lighting", 0 <= self.max_lighting < 1, "in [0, 1)"),
            ("min_scale", 0 < self.min_scale <= 1, "in (0, 1]"),
            ("p_affine", 0 <= self.p_affine <= 1, "in [0, 1]"),
            ("p_lighting", 0 <= self.p_lighting <= 1, "in [0, 1]"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ConfigError(f"AugmentConfig.{name} must be {rule}, got {getattr(self, name)!r}.")


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ConfigError(f"Image size must be positive, got {size!r}.")
    return int(h), int(w)


def _check_batch(x: Tensor) -> Tensor:
    if x.ndim != 4:
        raise DataError(f"Expected an image batch (B, C, H, W), got shape {tuple(x.shape)}.")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise DataError(f"Expected a uint8 or float image batch, got {x.dtype}.")
    return x


def _to_unit_float(x: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float -> float32 as is (assumed already in [0, 1])."""
    return x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)


def resize_batch(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Deterministic validation path: (B,C,H,W) uint8/float -> float32 [0,1] (B,C,h,w).

    Center crop to the target aspect ratio, then bilinear resize with antialiasing (no aliasing when
    shrinking the pre-sized images), so prediction sees exactly what validation saw."""
    h, w = _size_hw(size)
    x = _check_batch(x)
    H, W = x.shape[-2:]
    if W * h > H * w:  # source wider than the target: crop the width
        ch, cw = H, max(1, round(H * w / h))
    else:
        ch, cw = max(1, round(W * h / w)), W
    top, left = (H - ch) // 2, (W - cw) // 2
    out = _to_unit_float(x[..., top : top + ch, left : left + cw])
    if (ch, cw) != (h, w):
        out = F.interpolate(out, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return out.clamp(0.0, 1.0)


def _square_to_quad(dst: Tensor) -> Tensor:
    """(B,4,2) images of the corners (-1,-1),(1,-1),(1,1),(-1,1) -> (B,3,3) homographies (batched 8x8 solve)."""
    src = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=dst.dtype)
    B = dst.shape[0]
    x, y = src[:, 0].expand(B, 4), src[:, 1].expand(B, 4)
    X, Y = dst[..., 0], dst[..., 1]
    one, zero = torch.ones_like(X), torch.zeros_like(X)
    rows_x = torch.stack([x, y, one, zero, zero, zero, -x * X, -y * X], -1)
    rows_y = torch.stack([zero, zero, zero, x, y, one, -x * Y, -y * Y], -1)
    a = torch.cat([rows_x, rows_y], 1)  # (B, 8, 8)
    coef = torch.linalg.solve(a, torch.cat([X, Y], 1))
    return torch.cat([coef, torch.ones(B, 1, dtype=dst.dtype)], 1).view(B, 3, 3)


def _fit_inside(m: Tensor) -> Tensor:
    """Shrink (zoom in) and shift each view so the output's corners map inside the source: no padding shows.

    Both are applied in source coordinates (a post-composed similarity), which is exact for homographies;
    a view that already lies inside is left untouched."""
    corners = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]], dtype=m.dtype)
    p = corners @ m.transpose(1, 2)  # (B, 4, 3)
    xy = p[..., :2] / p[..., 2:]
    lo, hi = xy.amin(1), xy.amax(1)  # (B, 2)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    t = (1.0 / half.amax(1)).clamp(max=1.0)  # isotropic in pixels: the same factor on both axes
    half = half * t[:, None]
    shift = (-1.0 - (mid - half)).clamp(min=0) - ((mid + half) - 1.0).clamp(min=0)
    g = torch.zeros_like(m)
    g[:, 0, 0], g[:, 1, 1], g[:, 2, 2] = t, t, 1.0
    g[:, :2, 2] = (1 - t)[:, None] * mid + shift
    return g @ m


def _homographies(u: Tensor, cfg: AugmentConfig, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Tensor:
    """(B, 13) uniforms -> (B,3,3) maps from output to source normalized coordinates ([-1,1], align_corners=False).

    Sampling order, from an output pixel: perspective warp -> flip -> rotate/zoom -> crop placement."""
    B, dt = u.shape[0], u.dtype
    (H, W), (h, w) = in_hw, out_hw
    affine = u[:, _AFFINE] < cfg.p_affine
    flip = 1.0 - 2.0 * (u[:, _FLIP] < 0.5).to(dt) if cfg.flip else torch.ones(B, dtype=dt)

    # Rotation in output pixel units (normalized coords are anisotropic for a non-square output), then zoom.
    theta = torch.deg2rad((2 * u[:, _ROT] - 1) * cfg.max_rotate) * affine
    zoom = torch.where(affine, cfg.min_zoom + u[:, _ZOOM] * (cfg.max_zoom - cfg.min_zoom), torch.ones(B, dtype=dt))
    cos, sin = torch.cos(theta) / zoom, torch.sin(theta) / zoom
    lin = torch.zeros(B, 3, 3, dtype=dt)
    lin[:, 0, 0], lin[:, 0, 1] = cos * flip, -sin * (h / w)
    lin[:, 1, 0], lin[:, 1, 1] = sin * (w / h) * flip, cos
    lin[:, 2, 2] = 1.0

    # Perspective: corners move by up to max_warp (half-widths), tilting the view horizontally and vertically.
    a = (2 * u[:, _WARP_X] - 1) * cfg.max_warp * affine
    b = (2 * u[:, _WARP_Y] - 1) * cfg.max_warp * affine
    dst = torch.stack([
        torch.stack([-1 - b, -1 - a], -1), torch.stack([1 + b, -1 + a], -1),
        torch.stack([1 - b, 1 - a], -1), torch.stack([-1 + b, 1 + a], -1),
    ], 1)
    warp = _square_to_quad(dst)

    # Random-resized crop: area fraction s of the largest crop with the target aspect, aspect changed by r.
    # r is drawn only where both sides still fit (so min_scale=1 means "no crop"), log-uniform in [3/4, 4/3].
    if W * h > H * w:
        base_x, base_y = (H * w) / (W * h), 1.0
    else:
        base_x, base_y = 1.0, (W * h) / (H * w)
    s = cfg.min_scale + u[:, _SCALE] * (1 - cfg.min_scale)
    log_s = torch.log(s)
    r_lo, r_hi = torch.clamp(log_s, min=math.log(3 / 4)), torch.clamp(-log_s, max=math.log(4 / 3))
    r = torch.exp(r_lo + u[:, _RATIO] * (r_hi - r_lo))
    sx = base_x * torch.sqrt(s * r).clamp(max=1.0)
    sy = base_y * torch.sqrt(s / r).clamp(max=1.0)
    crop = torch.zeros(B, 3, 3, dtype=dt)
    crop[:, 0, 0], crop[:, 1, 1], crop[:, 2, 2] = sx, sy, 1.0
    crop[:, 0, 2] = (2 * u[:, _CX] - 1) * (1 - sx)
    crop[:, 1, 2] = (2 * u[:, _CY] - 1) * (1 - sy)

    return _fit_inside(crop @ lin @ warp)


def _sampling_grid(m: Tensor, h: int, w: int) -> Tensor:
    """(B,3,3) on the device -> (B,h,w,2) grid for grid_sample, with one batched matmul."""
    ys = (torch.arange(h, device=m.device, dtype=m.dtype) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=m.device, dtype=m.dtype) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(1, h * w, 3)
    p = base @ m.transpose(1, 2)  # (B, h*w, 3)
    return (p[..., :2] / p[..., 2:]).reshape(m.shape[0], h, w, 2)


def _lighting(x: Tensor, u: Tensor, cfg: AugmentConfig) -> Tensor:
    """Brightness in logit space (no clipped highlights), contrast scaled around each image's mean."""
    B, m = x.shape[0], cfg.max_lighting
    on = u[:, _LIGHT] < cfg.p_lighting
    shift = torch.logit(0.5 * (1 + (2 * u[:, _BRIGHT] - 1) * m))  # brightness in [0.5(1-m), 0.5(1+m)]
    contrast = torch.exp((2 * u[:, _CONTRAST] - 1) * -math.log(1 - m))  # log-uniform in [1-m, 1/(1-m)]
    shift, contrast = (v.to(x.device, torch.float32).view(B, 1, 1, 1) for v in (shift, contrast))
    y = torch.sigmoid(torch.logit(x, eps=_LOGIT_EPS) + shift)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * contrast + mean
    return torch.where(on.to(x.device).view(B, 1, 1, 1), y, x)


def augment_batch(x: Tensor, size: int | tuple[int, int], cfg: AugmentConfig, generator: torch.Generator,
                  rows: Sequence[int] | None = None, n_draws: int | None = None) -> Tensor:
    """Random training augmentation: (B,C,H,W) uint8/float on any device -> float32 [0,1] (B,C,h,w), same device.

    Parameters come from `generator` (CPU, or any device) and the matrices are built on the CPU, so a seed
    gives the same augmentations on every device. One bilinear grid_sample (reflection padding,
    align_corners=False) per batch; lighting after, clamped to [0,1]. cfg.enabled=False -> `resize_batch`.
    rows, n_draws: `x` is rows `rows` of a global batch of `n_draws` (one rank's slice under data-parallel
    training): the draws are made for the whole global batch and these rows taken, so every rank augments its
    items exactly as a single process would."""
    if not cfg.enabled:
        return resize_batch(x, size)
    return _augment(x, None, size, cfg, generator, rows, n_draws)[0]


def augment_with_masks(x: Tensor, masks: Tensor, size: int | tuple[int, int], cfg: AugmentConfig,
                       generator: torch.Generator, rows: Sequence[int] | None = None,
                       n_draws: int | None = None) -> tuple[Tensor, Tensor]:
    """`augment_batch` for images with per-pixel targets: `masks` (uint8 (B,1,H,W) class indices) go through the same
    sampling grid as their images, nearest-neighbour, so each mask stays aligned with its image and no new class
    value appears; lighting changes the images only. The same draws as `augment_batch` for the same generator.
    Returns (float32 [0,1] (B,C,h,w), masks (B,1,h,w) in their own dtype). Needs cfg.enabled."""
    if not cfg.enabled:
        raise ConfigError("augment_with_masks needs augmentation on (cfg.enabled); resize images and masks instead.")
    out, warped = _augment(x, masks, size, cfg, generator, rows, n_draws)
    assert warped is not None
    return out, warped


def _augment(x: Tensor, masks: Tensor | None, size: int | tuple[int, int], cfg: AugmentConfig, generator: torch.Generator,
             rows: Sequence[int] | None, n_draws: int | None) -> tuple[Tensor, Tensor | None]:
    """The one resampling pass: draws -> homographies -> one grid -> images (bilinear) and masks (nearest)."""
    h, w = _size_hw(size)
    x = _check_batch(x)
    u = torch.rand(n_draws or x.shape[0], _N_DRAWS, generator=generator, device=generator.device).to("cpu", torch.float64)
    if rows is not None:
        u = u[torch.as_tensor(list(rows), dtype=torch.int64)]
    mats = _homographies(u, cfg, (x.shape[-2], x.shape[-1]), (h, w))
    grid = _sampling_grid(mats.to(x.device, torch.float32), h, w)
    out = F.grid_sample(_to_unit_float(x), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    warped = None
    if masks is not None:  # float32 holds every uint8 value exactly; nearest only ever copies one
        warped = F.grid_sample(masks.to(grid.device, torch.float32), grid, mode="nearest", padding_mode="reflection",
                               align_corners=False).to(masks.dtype)
    if cfg.max_lighting > 0:
        out = _lighting(out, u, cfg)
    return out.clamp_(0.0, 1.0), warped


def _fit_channels(values: tuple[float, ...], n: int) -> tuple[float, ...]:
    if len(values) == n:
        return values
    if n == 1:
        return (sum(values) / len(values),)
    return tuple(values[i % len(values)] for i in range(n))


@dataclass(frozen=True)
class Normalize:
    """Per-channel (x - mean) / std with the backbone's own pretrained statistics; JSON round-trip for export."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if not mean or len(mean) != len(std):
            raise ConfigError(f"Normalize needs one mean and one std per channel, got mean={mean}, std={std}.")
        if any(s <= 0 for s in std):
            raise ConfigError(f"Normalize std values must be > 0, got {std}.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim < 3 or x.shape[-3] != len(self.mean):
            raise DataError(
                f"Normalize is set up for {len(self.mean)} channel(s) but got a tensor of shape {tuple(x.shape)}; "
                "set the channels to match the model."
            )
        if not x.is_floating_point():
            raise DataError(f"Normalize expects a float batch in [0, 1], got {x.dtype}.")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return mean, std

    def __call__(self, x: Tensor) -> Tensor:
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: Tensor) -> Tensor:
        """Back to [0, 1] pixel values (for showing batches)."""
        mean, std = self._stats(x)
        return x * std + mean

    @classmethod
    def for_arch(cls, arch: str, in_chans: int = 3) -> "Normalize":
        """Statistics the backbone was pretrained with (timm's pretrained cfg), ImageNet's when timm has none."""
        if in_chans < 1:
            raise ConfigError(f"in_chans must be >= 1, got {in_chans}.")
        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
            hint = (f" Did you mean {', '.join(repr(c) for c in close)}?" if close
                    else " See timm.list_models() for the names timm knows.")
            raise ConfigError(f"Unknown architecture {arch!r}: timm has no model by that name.{hint}")
        from timm.data import resolve_data_config

        cfg = timm.get_pretrained_cfg(arch)
        # timm's own resolution of the data config (its defaults, ImageNet's, where the arch's cfg has none)
        data = resolve_data_config(pretrained_cfg=cfg.to_dict() if cfg is not None else {"mean": IMAGENET_MEAN})
        return cls(_fit_channels(tuple(data["mean"]), in_chans), _fit_channels(tuple(data["std"]), in_chans))

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalize":
        try:
            return cls(tuple(d["mean"]), tuple(d["std"]))
        except (KeyError, TypeError) as e:
            raise ConfigError(f"Invalid normalization config {d!r}: needs 'mean' and 'std' lists.") from e
