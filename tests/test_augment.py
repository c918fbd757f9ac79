"""Batch augmentation (one homography per sample), the validation resize, and backbone normalization."""

from __future__ import annotations

import math
import os

import pytest
import torch

from quicklearn.core.errors import ConfigError
from quicklearn.tasks.vision.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    Normalize,
    _homographies,
    augment_batch,
    resize_batch,
)

IDENTITY = AugmentConfig(
    flip=False, max_rotate=0.0, min_zoom=1.0, max_zoom=1.0, max_warp=0.0, max_lighting=0.0, min_scale=1.0
)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noise_batch(b: int = 4, c: int = 3, s: int = 40, seed: int = 0) -> torch.Tensor:
    """uint8 (b, c, s, s) of blurry random blobs: structured enough that any transform changes it."""
    small = torch.rand(b, c, 5, 5, generator=gen(seed))
    big = torch.nn.functional.interpolate(small, size=(s, s), mode="bicubic", align_corners=False)
    return (big.clamp(0, 1) * 255).round().to(torch.uint8)


def smooth_batch(b: int = 2, s: int = 40) -> torch.Tensor:
    """uint8 (b, 3, s, s) of one slow sinusoid per channel (nearly linear at the pixel scale)."""
    t = (torch.arange(s, dtype=torch.float64) + 0.5) / s
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    chans = [0.5 + 0.4 * torch.sin(math.pi * (xx * fx + yy * fy)) for fx, fy in [(0.5, 0.2), (0.3, -0.4), (-0.2, 0.6)]]
    img = (torch.stack(chans) * 255).round().to(torch.uint8)
    return img.expand(b, -1, -1, -1).contiguous()


# ---- augment_batch ----------------------------------------------------------------------------------


def test_same_seed_same_output_different_seed_different_output() -> None:
    x, cfg = noise_batch(), AugmentConfig()
    a = augment_batch(x, 32, cfg, gen(1))
    assert torch.equal(a, augment_batch(x, 32, cfg, gen(1)))
    assert not torch.allclose(a, augment_batch(x, 32, cfg, gen(2)))


def test_samples_in_a_batch_get_different_parameters() -> None:
    x = noise_batch(b=1).expand(6, -1, -1, -1)  # six copies of one image
    out = augment_batch(x, 32, AugmentConfig(), gen(0))
    for i in range(6):
        for j in range(i + 1, 6):
            assert not torch.allclose(out[i], out[j], atol=1e-3), (i, j)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [24, (20, 32), (32, 18)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_output_dtype_range_shape_device(device: str, size: int | tuple[int, int], dtype: torch.dtype) -> None:
    x = noise_batch(b=3).to(device)
    x = x if dtype == torch.uint8 else x.float() / 255
    h, w = (size, size) if isinstance(size, int) else size
    for fn in (lambda t: augment_batch(t, size, AugmentConfig(max_lighting=0.5, p_lighting=1.0), gen(3)),
               lambda t: resize_batch(t, size)):
        out = fn(x)
        assert out.dtype == torch.float32
        assert out.shape == (3, 3, h, w)
        assert out.device.type == device
        assert out.min() >= 0 and out.max() <= 1


def test_float_input_is_not_modified_in_place() -> None:
    x = noise_batch(b=2, s=24).float() / 255
    before = x.clone()
    resize_batch(x, 24)
    augment_batch(x, 24, AugmentConfig(), gen(0))
    assert torch.equal(x, before)


def test_identity_config_matches_resize_batch() -> None:
    same = smooth_batch(s=32)  # no resampling needed: must be (numerically) exact
    assert (augment_batch(same, 32, IDENTITY, gen(0)) - resize_batch(same, 32)).abs().max() < 1e-5
    presized = smooth_batch(s=256)  # the real 256 -> 224 case: bilinear sampling vs antialiased resize
    assert (augment_batch(presized, 224, IDENTITY, gen(0)) - resize_batch(presized, 224)).abs().max() < 1e-3
    # Exactly plain bilinear sampling at the output pixel centres (the antialiased resize differs only by its
    # wider filter): any coordinate slip in the homography (half a pixel, a wrong scale) would show here.
    x = noise_batch(s=40)
    plain = torch.nn.functional.interpolate(x.float() / 255, size=(32, 32), mode="bilinear", align_corners=False)
    assert (augment_batch(x, 32, IDENTITY, gen(0)) - plain).abs().max() < 1e-5


def test_disabled_equals_resize_batch_exactly() -> None:
    x = noise_batch()
    for size in (32, (24, 36)):
        assert torch.equal(augment_batch(x, size, AugmentConfig(enabled=False), gen(0)), resize_batch(x, size))


def test_flip_mirrors_about_half_of_the_samples() -> None:
    x = torch.zeros(16, 1, 8, 8, dtype=torch.uint8)
    x[..., 4:] = 255  # left half black, right half white
    cfg = AugmentConfig(flip=True, max_rotate=0.0, min_zoom=1.0, max_zoom=1.0, max_warp=0.0, max_lighting=0.0,
                        min_scale=1.0)
    out = augment_batch(x, 8, cfg, gen(0))
    plain, mirror = x[0].float() / 255, x[0].flip(-1).float() / 255
    flipped = [torch.allclose(o, mirror, atol=1e-5) for o in out]
    assert all(f or torch.allclose(o, plain, atol=1e-5) for f, o in zip(flipped, out))
    assert 0 < sum(flipped) < 16


def test_lighting_changes_mean_brightness() -> None:
    x = noise_batch(b=8)
    cfg = AugmentConfig(flip=False, max_rotate=0.0, min_zoom=1.0, max_zoom=1.0, max_warp=0.0, min_scale=1.0,
                        max_lighting=0.4, p_lighting=1.0)
    ref = resize_batch(x, 32).mean(dim=(1, 2, 3))
    lit = augment_batch(x, 32, cfg, gen(0)).mean(dim=(1, 2, 3))
    assert ((lit - ref).abs() > 0.01).all()
    assert (lit > ref).any() and (lit < ref).any()


@pytest.mark.parametrize("in_hw, out_hw", [((40, 40), (32, 32)), ((40, 40), (20, 32)), ((30, 50), (32, 32))])
def test_views_stay_inside_the_source(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
    """Strong rotation/warp/zoom-out are pulled back inside the image: no padding reaches the output."""
    cfg = AugmentConfig(max_rotate=45.0, min_zoom=0.7, max_zoom=1.3, max_warp=0.5, min_scale=0.1, p_affine=1.0)
    m = _homographies(torch.rand(256, 13, generator=gen(0), dtype=torch.float64), cfg, in_hw, out_hw)
    corners = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]], dtype=m.dtype)
    p = corners @ m.transpose(1, 2)
    assert (p[..., 2] > 0).all()
    assert ((p[..., :2] / p[..., 2:]).abs() <= 1 + 1e-9).all()


def test_invalid_config_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="min_zoom"):
        AugmentConfig(min_zoom=1.2, max_zoom=1.0)
    with pytest.raises(ConfigError, match="min_scale"):
        AugmentConfig(min_scale=0.0)


# ---- Normalize --------------------------------------------------------------------------------------


def test_normalize_for_arch_uses_the_pretrained_stats() -> None:
    assert Normalize.for_arch("tf_efficientnet_lite0") == Normalize((0.5,) * 3, (0.5,) * 3)
    assert Normalize.for_arch("resnet50") == Normalize(IMAGENET_MEAN, IMAGENET_STD)
    gray = Normalize.for_arch("resnet50", in_chans=1)
    assert gray.mean == pytest.approx((sum(IMAGENET_MEAN) / 3,)) and gray.std == pytest.approx((sum(IMAGENET_STD) / 3,))
    four = Normalize.for_arch("resnet50", in_chans=4)
    assert four.mean == IMAGENET_MEAN + IMAGENET_MEAN[:1]


def test_normalize_unknown_arch_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match=r"resnet5O.*resnet50"):
        Normalize.for_arch("resnet5O")


def test_normalize_round_trips_and_inverts() -> None:
    norm = Normalize.for_arch("resnet50")
    assert Normalize.from_dict(norm.to_dict()) == norm
    x = torch.rand(2, 3, 8, 8, generator=gen(0))
    y = norm(x)
    assert y.dtype == x.dtype
    assert y[:, 0].mean() == pytest.approx(((x[:, 0] - 0.485) / 0.229).mean().item(), abs=1e-5)
    assert torch.allclose(norm.denormalize(y), x, atol=1e-6)
    with pytest.raises(ConfigError):
        Normalize.from_dict({"mean": [0.5]})


# ---- preview (only on request) ----------------------------------------------------------------------


def test_default_augmentation_of_a_real_photo_gives_distinct_plausible_views(tmp_path) -> None:
    """8 default augmentations of a real photo at 224 px from a 256 px presize: each a different view, none of them
    the plain resize, pixels in range, colours close to the photo's (lighting is bounded), and they still look like
    the photo (correlated with it far above chance). QL_AUG_PREVIEW=1 also writes /tmp/aug_preview.png to look at."""
    data = pytest.importorskip("skimage.data")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None]  # (1, 3, 300, 451) uint8
    img = (resize_batch(photo, 256)[0] * 255).round().to(torch.uint8)  # the pre-sized cache entry
    batch = img[None].expand(8, -1, -1, -1)
    cfg = AugmentConfig()
    out = augment_batch(batch, 224, cfg, gen(0))
    plain = resize_batch(img[None], 224)
    assert out.shape == (8, 3, 224, 224) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    flat = out.flatten(1)
    assert all(float((flat[i] - plain.flatten()).abs().mean()) > 0.01 for i in range(8))  # never the plain view
    assert all(float((flat[i] - flat[j]).abs().mean()) > 0.01 for i in range(8) for j in range(i + 1, 8))
    means = out.mean((2, 3))
    assert float((means - plain.mean((2, 3))).abs().max()) < cfg.max_lighting  # brightness moves, within bounds
    # a view is the photo seen differently: at a coarse scale (8x8 cells) it still correlates with the photo
    # (random crops and turns move things, so not perfectly), where a noise image would not
    coarse = torch.nn.functional.avg_pool2d(torch.cat([plain, out, torch.rand_like(plain)]), 28).flatten(1)
    corr = torch.corrcoef(coarse)[0]
    assert bool((corr[1:9] > 0.4).all()) and abs(float(corr[9])) < 0.3, corr
    grid = make_grid(torch.cat([plain, out]), nrow=3, padding=4, pad_value=1.0)
    target = "/tmp/aug_preview.png" if os.environ.get("QL_AUG_PREVIEW") else tmp_path / "aug_preview.png"
    plt.imsave(target, grid.permute(1, 2, 0).numpy())
    assert os.path.getsize(target) > 10_000
