"""Segmentation (issue 21): photo and mask stay aligned through augmentation, void counts nowhere, IoU by hand,
pairing rules and bad inputs with their one-line errors, export/load/ONNX parity, the CLI end to end at 64 px,
and CamVid at small size against the majority-class baseline. Scenes are generated: coloured shapes whose masks are
known exactly."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("segmentation_models_pytorch", reason="the [segment] extra is not installed")

import quicklearn as ql  # noqa: E402
from quicklearn.core.errors import ConfigError, DataError  # noqa: E402
from quicklearn.tasks.registry import infer_task  # noqa: E402
from quicklearn.tasks.segment.kind import MASK, mask_loss  # noqa: E402
from quicklearn.tasks.segment.masks import resize_masks  # noqa: E402
from quicklearn.tasks.segment.metrics import VOID, confusion, iou_table, miou, pixel_accuracy, scores  # noqa: E402
from quicklearn.tasks.segment.pairs import find_pairs  # noqa: E402
from quicklearn.tasks.vision.augment import AugmentConfig, augment_with_masks  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
COLORS = {0: (90, 90, 90), 1: (220, 40, 40), 2: (40, 60, 220)}  # background, square, disc
NAMES = ["ground", "square", "disc", "void"]  # codes.txt: value 3 is void


def scene(seed: int, size: tuple[int, int] = (80, 64), void: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A photo (H, W, 3) of a grey ground with a red square and a blue disc, and its exact mask (values 0-2, 3 on
    a thin void ring around the disc when `void`)."""
    rng = np.random.default_rng(seed)
    w, h = size
    mask = np.zeros((h, w), dtype=np.uint8)
    s = int(rng.integers(14, 24))
    x0, y0 = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
    mask[y0:y0 + s, x0:x0 + s] = 1
    r = int(rng.integers(8, 13))
    cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
    yy, xx = np.mgrid[:h, :w]
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    mask[d <= r] = 2
    photo = np.zeros((h, w, 3), dtype=np.uint8)
    for k, c in COLORS.items():
        photo[mask == k] = c
    photo = np.clip(photo.astype(int) + rng.integers(-12, 13, photo.shape), 0, 255).astype(np.uint8)
    if void:
        mask[(d > r) & (d <= r + 1.5)] = 3
    return photo, mask


def write_scenes(root: Path, n_train: int = 12, n_valid: int = 6, *, photos: str = "train", masks: str = "trainannot",
                 valid: str | None = "val", suffix: str = "", codes: bool = True, fmt: str = "jpg") -> Path:
    """Scenes as CamVid lays them out: train/ + trainannot/, val/ + valannot/, codes.txt (other names on request)."""
    splits = [(photos, masks, n_train, 0)] + ([(valid, f"{valid}{masks[len(photos):]}", n_valid, 1000)] if valid else [])
    for pdir, mdir, n, offset in splits:
        (root / pdir).mkdir(parents=True, exist_ok=True)
        (root / mdir).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            photo, mask = scene(offset + i)
            Image.fromarray(photo).save(root / pdir / f"img{i:03d}.{fmt}")
            Image.fromarray(mask, "L").save(root / mdir / f"img{i:03d}{suffix}.png")
    if codes:
        (root / "codes.txt").write_text("\n".join(NAMES) + "\n")
    return root


# ---- augmentation keeps photo and mask aligned -------------------------------------------------------------------
STRONG = dict(flip=True, max_rotate=30.0, min_zoom=1.0, max_zoom=1.5, max_warp=0.4, max_lighting=0.0, min_scale=0.4,
              p_affine=1.0)
AUGMENTS = {
    "all": AugmentConfig(**STRONG),
    "flip": AugmentConfig(flip=True, max_rotate=0, max_zoom=1.0, max_warp=0, max_lighting=0, min_scale=1.0),
    "rotate": AugmentConfig(flip=False, max_rotate=30, max_zoom=1.0, max_warp=0, max_lighting=0, min_scale=1.0, p_affine=1),
    "zoom": AugmentConfig(flip=False, max_rotate=0, max_zoom=1.6, max_warp=0, max_lighting=0, min_scale=1.0, p_affine=1),
    "warp": AugmentConfig(flip=False, max_rotate=0, max_zoom=1.0, max_warp=0.4, max_lighting=0, min_scale=1.0, p_affine=1),
    "crop": AugmentConfig(flip=False, max_rotate=0, max_zoom=1.0, max_warp=0, max_lighting=0, min_scale=0.3),
}


def _blobs(n: int, h: int, w: int, values: list[int], seed: int = 0) -> torch.Tensor:
    """Masks (n, 1, h, w) of a few large random blobs of `values` (smooth noise, thresholded)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.nn.functional.interpolate(torch.rand(n, 1, h // 8, w // 8, generator=g), size=(h, w), mode="bicubic",
                                            align_corners=False)
    edges = torch.quantile(noise.flatten(), torch.linspace(0, 1, len(values) + 1)[1:-1])
    idx = torch.bucketize(noise, edges)
    return torch.tensor(values, dtype=torch.uint8)[idx]


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_photo_and_mask_stay_aligned_under_every_augmentation(name: str) -> None:
    """A photo painted in its mask's class colours, warped by the photo's pass, reads back as the warped mask away
    from class borders (where bilinear blends two colours)."""
    palette = torch.tensor([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.float32)
    masks = _blobs(6, 96, 128, [0, 1, 2, 3])
    photos = palette[masks[:, 0].long()].permute(0, 3, 1, 2).to(torch.uint8)
    x, y = augment_with_masks(photos, masks, (80, 96), AUGMENTS[name], torch.Generator().manual_seed(3))
    assert x.shape == (6, 3, 80, 96) and y.shape == (6, 1, 80, 96) and y.dtype == torch.uint8
    read = ((x.permute(0, 2, 3, 1)[..., None, :] * 255 - palette).abs().sum(-1)).argmin(-1)  # nearest class colour
    inner = torch.nn.functional.max_pool2d(y.float(), 3, 1, 1) == -torch.nn.functional.max_pool2d(-y.float(), 3, 1, 1)
    agree = (read == y[:, 0].long())[inner[:, 0]].float().mean()
    assert float(agree) > 0.995, f"{name}: {float(agree):.4f} of the interior pixels agree"
    assert not torch.equal(y, resize_masks(masks, (80, 96))) or name == "flip"  # the augmentation did something


def test_nearest_resampling_adds_no_class_value_and_lighting_leaves_masks_alone() -> None:
    masks = _blobs(8, 64, 64, [0, 3, 7, 255], seed=1)
    cfg = AugmentConfig(**{**STRONG, "max_lighting": 0.6, "p_lighting": 1.0})
    photos = torch.full((8, 3, 64, 64), 128, dtype=torch.uint8)
    x, y = augment_with_masks(photos, masks, (48, 48), cfg, torch.Generator().manual_seed(0))
    assert set(torch.unique(y).tolist()) <= {0, 3, 7, 255}
    dark = AugmentConfig(**{**STRONG, "max_lighting": 0.0})
    _, y_dark = augment_with_masks(photos, masks, (48, 48), dark, torch.Generator().manual_seed(0))
    assert torch.equal(y, y_dark)  # lighting changed the photos only: the same draws give the same masks
    assert set(torch.unique(resize_masks(masks, (37, 29))).tolist()) <= {0, 3, 7, 255}


# ---- loss and metrics ----------------------------------------------------------------------------------------------
def test_void_pixels_count_in_neither_the_loss_nor_the_metrics() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 10, 12, generator=g)
    target = torch.randint(0, 4, (3, 10, 12), generator=g).to(torch.uint8)
    target[:, :4] = VOID
    other = logits.clone()
    other[:, :, :4] = torch.randn(3, 4, 4, 12, generator=g) * 10  # any prediction where the truth is void
    for fn in (mask_loss(), mask_loss(dice=1.0), pixel_accuracy, miou, MASK.item_losses):
        a, b = fn(logits, target), fn(other, target)
        assert torch.allclose(torch.as_tensor(a), torch.as_tensor(b)), fn
    changed = logits.clone()
    changed[:, :, 5:] = torch.randn(3, 4, 5, 12, generator=g) * 10  # where the truth is not void: it does count
    assert float(mask_loss()(changed, target)) != pytest.approx(float(mask_loss()(logits, target)))


def test_iou_and_pixel_accuracy_against_a_hand_computation() -> None:
    truth = torch.tensor([[0, 0, 1, 1], [2, 2, 2, VOID]], dtype=torch.uint8)
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = confusion(pred, truth, 4)
    # class 0: TP 1 (0,0), FP 1 (1,1), FN 1 (0,1) -> 1/3; class 1: TP 2, FP 1 (0,1), FN 0 -> 2/3;
    # class 2: TP 2, FP 0, FN 1 -> 2/3; class 3: in neither truth nor prediction -> no IoU; void pixel (1,3) left out
    s = scores(cm)
    assert s["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 2 / 3]) and s["iou"][3] is None
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)
    table = iou_table(cm, ["a", "b", "c", "d"])
    assert table.loc["a", "pixels"] == 2 and table.loc["c", "recall"] == pytest.approx(2 / 3)
    assert table.loc["mean", "iou"] == pytest.approx(s["miou"])
    only_fp = confusion(torch.tensor([3]), torch.tensor([0], dtype=torch.uint8), 4)
    assert scores(only_fp)["iou"][3] == 0.0  # predicted where it is not: it occurs, with IoU 0


# ---- pairing rules and bad inputs ------------------------------------------------------------------------------------
def test_camvid_layout_pairs_by_stem_splits_by_folder_and_is_segmentation_not_vision(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "scenes")
    pairs = find_pairs(root)
    assert len(pairs) == 18 and pairs.split.count("train") == 12 and pairs.split.count("valid") == 6
    assert all(p.stem == m.stem for p, m in zip(pairs.photos, pairs.masks))
    task, why = infer_task(root)
    assert task.name == "segment" and "trainannot" in why
    assert infer_task(root / "train")[0].name == "segment"  # a photo folder with its sibling mask folder
    classes = tmp_path / "classes"
    for c in ("cats", "dogs"):
        shutil.copytree(root / "train", classes / c)
    assert infer_task(classes)[0].name == "vision"  # a plain class-per-folder tree stays vision


def test_images_and_masks_folders_with_a_mask_suffix_and_masks_override(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "a", photos="images", masks="masks", valid=None, suffix="_mask", codes=False)
    pairs = find_pairs(root)
    assert len(pairs) == 12 and all(m.stem == f"{p.stem}_mask" for p, m in zip(pairs.photos, pairs.masks))
    assert set(pairs.split) == {None}
    dls = ql.segmentation_dataloaders(root, size=32, valid_pct=0.25, seed=1)  # no split folders: a seeded random split
    again = ql.segmentation_dataloaders(root, size=32, valid_pct=0.25, seed=1)
    assert (dls.train.n, dls.valid.n) == (9, 3) and dls.valid_paths == again.valid_paths
    assert dls.table.names == ("0", "1", "2", "3")  # no codes.txt: the values found are the classes
    other = write_scenes(tmp_path / "b", photos="pics", masks="pics_gt_somewhere", valid=None, suffix="_P", codes=False)
    with pytest.raises(DataError, match="no mask folder found beside the photos.*--masks DIR"):
        find_pairs(other / "pics")
    pairs = find_pairs(other / "pics", masks=other / "pics_gt_somewhere")
    assert len(pairs) == 12 and all(m.name.endswith("_P.png") for m in pairs.masks)
    labels = write_scenes(tmp_path / "c", photos="train", masks="train_labels", valid="valid", suffix="_L")
    assert sorted(set(find_pairs(labels).split)) == ["train", "valid"]


@pytest.mark.parametrize("photos, masks, valid, suffix", [("train", "train_masks", "val", ""),
                                                           ("images", "labels", None, "_label")])
def test_the_other_sibling_folder_names_and_mask_suffixes(tmp_path: Path, photos: str, masks: str, valid: str | None,
                                                          suffix: str) -> None:
    root = write_scenes(tmp_path / "s", n_train=4, n_valid=2, photos=photos, masks=masks, valid=valid, suffix=suffix,
                        codes=False)
    pairs = find_pairs(root)
    assert len(pairs) == (6 if valid else 4) and all(m.parent.name in (masks, f"{valid}_masks") and
                                                     m.stem == f"{p.stem}{suffix}" for p, m in zip(pairs.photos, pairs.masks))
    assert infer_task(root)[0].name == "segment"


def test_images_and_masks_inside_each_split_folder(tmp_path: Path) -> None:
    root = tmp_path / "s"
    for split, n in (("train", 4), ("valid", 2)):
        write_scenes(root / split, n_train=n, photos="images", masks="masks", valid=None, codes=False)
    pairs = find_pairs(root)
    assert pairs.split.count("train") == 4 and pairs.split.count("valid") == 2
    assert all(p.parent.name == "images" and m.parent.name == "masks" for p, m in zip(pairs.photos, pairs.masks))


def test_void_n_sets_the_void_value_and_none_keeps_every_value_a_class(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "s", n_train=4, n_valid=2, codes=False)  # values 0-3, no codes.txt: no void found
    assert ql.segmentation_dataloaders(root, size=32).table.void is None
    dls = ql.segmentation_dataloaders(root, size=32, void=3)
    assert dls.table.names == ("0", "1", "2") and dls.table.void == 3
    assert int((dls.valid.targets == VOID).sum()) > 0 and int(dls.valid.targets[dls.valid.targets != VOID].max()) == 2
    (root / "codes.txt").write_text("\n".join(NAMES) + "\n")  # a class named void: found, and --void none overrides it
    assert ql.segmentation_dataloaders(root, size=32).table.void == 3
    assert ql.segmentation_dataloaders(root, size=32, void="none").table.names == tuple(NAMES)


def test_a_csv_with_a_photo_and_a_mask_column(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "s", codes=False)
    rows = [f"train/img{i:03d}.jpg,trainannot/img{i:03d}.png,{int(i >= 9)}" for i in range(12)]
    (root / "pairs.csv").write_text("image,mask,is_valid\n" + "\n".join(rows) + "\n")
    pairs = find_pairs(root / "pairs.csv")
    assert len(pairs) == 12 and pairs.split.count("valid") == 3 and pairs.masks[0].name == "img000.png"
    assert infer_task(root / "pairs.csv")[0].name == "segment"
    (root / "one.csv").write_text("image,label\ntrain/img000.jpg,a\n")
    with pytest.raises(DataError, match=r"one\.csv: needs a column of photo paths and a column of mask paths"):
        find_pairs(root / "one.csv")


def test_a_photo_without_a_mask_and_a_mask_without_a_photo_are_named_in_one_warning(tmp_path: Path, caplog) -> None:
    root = write_scenes(tmp_path / "s")
    (root / "trainannot" / "img000.png").unlink()
    Image.fromarray(scene(99)[1], "L").save(root / "trainannot" / "stray.png")
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        pairs = find_pairs(root)
    assert len(pairs) == 17
    lines = [r.getMessage() for r in caplog.records if "without" in r.getMessage()]
    assert len(lines) == 1 and "1 photo(s) without a mask" in lines[0] and "img000.jpg" in lines[0]
    assert "1 mask(s) without a photo" in lines[0] and "stray.png" in lines[0]


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_a_mask_of_another_size_is_an_error_naming_both_files(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "s")
    Image.fromarray(scene(0)[1][:40, :50], "L").save(root / "trainannot" / "img002.png")
    with pytest.raises(DataError) as e:
        ql.segmentation_dataloaders(root, size=32)
    msg = _one_line(e)
    assert "trainannot/img002.png is 50x40 but its photo" in msg and "train/img002.jpg is 80x64" in msg


def test_rgb_masks_read_through_the_codes_colours_and_unknown_colours_are_named(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "s", codes=False)
    colors = {0: (0, 0, 0), 1: (200, 0, 0), 2: (0, 0, 200), 3: (255, 255, 255)}
    for f in sorted((root / "trainannot").glob("*.png")) + sorted((root / "valannot").glob("*.png")):
        m = np.asarray(Image.open(f))
        Image.fromarray(np.array([colors[v] for v in range(4)], dtype=np.uint8)[m]).save(f)
    (root / "codes.txt").write_text("".join(f"{r} {g} {b} {n}\n" for (r, g, b), n in zip(colors.values(), NAMES)))
    dls = ql.segmentation_dataloaders(root, size=32)
    assert dls.table.names == ("ground", "square", "disc") and dls.table.void == 3
    assert set(torch.unique(dls.valid.targets).tolist()) <= {0, 1, 2, VOID}
    bad = np.asarray(Image.open(root / "trainannot" / "img001.png")).copy()
    bad[0, 0] = (10, 200, 30)
    Image.fromarray(bad).save(root / "trainannot" / "img001.png")
    with pytest.raises(DataError) as e:
        ql.segmentation_dataloaders(root, size=32)
    msg = _one_line(e)
    assert "trainannot/img001.png: colours (10, 200, 30) are not in the codes file's colours" in msg


def test_mask_values_above_the_class_count_are_an_error(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "s")
    m = np.asarray(Image.open(root / "valannot" / "img004.png")).copy()
    m[:10, :10] = 7
    Image.fromarray(m, "L").save(root / "valannot" / "img004.png")
    with pytest.raises(DataError) as e:
        ql.segmentation_dataloaders(root, size=32)
    msg = _one_line(e)
    assert "mask value 7 (in" in msg and "valannot/img004.png" in msg and "names 4 classes (values 0-3)" in msg


def test_binary_255_masks_palette_masks_and_void_255(tmp_path: Path, capsys) -> None:
    root = write_scenes(tmp_path / "bin", codes=False)
    for f in [*(root / "trainannot").glob("*.png"), *(root / "valannot").glob("*.png")]:
        m = np.asarray(Image.open(f))
        Image.fromarray(np.where(m == 1, 255, 0).astype(np.uint8), "L").save(f)
    dls = ql.segmentation_dataloaders(root, size=32)
    assert dls.table.binary and dls.table.values == (0, 255) and set(torch.unique(dls.train.targets).tolist()) == {0, 1}
    assert "binary masks, 255 is class 1" in capsys.readouterr().err
    pal = write_scenes(tmp_path / "pal", codes=False)
    palette = [0, 0, 0, 250, 0, 0, 0, 0, 250] + [0] * 759
    palette[255 * 3: 255 * 3 + 3] = [255, 255, 255]
    for f in [*(pal / "trainannot").glob("*.png"), *(pal / "valannot").glob("*.png")]:
        m = np.asarray(Image.open(f)).copy()
        m[m == 3] = 255  # VOC-style: the void border is 255
        im = Image.fromarray(m, "P")
        im.putpalette(palette)
        im.save(f)
    dls = ql.segmentation_dataloaders(pal, size=32)
    assert dls.table.names == ("0", "1", "2") and dls.table.void == 255
    assert dls.table.colors[1] == (250, 0, 0)  # drawn in the masks' own palette
    with pytest.raises(ConfigError, match="--void 'x'"):
        from quicklearn.tasks.segment.recipe import void_value

        void_value("x")


# ---- the model folder and ONNX -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("scenes") / "scenes", n_train=16, n_valid=8)


@pytest.fixture(scope="module")
def trained(scenes: Path, tmp_path_factory, env) -> tuple[ql.Learner, Path]:
    learn = ql.segmentation_learner(scenes, size=64, bs=4, progress=False, seed=0)
    learn.fine_tune(2, 4e-3, freeze_epochs=1)
    folder = learn.export(tmp_path_factory.mktemp("seg-model") / "model")
    return learn, folder


def test_python_api_learns_the_scenes_and_the_model_folder_round_trips(trained, scenes: Path) -> None:
    learn, folder = trained
    assert learn.monitor == "miou" and learn.greater_is_better("miou")
    assert learn.history[-1]["miou"] > 0.5, learn.history  # colours tell the classes: a model finds them quickly
    assert learn.dls.table.void == 3 and len(learn.dls.table.names) == 3
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == "segment" and config["kind"] == "mask" and config["model"]["decoder"] == "unet"
    model = ql.load(folder)
    photo = scenes / "val" / "img000.jpg"
    pred = model.predict(photo)
    assert pred.label.shape == (64, 80) and set(pred.probs) == {"ground", "square", "disc"}
    x = learn.dls.valid.make_batch(torch.tensor([0]))[0]
    learn.model.eval()
    with torch.no_grad():
        want = learn.model(x).argmax(1)[0]
    got = model.raw([photo]).argmax(1)[0]
    assert float((got == want).float().mean()) > 0.99  # the folder predicts what validation saw
    big = Image.open(photo).resize((200, 150))
    assert model.predict(big).label.shape == (150, 200)  # another size: the mask is the photo's own size
    truth = model.table.read(scenes / "valannot" / "img000.png")
    assert float((torch.from_numpy(pred.label) == truth)[truth != VOID].float().mean()) > 0.8


def test_interpret_a_learner_iou_table_and_worst_images(trained, tmp_path: Path) -> None:
    learn, _ = trained
    interp = ql.interpret(learn)
    assert len(interp) == 8
    table = interp.per_class()
    assert list(table.index) == ["ground", "square", "disc", "mean"]
    assert table.loc["mean", "iou"] == pytest.approx(learn.validate()["miou"], abs=1e-6)
    worst = interp.top_losses(3)
    assert list(worst["loss"]) == sorted(worst["loss"], reverse=True) and {"item", "miou"} <= set(worst.columns)
    written = {p.name for p in interp.save(tmp_path / "interp", k=3)}
    assert {"per_class.csv", "confusion_matrix.png", "top_losses.png"} <= written
    assert learn.show_results(tmp_path / "results.png", n=2).exists()


# ---- the command line end to end -----------------------------------------------------------------------------------
def test_cli_train_predict_evaluate_interpret_show_batch_export_at_64_px(scenes: Path, tmp_path: Path, env) -> None:
    from quicklearn_cli.app import app
    from typer.testing import CliRunner

    run = CliRunner()
    out = tmp_path / "run"
    r = run.invoke(app, ["train", "--data", str(scenes), "--size", "64", "--bs", "4", "--epochs", "1",
                         "--freeze-epochs", "1", "--lr", "0.004", "--decoder", "fpn", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "task: segment" in r.output and "valid miou" in r.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["decoder"] == "fpn" and config["classes_table"]["names"] == ["ground", "square", "disc"]
    r = run.invoke(app, ["predict", str(out), str(scenes / "val"), "--out-dir", str(tmp_path / "masks"), "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout[r.stdout.index("["):])
    assert len(rows) == 8 and abs(sum(rows[0][f"share_{c}"] for c in ("ground", "square", "disc")) - 1) < 1e-6
    png = Image.open(io.BytesIO(base64.b64decode(rows[0]["mask_png"])))
    assert png.mode == "P" and png.size == (80, 64) and set(np.unique(np.asarray(png))) <= {0, 1, 2}
    written = Image.open(tmp_path / "masks" / "img000.png")
    colors = config["classes_table"]["colors"]
    assert written.mode == "P" and written.getpalette()[3:9] == [*colors[1], *colors[2]]  # the class palette, embedded
    assert (tmp_path / "masks" / "img000_overlay.jpg").exists()
    r = run.invoke(app, ["evaluate", str(out), "--data", str(scenes / "val"), "--format", "json"])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)["metrics"]
    assert {"loss", "miou", "pixel_accuracy", "iou_ground", "iou_square", "iou_disc"} == set(metrics)
    r = run.invoke(app, ["interpret", str(out), "--data", str(scenes / "val"), "--out", str(tmp_path / "interp"),
                         "--top-losses", "2"])
    assert r.exit_code == 0, r.output
    assert "per class" in r.output and (tmp_path / "interp" / "top_losses.png").exists()
    r = run.invoke(app, ["show-batch", "--data", str(scenes), "--size", "64", "--n", "4", "--out", str(tmp_path / "b.png")])
    assert r.exit_code == 0 and (tmp_path / "b.png").exists(), r.output
    if _has("onnxruntime") and _has("onnxscript"):  # export --onnx: uint8 photos in, logits and class maps out
        r = run.invoke(app, ["export", str(out), "--onnx"])
        assert r.exit_code == 0 and "parity: max |ONNX - PyTorch|" in r.output, r.output
        import onnxruntime as ort

        sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        meta = json.loads(sess.get_modelmeta().custom_metadata_map["quicklearn"])
        assert meta["kind"] == "mask" and meta["frame"] == [64, 64] and meta["check"]["max_abs_diff"] < 1e-3
        model = ql.load(out)
        x = torch.stack([model.pipeline.photo(torch.from_numpy(scene(i)[0]).permute(2, 0, 1)) for i in range(3)])
        logits, classes = sess.run(None, {"image": x.numpy()})
        assert logits.shape == (3, 3, 64, 64) and classes.shape == (3, 64, 64) and classes.dtype == np.int64
        assert float((torch.from_numpy(classes) == model.raw(list(x)).argmax(1)).float().mean()) > 0.999
    r = run.invoke(app, ["predict", str(out), str(scenes / "val"), "--thresh", "0.3"])
    assert r.exit_code == 1 and "--thresh is for multi-label models" in r.output
    r = run.invoke(app, ["train", "--task", "vision", "--data", str(scenes), "--decoder", "unet", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "--decoder is for segmentation (--task segment)" in r.output


def test_out_dir_is_refused_for_models_that_write_no_files(tmp_path: Path) -> None:
    from quicklearn_cli.app import app
    from typer.testing import CliRunner

    folder = ROOT / "tests" / "fixtures" / "model_folders" / "vision"
    r = CliRunner().invoke(app, ["predict", str(folder), str(folder), "--out-dir", str(tmp_path)])
    assert r.exit_code == 1 and "--out-dir is for models that write files per input" in r.output


# ---- real data -------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_camvid_at_small_size_beats_the_majority_class_baseline(tmp_path: Path, env) -> None:
    camvid = SHARED / "camvid"
    if not camvid.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{camvid} is missing")
        pytest.skip(f"{camvid} not available")
    few = tmp_path / "camvid"
    for split, n in (("train", 96), ("val", 32)):
        for sub in (split, f"{split}annot"):
            (few / sub).mkdir(parents=True)
        for p in sorted((camvid / split).glob("*.jpg"))[::max(1, len(list((camvid / split).glob('*.jpg'))) // n)][:n]:
            (few / split / p.name).symlink_to(p)
            (few / f"{split}annot" / f"{p.stem}.png").symlink_to(camvid / f"{split}annot" / f"{p.stem}.png")
    (few / "codes.txt").symlink_to(camvid / "codes.txt")
    learn = ql.segmentation_learner(few, size=64, bs=8, progress=False, seed=0)
    learn.fine_tune(2, freeze_epochs=1)
    got = learn.validate()
    counts = torch.bincount(learn.dls.train.targets[learn.dls.train.targets != VOID].long(), minlength=11)
    majority = torch.full_like(learn.dls.valid.targets[:, 0], int(counts.argmax()))
    base = scores(confusion(majority, learn.dls.valid.targets[:, 0], 11))
    assert got["miou"] > base["miou"] + 0.12, (got, base["miou"])
    assert got["pixel_accuracy"] > base["pixel_accuracy"] + 0.1


def test_the_recipe_sections_are_segmentation_learners_keywords() -> None:
    import inspect

    from quicklearn.config.files import load_recipe
    from quicklearn.tasks.segment.recipe import SegmentData, SegmentModel, SegmentTraining, SegmentTransforms

    fields: dict = {}
    for section in (SegmentData, SegmentTransforms, SegmentModel, SegmentTraining):
        assert not set(fields) & set(section.model_fields), "a key appears in two sections"
        fields |= section.model_fields
    fields.pop("path")
    params = {n: p for n, p in inspect.signature(ql.segmentation_learner).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in {"cbs", "progress", "recipe", "path"}}
    assert set(fields) == set(params)
    for name, p in params.items():
        assert fields[name].default == p.default, name
    recipe = load_recipe("segment")
    assert recipe.task == "segment" and recipe.model.decoder == "unet" and recipe.fit.freeze_epochs == 1


# ---- quicklearn check on photos and masks ------------------------------------------------------------------------
def test_check_finds_each_mask_problem_and_a_photo_leak_and_nothing_on_clean_scenes(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "scenes", n_train=6, n_valid=3)
    clean = ql.check(root)  # the task is inferred: photos with a mask folder beside them
    assert clean.task == "segment"
    assert not [f for f in clean.findings if f.kind in ("mask_values", "mask_size", "all_void", "unreadable", "leakage")]

    stray = np.asarray(Image.open(root / "trainannot" / "img000.png")).copy()
    stray[:4, :4] = 7  # codes.txt names 4 values (0-3)
    Image.fromarray(stray, "L").save(root / "trainannot" / "img000.png")
    Image.fromarray(np.full((64, 80), 3, np.uint8), "L").save(root / "valannot" / "img001.png")  # all void
    Image.fromarray(np.zeros((32, 40), np.uint8), "L").save(root / "trainannot" / "img002.png")  # half its photo's size
    shutil.copyfile(root / "train" / "img003.jpg", root / "val" / "img000.jpg")  # the same photo in both splits
    report = ql.check(root, out=tmp_path / "report", progress=False)
    by_kind = {k: [f.items for f in report.of(k)] for k in ("mask_values", "all_void", "mask_size", "leakage")}
    assert by_kind["mask_values"] == [["trainannot/img000.png"]] and "values 7" in report.of("mask_values")[0].detail
    assert by_kind["all_void"] == [["valannot/img001.png"]]
    assert by_kind["mask_size"] == [["trainannot/img002.png", "train/img002.jpg"]]
    assert by_kind["leakage"] == [["train/img003.jpg", "val/img000.jpg"]]
    assert report.exit_code(strict=True) == 2  # leakage and unusable masks fail --strict
    rows = (tmp_path / "report" / "issues.csv").read_text()
    assert all(k in rows for k in ("mask_values", "all_void", "mask_size", "leakage"))
