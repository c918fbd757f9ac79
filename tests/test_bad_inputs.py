"""Bad and unusual input, in Python and on the command line.

The documented behaviour: a file that only pretends to be an image (wrong content, zero bytes) or that fails to
decode (truncated) is skipped with ONE warning that counts such files and names the first few; everything else
works. Unusual but valid images (palette GIF, grayscale, CMYK, 16-bit, alpha) decode to 3 channels. Data that
cannot be used at all raises a `QuicklearnError` subclass whose message names the path; the CLI prints it as one
line with a non-zero exit code and no traceback, unless `--debug` asks for the traceback.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_image
from PIL import Image
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.tasks.vision.images import UnreadableImage, decode_image

pytestmark = pytest.mark.usefixtures("one_thread")


def two_classes(root: Path, n: int = 5) -> Path:
    for c, color in (("cats", (200, 40, 40)), ("dogs", (40, 40, 200))):
        for i in range(n):
            write_image(root / c / f"{c}{i}.png", size=(20 + i, 18), color=color)
    return root


def truncated_jpeg(path: Path, seed: int = 0) -> Path:
    """A real JPEG (noise, so it is not tiny) cut in half: a valid header, no end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format="JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "quicklearn" and r.levelno >= logging.WARNING]


def load(data, **kw) -> ql.DataLoaders:
    return ql.image_dataloaders(data, **{"size": 16, "presize": 18, "num_workers": 0, **kw})


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# ---- files that are skipped -----------------------------------------------------------------------------
def test_truncated_jpeg_is_skipped_with_one_warning(tmp_path: Path, caplog) -> None:
    root = two_classes(tmp_path / "data")
    bad = truncated_jpeg(root / "cats" / "half.jpg")
    with pytest.raises(UnreadableImage, match="half.jpg"):
        decode_image(bad)  # neither torchvision nor Pillow returns a half-decoded image
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        dls = load(root)
    (msg,) = warnings_of(caplog)
    assert msg.startswith("skipped 1 unreadable image(s):") and str(bad) in msg
    assert bad not in dls.train_paths + dls.valid_paths
    assert dls.train.n + dls.valid.n == 10 and dls.vocab.classes == ("cats", "dogs")
    assert next(iter(dls.train))[0].shape[1:] == (3, 16, 16)  # everything else works


def test_many_unreadable_files_one_warning_counts_them_and_names_the_first_few(tmp_path: Path, caplog) -> None:
    root = two_classes(tmp_path / "data")
    bad = [truncated_jpeg(root / "dogs" / f"cut{i}.jpg", seed=i) for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        dls = load(root)
    (msg,) = warnings_of(caplog)
    assert msg.startswith("skipped 5 unreadable image(s):") and msg.endswith("and 2 more")
    assert sum(str(b) in msg for b in bad) == 3
    assert dls.train.n + dls.valid.n == 10


def test_zero_byte_and_fake_image_files_are_skipped_with_one_warning(tmp_path: Path, caplog) -> None:
    root = two_classes(tmp_path / "data")
    empty = root / "cats" / "empty.jpg"
    empty.write_bytes(b"")
    fake = root / "dogs" / "page.png"
    fake.write_text("<!doctype html><title>404 Not Found</title>")
    (root / "dogs" / "README.txt").write_text("not an image, no image extension")
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        dls = load(root)
    (msg,) = warnings_of(caplog)
    assert "skipped 2 file(s) (not an image despite its extension)" in msg
    assert str(empty) in msg and str(fake) in msg and "README" not in msg
    assert dls.train.n + dls.valid.n == 10
    with pytest.raises(UnreadableImage, match="empty file"):
        decode_image(empty)
    with pytest.raises(UnreadableImage, match="page.png"):
        decode_image(fake)


def test_a_class_whose_images_are_all_unreadable_is_refused_by_name(tmp_path: Path, caplog) -> None:
    root = two_classes(tmp_path / "data")
    for i in range(5):
        truncated_jpeg(root / "birds" / f"b{i}.jpg", seed=i)
    with caplog.at_level(logging.WARNING, logger="quicklearn"), \
            pytest.raises(ql.DataError, match="class 'birds' has no training items") as e:
        load(root)
    assert str(root) in str(e.value)
    assert any("skipped 5 unreadable image(s)" in m for m in warnings_of(caplog))


# ---- unusual images that must decode to 3 channels ------------------------------------------------------
RED, BLUE = (200, 30, 30), (30, 60, 210)


def halves(w: int = 24, h: int = 16) -> np.ndarray:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = RED
    arr[:, w // 2 :] = BLUE
    return arr


def assert_red_blue(img: torch.Tensor, tol: int) -> None:
    assert img.shape == (3, 16, 24) and img.dtype == torch.uint8
    left, right = img[:, 8, 3].int(), img[:, 8, 20].int()
    assert (left - torch.tensor(RED)).abs().max() <= tol, left
    assert (right - torch.tensor(BLUE)).abs().max() <= tol, right


def test_palette_gif_decodes_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "p.gif"
    Image.fromarray(halves()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(path)
    with Image.open(path) as im:
        assert im.mode == "P"
    assert_red_blue(decode_image(path), tol=0)


def test_palette_png_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "t.png"
    im = Image.fromarray(halves()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    blue_index = im.getpixel((20, 8))
    im.save(path, transparency=blue_index)
    img = decode_image(path)
    assert img[:, 8, 3].tolist() == list(RED) and img[:, 8, 20].tolist() == [255, 255, 255]


def test_cmyk_jpeg_decodes_to_the_right_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(halves()).convert("CMYK").save(path, quality=95)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    assert_red_blue(decode_image(path), tol=8)  # not inverted, not channel-swapped


def test_grayscale_decodes_to_three_equal_channels(tmp_path: Path) -> None:
    for ext in ("png", "jpg"):
        path = write_image(tmp_path / f"g.{ext}", size=(24, 16), color=(255, 255, 255), mode="L")
        img = decode_image(path)
        assert img.shape == (3, 16, 24)
        assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])
        assert img[0, 8, 0] < 20 and img[0, 8, -1] > 230  # the gradient survives
        assert decode_image(path, channels=1).shape == (1, 16, 24)


def test_16_bit_png_is_scaled_to_8_bits(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    ramp = np.tile(np.linspace(0, 65535, 24).astype(np.uint16), (16, 1))
    Image.fromarray(ramp).save(path)
    with Image.open(path) as im:
        assert im.mode == "I;16"
    img = decode_image(path)
    assert img.shape == (3, 16, 24) and img.dtype == torch.uint8
    row = img[0, 0].int()
    assert row[0] == 0 and row[-1] == 255 and (row.diff() >= 0).all()  # full range kept, not clipped to white
    assert len(row.unique()) > 20
    assert torch.equal(img[0], img[2])


def test_rgba_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((16, 24, 4), np.uint8)
    rgba[..., :3] = RED
    rgba[:, :12, 3] = 255  # left half opaque, right half fully transparent
    rgba[:, 12:, :3] = 0  # hidden black under the transparency must not show
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img = decode_image(path)
    assert img.shape == (3, 16, 24)
    assert img[:, 8, 3].tolist() == list(RED) and img[:, 8, 20].tolist() == [255, 255, 255]
    la = tmp_path / "la.png"
    Image.fromarray(rgba, "RGBA").convert("LA").save(la)
    assert decode_image(la)[:, 8, 20].tolist() == [255, 255, 255]


def test_a_folder_of_mixed_modes_loads_without_warnings(tmp_path: Path, caplog) -> None:
    root = tmp_path / "data"
    for c in ("x", "y"):
        write_image(root / c / "rgb.jpg")
        write_image(root / c / "gray.png", mode="L")
        write_image(root / c / "pal.gif", mode="P")
        write_image(root / c / "cmyk.jpg", mode="CMYK")
        write_image(root / c / "rgba.png", mode="RGBA")
        Image.fromarray(np.full((20, 30), 40000, np.uint16)).save(root / c / "deep.png")
        write_image(root / c / "pic.webp", fmt="WEBP")
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        dls = load(root, splitter=ql.IndexSplitter([0, 7]))
    assert warnings_of(caplog) == []
    assert dls.train.n + dls.valid.n == 14
    assert dls.train.images.shape == (12, 3, 18, 18)


# ---- data that cannot be used: Python ------------------------------------------------------------------
def test_empty_class_folder_is_ignored(tmp_path: Path) -> None:
    root = two_classes(tmp_path / "data")
    (root / "horses").mkdir()
    (root / "horses" / "nested").mkdir()
    dls = load(root)
    assert dls.vocab.classes == ("cats", "dogs")


def test_single_class_folder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(4):
        write_image(root / "cats" / f"{i}.png")
    with pytest.raises(ql.DataError, match=r"only one class \('cats'\)") as e:
        load(root)
    assert str(root) in str(e.value) and isinstance(e.value, ql.QuicklearnError)


def test_folder_without_images(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "notes.txt").write_text("hello")
    (root / "broken.jpg").write_text("not really")
    with pytest.raises(ql.DataError, match="no image files found") as e:
        load(root)
    assert str(root) in str(e.value)


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ql.DataError, match="no such folder") as e:
        load(missing)
    assert str(missing) in str(e.value)
    with pytest.raises(ql.DataError, match="no such file") as e:
        ql.image_dataloaders(tmp_path / "nowhere.csv")
    assert str(tmp_path / "nowhere.csv") in str(e.value)


def test_a_single_image_file_instead_of_a_folder(tmp_path: Path) -> None:
    img = write_image(tmp_path / "one.png")
    with pytest.raises(ql.DataError, match="is a file, not a folder") as e:
        load(img)
    assert str(img) in str(e.value)


def test_empty_csv(tmp_path: Path) -> None:
    empty = tmp_path / "labels.csv"
    empty.write_bytes(b"")
    with pytest.raises(ql.DataError, match="cannot be read as CSV") as e:
        load(empty)
    assert str(empty) in str(e.value)


def test_csv_whose_paths_are_all_missing(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("file,label\nimgs/a.png,cat\nimgs/b.png,dog\n")
    with pytest.raises(ql.DataError, match="none of the paths in column 'file'") as e:
        load(tmp_path / "labels.csv")
    assert str(tmp_path / "labels.csv") in str(e.value) and str(tmp_path) in str(e.value)


def test_csv_with_empty_labels(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / f"{i}.png")
    (tmp_path / "labels.csv").write_text("file,label\n0.png,cat\n1.png,\n2.png,dog\n")
    with pytest.raises(ql.DataError, match=r"1 item\(s\) have no label, first .*1\.png"):
        load(tmp_path / "labels.csv", y="label")


# ---- data that cannot be used: the CLI -----------------------------------------------------------------
def _bad_data(kind: str, root: Path) -> tuple[Path, str]:
    """(the --data path, a phrase the one-line error must contain)."""
    if kind == "missing":
        return root / "nowhere", "no such"
    if kind == "no-images":
        (root / "d" / "sub").mkdir(parents=True)
        (root / "d" / "sub" / "fake.jpg").write_text("text")
        return root / "d", "no image files found"
    if kind == "single-class":
        for i in range(3):
            write_image(root / "d" / "cats" / f"{i}.png")
        return root / "d", "only one class"
    if kind == "empty-csv":
        (root / "d.csv").write_bytes(b"")
        return root / "d.csv", "cannot be read as CSV"
    if kind == "all-unreadable":
        for c in ("cats", "dogs"):
            for i in range(3):
                truncated_jpeg(root / "d" / c / f"{i}.jpg", seed=i)
        return root / "d", "no training items"
    raise AssertionError(kind)


BAD = ["missing", "no-images", "single-class", "empty-csv", "all-unreadable"]


def assert_one_line_error(r, path: Path, phrase: str) -> None:
    assert r.exit_code != 0, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), r.stderr
    assert str(path) in errors[0] and phrase in errors[0], errors[0]


@pytest.mark.parametrize("kind", BAD)
def test_show_batch_on_bad_data_is_one_line(kind: str, tmp_path: Path) -> None:
    data, phrase = _bad_data(kind, tmp_path)
    r = invoke("show-batch", "--data", data, "--out", tmp_path / "b.png", "--size", 16)
    assert_one_line_error(r, data, phrase)
    assert not (tmp_path / "b.png").exists()


@pytest.mark.parametrize("kind", BAD)
def test_train_on_bad_data_is_one_line(kind: str, tmp_path: Path) -> None:
    data, phrase = _bad_data(kind, tmp_path)
    out = tmp_path / "run"
    r = invoke("train", "--data", data, "--weights", "none", "--epochs", 1, "--size", 16, "--out", out)
    assert_one_line_error(r, data, phrase)
    assert not (out / "model.safetensors").exists()


def test_train_on_a_file_of_unknown_kind(tmp_path: Path) -> None:
    img = write_image(tmp_path / "one.png")
    r = invoke("train", "--data", img, "--weights", "none", "--epochs", 1, "--size", 16, "--out", tmp_path / "run")
    assert_one_line_error(r, img, "cannot tell the task")


def test_show_batch_skips_unreadable_files_and_still_works(tmp_path: Path, caplog) -> None:
    root = two_classes(tmp_path / "data", n=6)
    bad = truncated_jpeg(root / "dogs" / "cut.jpg")
    (root / "cats" / "zero.png").write_bytes(b"")
    out = tmp_path / "b.png"
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        r = invoke("show-batch", "--data", root, "--out", out, "--size", 16, "--n", 4)
    assert r.exit_code == 0, r.output
    assert "10 train / 2 valid images" in r.stdout
    with Image.open(out) as im:
        assert im.format == "PNG"
    msgs = warnings_of(caplog)
    assert any("skipped 1 unreadable image(s)" in m and str(bad) in m for m in msgs)
    assert any("skipped 1 file(s)" in m and "zero.png" in m for m in msgs)


def test_debug_keeps_the_exception(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    r = invoke("show-batch", "--data", missing, "--debug")
    assert r.exit_code != 0
    assert isinstance(r.exception, ql.DataError) and str(missing) in str(r.exception)
    assert r.exc_info is not None and r.exc_info[2] is not None  # the traceback is there, not swallowed


def test_debug_prints_the_traceback_from_the_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "quicklearn"
    assert exe.exists(), "the quicklearn console script is not installed"
    missing = tmp_path / "nowhere"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    debug = subprocess.run([str(exe), "show-batch", "--data", str(missing), "--debug"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "quicklearn.core.errors.DataError" in debug.stderr and str(missing) in debug.stderr
    plain = subprocess.run([str(exe), "show-batch", "--data", str(missing)], capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == f"error: {missing}: no such file or folder. Check --data."
