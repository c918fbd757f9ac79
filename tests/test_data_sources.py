"""The first steps of the vision DataBlock, one at a time: items, labels, splitters and item transforms.

Each step runs on real files written to tmp_path (or on plain tensors); nothing is mocked.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_image
from PIL import Image

import quicklearn as ql
from quicklearn.data.labels import Targets, get_targets
from quicklearn.data.sources import ItemSource, read_table
from quicklearn.data.split import auto_splitter, check_split
from quicklearn.tasks.vision.sources import csv_source, folder_source

pytestmark = pytest.mark.usefixtures("one_thread")


def skip_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "quicklearn" and "skipped" in r.getMessage()]


# ---- items: a folder --------------------------------------------------------------------------------
def test_folder_items_are_found_recursively_by_extension_and_content(tmp_path: Path, caplog) -> None:
    root = tmp_path / "data"
    good = [
        write_image(root / "a" / "x.png"),
        write_image(root / "a" / "deep" / "nested" / "y.JPG", fmt="JPEG"),  # upper-case extension, two levels down
        write_image(root / "b" / "w.gif", mode="P"),
        write_image(root / "b" / "z.jpeg"),
    ]
    (root / "b" / "notes.txt").write_text("not an image")
    (root / "b" / "fake.jpg").write_text("<html>this is a web page saved as .jpg</html>")
    (root / "b" / "empty.jpg").write_bytes(b"")
    write_image(root / ".thumbnails" / "t.png")  # hidden folders are not data
    write_image(root / "a" / "._x.png")  # nor are hidden files (macOS resource forks)

    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        src = folder_source(root)

    # a fixed walk order whatever the file system returns: a folder's files (sorted), then its sub-folders (sorted)
    assert src.paths == good
    assert src.root == root and src.frame is None and len(src) == 4
    assert sorted(src.skipped) == sorted([root / "b" / "fake.jpg", root / "b" / "empty.jpg"])
    (msg,) = skip_warnings(caplog)  # one warning for all of them
    assert "skipped 2 file(s)" in msg
    assert str(root / "b" / "fake.jpg") in msg and str(root / "b" / "empty.jpg") in msg
    assert "notes.txt" not in msg  # no image extension: not a candidate at all, silently ignored


def test_many_skipped_files_are_counted_and_only_the_first_few_named(tmp_path: Path, caplog) -> None:
    root = tmp_path / "data"
    for c in ("a", "b"):
        write_image(root / c / "ok.png")
    fakes = [root / "a" / f"fake{i}.png" for i in range(5)]
    for f in fakes:
        f.write_text("not a png")
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        src = folder_source(root)
    assert len(src) == 2 and len(src.skipped) == 5
    (msg,) = skip_warnings(caplog)
    assert "skipped 5 file(s)" in msg and "and 2 more" in msg
    assert sum(str(f) in msg for f in fakes) == 3


def test_looks_like_image_checks_magic_bytes(tmp_path: Path) -> None:
    from quicklearn.tasks.vision.images import looks_like_image

    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")):
        assert looks_like_image(write_image(tmp_path / f"i.{ext}", fmt=fmt)), fmt
    png_named_jpg = write_image(tmp_path / "really_a_png.jpg", fmt="PNG")
    assert looks_like_image(png_named_jpg)  # content decides the format, the extension only makes it a candidate
    jpg_named_txt = write_image(tmp_path / "photo.txt", fmt="JPEG")
    assert not looks_like_image(jpg_named_txt)
    (tmp_path / "text.png").write_text("hello")
    assert not looks_like_image(tmp_path / "text.png")
    assert not looks_like_image(tmp_path / "missing.png")


# ---- items: a CSV or DataFrame ----------------------------------------------------------------------
def _csv_dataset(root: Path, n: int = 4) -> Path:
    rows = []
    for i in range(n):
        for c in ("cat", "dog"):
            write_image(root / "imgs" / f"{c}{i}.png", color=(200, 20, 20) if c == "cat" else (20, 20, 200))
            rows.append({"file": f"imgs/{c}{i}.png", "label": c})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


def test_csv_paths_are_relative_to_the_csvs_folder(tmp_path: Path, monkeypatch) -> None:
    csv_path = _csv_dataset(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)  # not the CSV's folder: relative paths must not depend on the cwd
    src = csv_source(csv_path)
    assert src.root == tmp_path / "ds"
    assert src.paths[0] == tmp_path / "ds" / "imgs" / "cat0.png"
    assert all(p.is_file() for p in src.paths) and len(src) == 8
    assert list(src.frame.columns) == ["file", "label"] and len(src.frame) == 8


def test_csv_rows_whose_image_is_missing_are_skipped_and_the_frame_stays_aligned(tmp_path: Path, caplog) -> None:
    csv_path = _csv_dataset(tmp_path)
    df = pd.read_csv(csv_path)
    df.loc[len(df)] = {"file": "imgs/gone.png", "label": "cat"}
    (tmp_path / "imgs" / "notes.png").write_text("exists, but is not an image")
    df.loc[len(df)] = {"file": "imgs/notes.png", "label": "dog"}
    df = df.iloc[[8, 0, 9, 1]].reset_index(drop=True)
    df.to_csv(csv_path, index=False)
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        src = csv_source(csv_path)
    assert [p.name for p in src.paths] == ["cat0.png", "dog0.png"]
    assert src.frame["file"].tolist() == ["imgs/cat0.png", "imgs/dog0.png"]  # row i of the frame is path i
    (msg,) = skip_warnings(caplog)
    assert "skipped 2 file(s) (missing or not an image)" in msg and "gone.png" in msg and "notes.png" in msg


def test_dataframe_source_with_root_and_absolute_paths(tmp_path: Path) -> None:
    csv_path = _csv_dataset(tmp_path)
    df = pd.read_csv(csv_path)
    src = csv_source(df, root=tmp_path)
    assert src.paths[0] == tmp_path / "imgs" / "cat0.png" and len(src) == 8
    df["file"] = [str(tmp_path / f) for f in df["file"]]
    src = csv_source(df)  # absolute paths need no root
    assert src.paths[1] == tmp_path / "imgs" / "dog0.png"


def test_csv_image_column_is_found_or_named(tmp_path: Path) -> None:
    csv_path = _csv_dataset(tmp_path)
    df = pd.read_csv(csv_path)
    df.insert(0, "id", range(len(df)))
    df.to_csv(csv_path, index=False)
    assert csv_source(csv_path).paths[0].name == "cat0.png"  # found among other columns
    assert csv_source(csv_path, path_col="file").paths[0].name == "cat0.png"
    with pytest.raises(ql.DataError, match="no column 'path'"):
        csv_source(csv_path, path_col="path")
    df[["id", "label"]].to_csv(tmp_path / "no_paths.csv", index=False)
    with pytest.raises(ql.DataError, match="no column of image paths") as e:
        csv_source(tmp_path / "no_paths.csv")
    assert str(tmp_path / "no_paths.csv") in str(e.value)


def test_read_table_sniffs_the_delimiter_and_reads_one_column_files(tmp_path: Path) -> None:
    (tmp_path / "semi.csv").write_text("file;label\na.png;cat\nb.png;dog\n")
    (tmp_path / "tabs.tsv").write_text("file\tlabel\na.png\tcat\n")
    (tmp_path / "one.csv").write_text("name\nx.png\ny.png\n")  # no delimiter at all: one column, not split on 'n'
    assert read_table(tmp_path / "semi.csv").columns.tolist() == ["file", "label"]
    assert read_table(tmp_path / "tabs.tsv").values.tolist() == [["a.png", "cat"]]
    one = read_table(tmp_path / "one.csv")
    assert one.columns.tolist() == ["name"] and one["name"].tolist() == ["x.png", "y.png"]
    (tmp_path / "latin.csv").write_bytes("file,label\nb.png,caf\xe9\n".encode("latin-1"))
    assert read_table(tmp_path / "latin.csv")["label"].tolist() == ["caf\xe9"]


# ---- labels -----------------------------------------------------------------------------------------
def test_parent_folder_labels_and_sorted_vocab(tiny_folder: Path) -> None:
    src = folder_source(tiny_folder)
    t = get_targets(src)
    assert t.kind == "single" and t.vocab.classes == ("blue", "green", "red") and t.n_out == 3
    assert t.values.dtype == torch.int64
    for p, v in zip(src.paths, t.values.tolist()):
        assert t.vocab.classes[v] == p.parent.name == ql.parent_label(p)


def test_vocab_is_sorted_and_independent_of_item_order() -> None:
    a = ql.Vocab.from_labels(["dog", "cat", "dog", "bird"])
    b = ql.Vocab.from_labels(["bird", "dog", "cat"])
    assert a == b and a.classes == ("bird", "cat", "dog") and len(a) == 3
    assert a.index("dog") == 2
    nums = ql.Vocab.from_labels([7, 3, 3, 10])
    assert nums.classes == ("10", "3", "7") and nums.index(3) == 1  # labels are strings: int 3 means '3'
    with pytest.raises(ValueError):
        a.index("fish")


def _label_csv(tmp_path: Path, column: list) -> ItemSource:
    rows = []
    for i, value in enumerate(column):
        write_image(tmp_path / f"{i}.png")
        rows.append({"image": f"{i}.png", "y": value})
    pd.DataFrame(rows).to_csv(tmp_path / "data.csv", index=False)
    return csv_source(tmp_path / "data.csv")


def test_csv_column_single_label(tmp_path: Path) -> None:
    t = get_targets(_label_csv(tmp_path, ["dog", "cat", "dog", "bird"]), "y")
    assert t.kind == "single" and t.vocab.classes == ("bird", "cat", "dog")
    assert t.values.tolist() == [2, 1, 2, 0]


def test_integer_column_is_single_label(tmp_path: Path) -> None:
    t = get_targets(_label_csv(tmp_path, [3, 7, 7, 3]), "y")
    assert t.kind == "single" and t.vocab.classes == ("3", "7") and t.values.tolist() == [0, 1, 1, 0]


def test_delimited_column_is_multi_label_with_multi_hot_targets(tmp_path: Path) -> None:
    t = get_targets(_label_csv(tmp_path, ["cat dog", "dog", "bird cat", "cat"]), "y")
    assert t.kind == "multi" and t.vocab.classes == ("bird", "cat", "dog") and t.n_out == 3
    assert t.values.dtype == torch.float32
    assert t.values.tolist() == [[0, 1, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]]


def test_multi_label_with_an_explicit_delimiter(tmp_path: Path) -> None:
    t = get_targets(_label_csv(tmp_path, ["sea lion;seal", "seal", "sea lion"]), "y", label_delim=";")
    assert t.kind == "multi" and t.vocab.classes == ("sea lion", "seal")  # the space is part of a label here
    assert t.values.tolist() == [[1, 1], [0, 1], [1, 0]]


def test_float_column_is_regression(tmp_path: Path) -> None:
    t = get_targets(_label_csv(tmp_path, [0.5, 1.25, 3.0, 2.75]), "y")
    assert t.kind == "regression" and t.vocab is None and t.n_out == 1
    assert t.values.dtype == torch.float32 and t.values.tolist() == [0.5, 1.25, 3.0, 2.75]


def test_missing_target_column_suggests_the_close_name(tmp_path: Path) -> None:
    for i in range(2):
        write_image(tmp_path / f"{i}.png")
    pd.DataFrame({"image": ["0.png", "1.png"], "label": ["a", "b"]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ql.DataError, match=r"target column 'lable' not found; columns are \['image', 'label'\]\. Did you mean 'label'"):
        get_targets(csv_source(tmp_path / "d.csv"), "lable")


def test_regex_label_on_the_file_name(tiny_folder: Path) -> None:
    src = folder_source(tiny_folder)
    by_regex = get_targets(src, ql.RegexLabel(r"^([a-z]+)_\d+\.png$"))
    by_string = get_targets(src, r"^([a-z]+)_\d+")  # a regex string given as y= on a folder
    by_folder = get_targets(src)
    assert by_regex.vocab == by_string.vocab == by_folder.vocab
    assert torch.equal(by_regex.values, by_folder.values) and torch.equal(by_string.values, by_folder.values)
    assert ql.RegexLabel(r"_(\d+)\.")(Path("x/red_12.png")) == "12"


def test_regex_that_does_not_match_names_the_file(tiny_folder: Path) -> None:
    with pytest.raises(ql.DataError, match=r"blue_0\.png: file name does not match the label pattern") as e:
        get_targets(folder_source(tiny_folder), r"^(\d+)\.png$")
    assert isinstance(e.value, ql.QuicklearnError)
    with pytest.raises(ql.DataError, match="one \\(group\\)"):
        ql.RegexLabel(r"red_\d")(Path("red_0.png"))  # matches, but has no group to return


def test_any_callable_labels_the_items(tiny_folder: Path) -> None:
    src = folder_source(tiny_folder)
    t = get_targets(src, lambda p: "wide" if Image.open(p).size[0] >= 27 else "narrow")
    assert t.vocab.classes == ("narrow", "wide")
    assert t.values.sum().item() == 9  # widths 24..29 per class: 27, 28, 29 are wide


def test_a_folder_has_no_columns(tiny_folder: Path) -> None:
    with pytest.raises(ql.DataError, match="'label'.*a folder of images has no columns"):
        get_targets(folder_source(tiny_folder), "label")


# ---- splitters --------------------------------------------------------------------------------------
def _fake_source(labels: list[int]) -> tuple[ItemSource, Targets]:
    """Splitters only look at paths and targets; the files need not exist."""
    n_cls = max(labels) + 1
    src = ItemSource([Path(f"/d/{c}/{i}.png") for i, c in enumerate(labels)], Path("/d"))
    return src, Targets("single", torch.tensor(labels), ql.Vocab(tuple(str(c) for c in range(n_cls))))


def test_random_splitter_is_reproducible_and_disjoint() -> None:
    src, t = _fake_source([0, 1] * 25)
    tr, va = ql.RandomSplitter(0.2, seed=3)(src, t)
    assert (tr, va) == ql.RandomSplitter(0.2, seed=3)(src, t)
    assert len(va) == 10 and sorted(tr + va) == list(range(50)) and not set(tr) & set(va)
    assert va != ql.RandomSplitter(0.2, seed=4)(src, t)[1]
    assert len(ql.RandomSplitter(0.5)(src, t)[1]) == 25
    with pytest.raises(ql.DataError, match="valid_pct=1.5"):
        ql.RandomSplitter(1.5)(src, t)


def test_stratified_splitter_keeps_class_shares() -> None:
    labels = [0] * 10 + [1] * 20 + [2] * 30
    src, t = _fake_source(labels)
    tr, va = ql.StratifiedSplitter(0.2, seed=0)(src, t)
    per_class = np.bincount(t.values[va].numpy(), minlength=3)
    assert per_class.tolist() == [2, 4, 6]  # 20% of each class, exactly
    assert sorted(tr + va) == list(range(60))
    assert (tr, va) == ql.StratifiedSplitter(0.2, seed=0)(src, t)
    assert va != ql.StratifiedSplitter(0.2, seed=1)(src, t)[1]
    single = _fake_source([0] * 5 + [1])  # a class of one image stays in train (it cannot be in both)
    tr1, va1 = ql.StratifiedSplitter(0.2)(*single)
    assert 5 in tr1 and len(va1) == 1


def test_folder_splitter_is_auto_detected_for_train_and_valid(digits_folder: Path) -> None:
    src = folder_source(digits_folder)
    sp = auto_splitter(src)
    assert isinstance(sp, ql.FolderSplitter)
    tr, va = sp(src, None)
    assert len(tr) == 320 and len(va) == 80
    assert all(src.paths[i].relative_to(digits_folder).parts[0] == "train" for i in tr)
    assert all(src.paths[i].relative_to(digits_folder).parts[0] == "valid" for i in va)


def test_folder_splitter_is_auto_detected_for_train_and_val(hymenoptera: Path) -> None:
    src = folder_source(hymenoptera)
    sp = auto_splitter(src)
    assert isinstance(sp, ql.FolderSplitter)
    tr, va = sp(src, None)
    assert (len(tr), len(va)) == (245, 153)


def test_folder_splitter_leaves_out_an_unlabelled_test_folder(mnist_tiny: Path) -> None:
    src = folder_source(mnist_tiny)
    assert any(p.parent.name == "test" for p in src.paths)
    tr, va = auto_splitter(src)(src, None)
    kept = {src.paths[i].relative_to(mnist_tiny).parts[0] for i in tr + va}
    assert kept == {"train", "valid"} and len(tr) + len(va) == len(src) - 20  # the 20 test/ images are in neither


def test_no_train_valid_folders_means_stratified(tiny_folder: Path) -> None:
    assert isinstance(auto_splitter(folder_source(tiny_folder), 0.3, 7), ql.StratifiedSplitter)
    assert auto_splitter(folder_source(tiny_folder), 0.3, 7) == ql.StratifiedSplitter(0.3, 7)


def test_column_splitter_on_a_boolean_is_valid_column(tmp_path: Path) -> None:
    for i in range(6):
        write_image(tmp_path / f"{i}.png")
    pd.DataFrame({"image": [f"{i}.png" for i in range(6)], "label": list("ababab"),
                  "is_valid": [False, False, True, False, True, False]}).to_csv(tmp_path / "d.csv", index=False)
    src = csv_source(tmp_path / "d.csv")
    sp = auto_splitter(src)
    assert sp == ql.ColumnSplitter("is_valid")
    assert sp(src, None) == ([0, 1, 3, 5], [2, 4])
    src.frame["is_valid"] = src.frame["is_valid"].astype(object)
    src.frame.loc[3, "is_valid"] = "maybe"
    with pytest.raises(ql.DataError, match="row 3 has 'maybe'"):
        sp(src, None)
    with pytest.raises(ql.DataError, match="split column 'fold' not found"):
        ql.ColumnSplitter("fold")(src, None)


def test_index_splitter() -> None:
    src, t = _fake_source([0, 1] * 4)
    assert ql.IndexSplitter([5, 1, 1])(src, t) == ([0, 2, 3, 4, 6, 7], [1, 5])
    for bad in ([0, 8], [-1]):  # -1 would make item 7 both train and validate
        with pytest.raises(ql.DataError, match=f"valid index {bad[-1]} is out of range.*8 items"):
            ql.IndexSplitter(bad)(src, t)


def test_check_split_refuses_a_class_absent_from_train() -> None:
    src, t = _fake_source([0, 0, 1, 1, 2, 2])
    t = Targets("single", t.values, ql.Vocab(("ants", "bees", "wasps")))
    with pytest.raises(ql.DataError, match="class 'wasps' has no training items") as e:
        check_split([0, 1, 2, 3], [4, 5], t, "DATA")
    assert "DATA" in str(e.value)


def test_check_split_refuses_an_empty_validation_set_and_warns_about_a_missing_class(caplog) -> None:
    src, t = _fake_source([0, 0, 1, 1, 2, 2])
    with pytest.raises(ql.DataError, match="validation set is empty"):
        check_split([0, 1, 2, 3, 4, 5], [], t, "DATA")
    with pytest.raises(ql.DataError, match="no training items"):
        check_split([], [0, 1], t, "DATA")
    with caplog.at_level(logging.WARNING, logger="quicklearn"):
        check_split([0, 1, 2, 3, 4], [0, 2], t, "DATA")
    (msg,) = [r.getMessage() for r in caplog.records if r.name == "quicklearn"]
    assert "class '2' has no validation items" in msg


# ---- item transforms --------------------------------------------------------------------------------
def _stripes(h: int = 20, w: int = 40) -> torch.Tensor:
    """Red | green | blue vertical bands: left quarter, middle half, right quarter."""
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    img[0, :, : w // 4] = 255
    img[1, :, w // 4 : 3 * w // 4] = 255
    img[2, :, 3 * w // 4 :] = 255
    return img


def test_resize_crop_fills_the_square_from_the_center() -> None:
    img = _stripes(20, 40)
    out = ql.Resize(20, "crop")(img)  # height already 20: the middle 20 columns, no resampling
    assert out.shape == (3, 20, 20) and out.dtype == torch.uint8
    assert torch.equal(out, img[:, :, 10:30])  # all green: the red and blue sides are cropped away
    small = ql.Resize(16, "crop")(img)
    assert small.shape == (3, 16, 16)
    assert small[1].min() > 200 and small[0].max() < 40 and small[2].max() < 40
    tall = ql.Resize(10, "crop")(_stripes(20, 40).transpose(1, 2).contiguous())  # tall, bands across: cropped top and bottom
    assert tall.shape == (3, 10, 10) and tall[1].min() > 200


def test_resize_pad_keeps_the_image_whole_with_zero_borders() -> None:
    img = torch.full((3, 20, 40), 255, dtype=torch.uint8)
    out = ql.Resize(16, "pad")(img)  # 40x20 -> 16x8 centered in 16x16
    assert out.shape == (3, 16, 16)
    assert (out[:, :4] == 0).all() and (out[:, 12:] == 0).all()  # black bars above and below
    assert (out[:, 4:12] == 255).all()  # the whole image, nothing cropped
    stripes = ql.Resize(16, "pad")(_stripes())
    assert stripes[0, 8, 0] > 200 and stripes[2, 8, 15] > 200 and stripes[1, 8, 8] > 200


def test_resize_squish_keeps_all_content() -> None:
    out = ql.Resize(16, "squish")(_stripes(20, 40))
    assert out.shape == (3, 16, 16)
    assert (out[0, :, :3] > 200).all() and (out[2, :, -3:] > 200).all()  # both sides survive
    assert (out[1, :, 5:11] > 200).all()
    assert (out > 0).any(0).all()  # no empty (padded) pixel anywhere


def test_resize_modes_on_a_square_image_agree_and_bad_mode_is_refused() -> None:
    img = torch.randint(0, 256, (3, 30, 30), dtype=torch.uint8)
    outs = [ql.Resize(16, m)(img) for m in ("crop", "pad", "squish")]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[1], outs[2])
    assert torch.equal(ql.Resize(30, "crop")(img), img)  # no-op at the same size
    with pytest.raises(ValueError, match="unknown resize mode 'fit'"):
        ql.Resize(16, "fit")(img)  # type: ignore[arg-type]


def test_resize_keeps_a_single_channel() -> None:
    assert ql.Resize(8, "pad")(torch.full((1, 10, 20), 9, dtype=torch.uint8)).shape == (1, 8, 8)


def test_center_crop() -> None:
    img = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    out = ql.CenterCrop(10)(img)
    assert torch.equal(out, img[:, 5:15, 10:20])
    up = ql.CenterCrop(24)(img)  # smaller than the crop: resized up first
    assert up.shape == (3, 24, 24) and torch.equal(up, ql.Resize(24, "crop")(img))
    assert not ql.CenterCrop(10).random and not ql.Resize(10).random


def test_random_resized_crop_size_and_seeded_randomness() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=g)
    rrc = ql.RandomResizedCrop(16)
    assert rrc.random
    a = rrc(img, random.Random(1))
    assert a.shape == (3, 16, 16) and a.dtype == torch.uint8
    assert torch.equal(a, rrc(img, random.Random(1)))  # same seed, same crop
    outs = [rrc(img, random.Random(s)) for s in range(6)]
    assert len({o.numpy().tobytes() for o in outs}) == 6  # different seeds, different crops
    rng = random.Random(5)
    assert not torch.equal(rrc(img, rng), rrc(img, rng))  # one stream: successive crops differ
    full = ql.RandomResizedCrop(16, scale=(1.0, 1.0), ratio=(64 / 48, 64 / 48))(img, random.Random(0))
    assert torch.equal(full, ql.Resize(16, "squish")(img))  # the whole image when scale and ratio leave no choice
