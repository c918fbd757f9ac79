"""`image_dataloaders` end to end: split detection, decoding, batches, normalization, augmentation and show_batch,
on generated folders and on the real hymenoptera and mnist-tiny data (small sizes, so the whole file stays fast)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_image
from PIL import Image
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.tasks.vision.images import decode_image

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def noise_folder(tmp_path_factory) -> Path:
    """3 classes x 8 distinct random-noise images of varied sizes: every image differs from every other."""
    root = tmp_path_factory.mktemp("noise") / "data"
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            arr = rng.integers(0, 256, (20 + i, 26 + 2 * i, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{c}{i}.png")
    return root


def quicklearn_records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "quicklearn"]


def small(data, **kw) -> ql.DataLoaders:
    kw = {"size": 16, "presize": 20, "num_workers": 0, **kw}
    return ql.image_dataloaders(data, **kw)


# ---- what image_dataloaders builds -------------------------------------------------------------------
def test_folder_per_class(noise_folder: Path) -> None:
    dls = small(noise_folder, bs=4)
    assert dls.kind == "single" and dls.vocab.classes == ("a", "b", "c") and dls.n_out == 3
    assert (dls.train.n, dls.valid.n) == (18, 6)  # stratified 20%: round(8 * 0.2) = 2 per class validate
    assert torch.bincount(dls.valid.targets).tolist() == [2, 2, 2]
    assert not set(dls.train_paths) & set(dls.valid_paths)
    assert len(set(dls.train_paths) | set(dls.valid_paths)) == 24
    for paths, dl in ((dls.train_paths, dls.train), (dls.valid_paths, dls.valid)):
        assert [dls.vocab.classes[int(t)] for t in dl.targets] == [p.parent.name for p in paths]
    assert dls.train.images.dtype == torch.uint8 and dls.valid.images.dtype == torch.uint8  # stored as uint8
    assert dls.train.images.shape == (18, 3, 20, 20)  # pre-sized once, cropped to `size` per batch
    assert dls.pipeline.size == 16 and dls.pipeline.presize == 20 and dls.device == torch.device("cpu")
    x, y = next(iter(dls.valid))
    assert x.dtype == torch.float32 and x.shape == (6, 3, 16, 16) and y.dtype == torch.int64


def test_default_presize_is_size_over_0875(noise_folder: Path) -> None:
    dls = ql.image_dataloaders(noise_folder, size=16, num_workers=0)
    assert dls.pipeline.presize == 18 and dls.train.images.shape[-2:] == (18, 18)


def test_same_seed_same_split_other_seed_other_split(noise_folder: Path) -> None:
    a = small(noise_folder, seed=1)
    b = small(noise_folder, seed=1)
    c = small(noise_folder, seed=2)
    assert a.valid_paths == b.valid_paths and torch.equal(a.valid.images, b.valid.images)
    assert a.valid_paths != c.valid_paths


def test_random_splitter_by_name(noise_folder: Path) -> None:
    dls = small(noise_folder, splitter="random", valid_pct=0.25)
    assert dls.valid.n == 6 and dls.train.n == 18
    with pytest.raises(ql.DataError, match="splitter='folders'"):
        small(noise_folder, splitter="folders")


def test_csv_with_is_valid_column_and_relative_paths(noise_folder: Path, tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "ds"
    shutil.copytree(noise_folder, root / "images")
    rows = [{"path": f"images/{p.parent.name}/{p.name}", "species": p.parent.name, "is_valid": p.stem.endswith(("0", "1"))}
            for p in sorted(noise_folder.rglob("*.png"))]
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # paths are relative to the CSV's folder, not to the cwd
    dls = small(root / "labels.csv", y="species")
    assert dls.vocab.classes == ("a", "b", "c")
    assert sorted(p.name for p in dls.valid_paths) == sorted(f"{c}{i}.png" for c in "abc" for i in (0, 1))
    assert dls.train.n == 18
    assert all(p.parent.parent == root / "images" and p.is_file() for p in dls.train_paths + dls.valid_paths)


def test_dataframe_multi_label_and_regression(noise_folder: Path) -> None:
    paths = sorted(noise_folder.rglob("*.png"))
    tags = ["round red", "red", "round", "square red"]
    df = pd.DataFrame({"img": [str(p) for p in paths], "tags": [tags[i % 4] for i in range(len(paths))],
                       "weight": [0.5 + 0.37 * i for i in range(len(paths))]})
    multi = small(df, y="tags", bs=4)
    assert multi.kind == "multi" and multi.vocab.classes == ("red", "round", "square") and multi.n_out == 3
    x, y = next(iter(multi.train))
    assert y.dtype == torch.float32 and y.shape == (4, 3) and set(y.unique().tolist()) <= {0.0, 1.0}
    assert set(multi.decode_target(torch.tensor([[1.0, 1.0, 0.0]]))) == {"red round"}

    reg = small(df, y="weight")
    assert reg.kind == "regression" and reg.vocab is None and reg.n_out == 1
    assert reg.train.targets.dtype == torch.float32
    mean, std = reg.target_stats
    assert mean == pytest.approx(float(reg.train.targets.mean()), rel=1e-5) and std > 0


def test_class_absent_from_train_is_refused_by_name(tmp_path: Path) -> None:
    for split, classes in (("train", ("ants", "bees")), ("valid", ("ants", "bees", "wasps"))):
        for c in classes:
            for i in range(2):
                write_image(tmp_path / split / c / f"{i}.png")
    with pytest.raises(ql.DataError, match="class 'wasps' has no training items") as e:
        small(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_empty_validation_set_is_refused(noise_folder: Path) -> None:
    with pytest.raises(ql.DataError, match="validation set is empty") as e:
        small(noise_folder, splitter=ql.IndexSplitter([]))
    assert str(noise_folder) in str(e.value)


def test_class_missing_from_validation_is_a_warning(tmp_path: Path, caplog) -> None:
    for c, n in (("a", 6), ("b", 6), ("solo", 1)):
        for i in range(n):
            write_image(tmp_path / c / f"{i}.png", color=(30 * i, 100, 100))
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        dls = small(tmp_path)
    assert dls.vocab.classes == ("a", "b", "solo") and dls.train.n == 11 and dls.valid.n == 2
    (msg,) = quicklearn_records(caplog)
    assert "class 'solo' has no validation items" in msg


def test_index_splitter_through_image_dataloaders(noise_folder: Path) -> None:
    dls = small(noise_folder, splitter=ql.IndexSplitter([0, 8, 16, 17]))
    assert [p.name for p in dls.valid_paths] == ["a0.png", "b0.png", "c0.png", "c1.png"]
    with pytest.raises(ql.DataError, match="valid index 24 is out of range"):
        small(noise_folder, splitter=ql.IndexSplitter([0, 24]))


def test_grayscale_channels_option(digits_folder: Path) -> None:
    dls = small(digits_folder, channels=1, size=16, presize=16, augment=False)
    assert dls.train.images.shape[1:] == (1, 16, 16)
    assert len(dls.pipeline.normalize.mean) == 1
    x, _ = next(iter(dls.valid))
    assert x.shape[1] == 1


def test_bad_arguments_are_user_errors(noise_folder: Path) -> None:
    with pytest.raises(ql.DataError, match="size=4"):
        small(noise_folder, size=4)
    with pytest.raises(ql.DataError, match="channels=2"):
        small(noise_folder, channels=2)
    with pytest.raises(ql.ConfigError, match="Unknown architecture 'resnet5O'"):
        small(noise_folder, arch="resnet5O")


# ---- normalization comes from the backbone -----------------------------------------------------------
def test_normalization_follows_the_arch(noise_folder: Path) -> None:
    lite = small(noise_folder, arch="tf_efficientnet_lite0", augment=False)
    res = small(noise_folder, arch="resnet50", augment=False)
    assert lite.pipeline.normalize.mean == pytest.approx((0.5, 0.5, 0.5))
    assert lite.pipeline.normalize.std == pytest.approx((0.5, 0.5, 0.5))
    assert res.pipeline.normalize.mean == pytest.approx((0.485, 0.456, 0.406))
    assert res.pipeline.normalize.std == pytest.approx((0.229, 0.224, 0.225))
    assert torch.equal(lite.valid.images, res.valid.images)  # the same pixels ...
    xl, yl = next(iter(lite.valid))
    xr, yr = next(iter(res.valid))
    assert torch.equal(yl, yr)
    assert not torch.allclose(xl, xr, atol=1e-2)  # ... normalized differently
    pixels = lite.pipeline.normalize.denormalize(xl)
    assert torch.allclose(pixels, res.pipeline.normalize.denormalize(xr), atol=1e-5)
    assert torch.allclose(xl, (pixels - 0.5) / 0.5, atol=1e-5)
    assert torch.allclose(xr[:, 0], (pixels[:, 0] - 0.485) / 0.229, atol=1e-5)
    assert torch.allclose(xl[:, 0].mean(), pixels[:, 0].mean() * 2 - 1, atol=1e-4)
    assert 0.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0


def test_explicit_normalize_overrides_the_arch(noise_folder: Path) -> None:
    dls = small(noise_folder, normalize=ql.Normalize((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), augment=False)
    x, _ = next(iter(dls.valid))
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


# ---- batches: augmentation, seeds, epochs, drop_last, coverage ---------------------------------------
def _epoch(dl) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*list(dl))
    return torch.cat(xs), torch.cat(ys)


def test_without_augmentation_every_epoch_serves_the_validation_view_of_each_image(noise_folder: Path) -> None:
    dls = small(noise_folder, augment=False, bs=6)
    dl = dls.train
    reference = dls.pipeline.valid_batch(dl.images)  # what validation would show for each training image
    seen = []
    for epoch in (0, 1, 2):
        dl.set_epoch(epoch)
        x, y = _epoch(dl)
        assert x.shape == (18, 3, 16, 16)
        dist = torch.cdist(x.flatten(1), reference.flatten(1))
        match = dist.argmin(1)
        assert dist.min(1).values.max() < 1e-4  # each row is exactly one image, unaugmented
        assert sorted(match.tolist()) == list(range(18))  # every training image once per epoch
        assert torch.equal(y, dl.targets[match])
        seen.append(match.tolist())
    assert seen[0] != seen[1] != seen[2]  # only the order changes between epochs (shuffled)
    dl.set_epoch(1)
    assert _epoch(dl)[1].tolist() == dl.targets[torch.tensor(seen[1])].tolist()  # and an epoch replays exactly


def test_augmentation_is_seeded_by_seed_and_epoch(noise_folder: Path) -> None:
    a = small(noise_folder, seed=5, bs=6)
    b = small(noise_folder, seed=5, bs=6)
    xa, ya = _epoch(a.train)
    xb, yb = _epoch(b.train)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # same seed: identical batches
    assert torch.equal(_epoch(a.train)[0], xa)  # the same epoch again: identical too
    a.train.set_epoch(1)
    x1, _ = _epoch(a.train)
    assert not torch.allclose(x1, xa, atol=1e-2)  # another epoch: other batches
    # augmented rows are not just the validation view of some image
    ref = a.pipeline.valid_batch(a.train.images)
    assert torch.cdist(xa.flatten(1), ref.flatten(1)).min(1).values.min() > 1e-2
    a.train.shuffle = False  # the same images in the same order: the augmentation itself changes with the epoch
    a.train.set_epoch(0)
    fixed0, y0 = _epoch(a.train)
    a.train.set_epoch(1)
    fixed1, y1 = _epoch(a.train)
    assert torch.equal(y0, y1) and torch.equal(y0, a.train.targets)
    assert (fixed0 - fixed1).abs().flatten(1).amax(1).min() > 1e-2  # every image looks different
    c = small(noise_folder, seed=6, bs=6)
    c.train.set_epoch(0)
    assert not torch.allclose(_epoch(c.train)[0], xa, atol=1e-2)


def test_augment_config_is_used(noise_folder: Path) -> None:
    off = small(noise_folder, augment=ql.AugmentConfig(enabled=False), bs=6)
    plain = small(noise_folder, augment=False, bs=6)
    assert torch.equal(_epoch(off.train)[0], _epoch(plain.train)[0])
    flip_only = ql.AugmentConfig(max_rotate=0, max_zoom=1.0, max_warp=0, max_lighting=0, min_scale=1.0)
    dls = small(noise_folder, augment=flip_only, bs=6, presize=16)
    x, _ = _epoch(dls.train)
    ref = dls.pipeline.valid_batch(dls.train.images)
    cand = torch.cat([ref, ref.flip(-1)])  # each row is an image or its mirror image
    assert torch.cdist(x.flatten(1), cand.flatten(1)).min(1).values.max() < 0.05  # distinct images are ~10 apart


def test_train_drops_the_last_partial_batch_and_valid_covers_everything(digits_folder: Path) -> None:
    dls = small(digits_folder, size=16, presize=16, bs=24)
    assert (dls.train.n, dls.valid.n) == (320, 80)
    assert len(dls.train) == 13  # 320 // 24: the last 8 are dropped
    batches = list(dls.train)
    assert len(batches) == 13 and all(x.shape[0] == 24 for x, _ in batches)
    assert len(dls.valid) == 2  # valid batches are twice as large; nothing dropped, order kept
    vx, vy = _epoch(dls.valid)
    assert [x.shape[0] for x, _ in dls.valid] == [48, 32]
    assert torch.equal(vy, dls.valid.targets)
    assert torch.allclose(vx, dls.pipeline.valid_batch(dls.valid.images), atol=1e-6)


def test_small_training_set_still_gives_one_full_batch(noise_folder: Path) -> None:
    dls = small(noise_folder, bs=64)
    assert dls.train.bs == 18 and len(dls.train) == 1
    assert next(iter(dls.train))[0].shape[0] == 18


# ---- show_batch -------------------------------------------------------------------------------------
def test_show_batch_writes_a_png(noise_folder: Path, tmp_path: Path) -> None:
    dls = small(noise_folder)
    out = dls.show_batch(tmp_path / "sub" / "batch.png", n=6)
    assert out == tmp_path / "sub" / "batch.png"
    with Image.open(out) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert 400 <= w <= 2000 and 200 <= h <= 2000  # 4 x 2 grid of titled thumbnails at 100 dpi
        assert np.asarray(im.convert("L")).std() > 10  # not a blank canvas


def test_show_batch_command(noise_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.png"
    r = CliRunner().invoke(app, ["show-batch", "--data", str(noise_folder), "--out", str(out), "--size", "16", "--n", "4"])
    assert r.exit_code == 0, r.output
    assert "18 train / 6 valid images; classes: a, b, c" in r.stdout and f"saved {out}" in r.stdout.replace("\n", "")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] >= 400 and im.size[1] >= 200


# ---- real data ----------------------------------------------------------------------------------------
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def hymenoptera_dls(hymenoptera: Path):
    logger, rec = logging.getLogger("quicklearn"), _Records()
    logger.addHandler(rec)
    try:
        dls = ql.image_dataloaders(hymenoptera, size=32, presize=36, num_workers=0)
    finally:
        logger.removeHandler(rec)
    return dls, rec.messages


@pytest.mark.slow
def test_hymenoptera(hymenoptera: Path, hymenoptera_dls) -> None:
    dls, warnings = hymenoptera_dls
    assert dls.vocab.classes == ("ants", "bees") and dls.kind == "single"
    assert (dls.train.n, dls.valid.n) == (245, 153)  # train/ and val/ folders
    assert all(p.relative_to(hymenoptera).parts[0] == "train" for p in dls.train_paths)
    assert all(p.relative_to(hymenoptera).parts[0] == "val" for p in dls.valid_paths)
    assert torch.bincount(dls.valid.targets).tolist() == [70, 83]
    assert warnings == []  # nothing skipped: every file decodes
    assert dls.train.images.shape == (245, 3, 36, 36)


@pytest.mark.slow
def test_hymenoptera_gif_placeholder_decodes_as_rgb(hymenoptera: Path, hymenoptera_dls) -> None:
    gif = hymenoptera / "train" / "ants" / "imageNotFound.gif"
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.mode == "P"
    img = decode_image(gif)
    assert img.shape == (3, 300, 300) and img.dtype == torch.uint8
    dls, _ = hymenoptera_dls
    i = dls.train_paths.index(gif)  # kept, labelled 'ants', as an RGB image like the rest
    assert dls.vocab.classes[int(dls.train.targets[i])] == "ants"
    assert torch.equal(dls.train.images[i], dls.pipeline.item(img))


@pytest.mark.slow
def test_mnist_tiny_grayscale_three_channels_and_test_excluded(mnist_tiny: Path) -> None:
    dls = ql.image_dataloaders(mnist_tiny, size=32, presize=32, num_workers=0, augment=False)
    assert dls.vocab.classes == ("3", "7")
    assert (dls.train.n, dls.valid.n) == (709, 699)
    assert not any("test" in p.relative_to(mnist_tiny).parts for p in dls.train_paths + dls.valid_paths)
    imgs = dls.train.images
    assert imgs.shape == (709, 3, 32, 32) and imgs.dtype == torch.uint8
    assert torch.equal(imgs[:, 0], imgs[:, 1]) and torch.equal(imgs[:, 1], imgs[:, 2])  # gray repeated on 3 channels
    with Image.open(dls.train_paths[0]) as im:
        assert im.mode in ("L", "P", "LA")  # the files themselves are single-channel


def test_digits_folder_ten_classes(digits_folder: Path) -> None:
    dls = small(digits_folder, size=16, presize=16)
    assert dls.vocab.classes == tuple(str(i) for i in range(10))
    assert (dls.train.n, dls.valid.n) == (320, 80)
    assert set(dls.valid.targets.tolist()) == set(range(10))
    for p, t in zip(dls.valid_paths, dls.valid.targets.tolist()):
        assert p.parent.name == str(t)
