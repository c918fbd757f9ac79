"""`quicklearn check` (issue 23) on small generated cases with known problems: what is found, and what is not.

Images: real hymenoptera photos (a few per class, 64 px) with planted copies, a hidden folder, a truncated file and an
empty class; tables: generated rows with a planted leak column and copied rows; texts: a slice of imdb-sample with
planted copies and an empty review. The embedding checks use the real offline backbone and encoder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED, _need
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("cleanlab")
pytest.importorskip("sklearn")

SMALL = {"transforms.size": 160}


def _photos(src: Path, dest: Path, per_class: int) -> None:
    for split, n in (("train", per_class), ("val", per_class // 2)):
        for cls in ("ants", "bees"):
            (dest / split / cls).mkdir(parents=True)
            for p in sorted((src / split / cls).glob("*.jpg"))[:n]:
                shutil.copy(p, dest / split / cls / p.name)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, env) -> tuple[Path, Path]:
    """(a clean copy of 42 hymenoptera photos, the same with planted problems)."""
    src = _need(SHARED / "hymenoptera")
    base = tmp_path_factory.mktemp("check-photos")
    clean, dirty = base / "clean", base / "dirty"
    _photos(src, clean, 14)
    shutil.copytree(clean, dirty)
    train_ants = sorted((dirty / "train" / "ants").glob("*.jpg"))
    shutil.copy(train_ants[0], dirty / "val" / "ants" / "copy_of_train.jpg")  # exact leak
    with Image.open(train_ants[1]) as im:  # near leak: resized and re-encoded
        small = im.convert("RGB").resize((im.width // 2, im.height // 2))
        small.save(dirty / "val" / "ants" / "resized.jpg", quality=70)
    hidden = dirty / "train" / ".ipynb_checkpoints"
    hidden.mkdir()
    shutil.copy(train_ants[2], hidden / "x-checkpoint.jpg")
    (dirty / "train" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    data = train_ants[3].read_bytes()
    (dirty / "train" / "bees" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (dirty / "train" / "wasps").mkdir()  # an empty class
    for k, p in enumerate(sorted((dirty / "train" / "bees").glob("*.jpg"))[:2]):  # bees labelled as ants
        p.rename(dirty / "train" / "ants" / f"flipped_{k}.jpg")
    (dirty / "train" / "bees" / "notes.txt").write_text("not a photo")
    Image.new("RGB", (20, 16), (90, 120, 30)).save(dirty / "train" / "bees" / "tiny.png")
    return clean, dirty


@pytest.fixture(scope="module")
def photo_reports(photos, tmp_path_factory):
    import quicklearn as ql

    clean, dirty = photos
    out = tmp_path_factory.mktemp("check-out") / "report"
    return ql.check(clean, options=SMALL, progress=False), ql.check(dirty, options=SMALL, out=out, progress=False), out


def test_clean_photos_give_no_leakage_and_planted_problems_are_found(photo_reports):
    clean, dirty, out = photo_reports
    for kind in ("leakage", "near_leakage", "unreadable", "hidden", "empty_class", "duplicate"):
        assert clean.count(kind) == 0, (kind, clean.of(kind))
    leak = dirty.of("leakage")
    assert len(leak) == 1 and sorted(leak[0].splits) == ["train", "valid"]
    assert "val/ants/copy_of_train.jpg" in leak[0].items
    near = dirty.items_of(["near_leakage"])
    assert "val/ants/resized.jpg" in near and not (near & {"val/ants/copy_of_train.jpg"} - near)
    assert dirty.items_of(["hidden"]) >= {"train/.ipynb_checkpoints/", "train/.DS_Store"}
    assert dirty.items_of(["unreadable"]) == {"train/bees/truncated.jpg"}
    assert dirty.items_of(["empty_class"]) == {"train/wasps/"}
    assert dirty.items_of(["odd_file"]) == {"train/bees/notes.txt"}
    assert dirty.items_of(["small"]) == {"train/bees/tiny.png"}
    assert dirty.exit_code(strict=True) == 2 and clean.exit_code(strict=True) == 0
    assert dirty.exit_code(strict=False) == 0
    assert dirty.items_of(["label_error"]) & {"train/ants/flipped_0.jpg", "train/ants/flipped_1.jpg"}


def test_report_files_name_every_kind_found(photo_reports):
    _, dirty, out = photo_reports
    issues = pd.read_csv(out / "issues.csv")
    assert set(issues["kind"]) == {f.kind for f in dirty.findings}
    assert {"leakage", "near_leakage", "hidden", "unreadable", "empty_class", "odd_file", "small",
            "label_error"} <= set(issues["kind"])
    row = issues[issues["kind"] == "leakage"].iloc[0]
    assert "val/ants/copy_of_train.jpg" in row["items"]
    assert row["splits"] in ("train;valid", "valid;train")
    assert (out / "duplicates.png").stat().st_size > 10_000
    text = (out / "report.md").read_text()
    assert "exact duplicates across train/valid (leakage)" in text and "duplicates.png" in text


def test_the_second_check_reuses_the_embeddings(photos):
    import quicklearn as ql

    again = ql.check(photos[1], options=SMALL, progress=False)
    assert any("embeddings" in f and "read from the cache" in f for f in again.facts)
    assert again.timings["near duplicates"] < 5


def _table(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = np.where(x1 + 0.8 * rng.normal(size=n) > 0, "yes", "no")
    return pd.DataFrame({"x1": x1.round(3), "x2": x2.round(3), "colour": rng.choice(["red", "green", "blue"], n),
                         "y": y, "is_valid": np.arange(n) % 5 == 0})


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("check-tables")
    clean = _table()
    clean.to_csv(base / "clean.csv", index=False)
    dirty = clean.copy()
    dirty["refund_flag"] = (dirty["y"] == "yes").astype(int) * 3 + 1  # known only after the outcome: a leak
    dirty["source"] = "crm"  # constant
    dirty["account_id"] = [f"AC{i:05d}" for i in range(len(dirty))]
    dirty["score"] = [str(v) if i % 4 else "unknown" for i, v in enumerate(dirty["x2"])]  # numbers and text mixed
    dirty["notes"] = [None if i % 10 else "x" for i in range(len(dirty))]  # 90% missing
    copies = dirty.iloc[[1, 2, 3]].assign(is_valid=True)  # rows of train copied into valid
    dirty = pd.concat([dirty, copies], ignore_index=True)
    dirty.to_csv(base / "dirty.csv", index=False)
    return base / "clean.csv", base / "dirty.csv"


def test_table_leak_column_and_copied_rows_are_found(tables, tmp_path):
    import quicklearn as ql

    clean, dirty = (ql.check(p, target="y", progress=False) for p in tables)
    assert clean.count("leak_column") == 0 and clean.count("leakage") == 0
    leak = clean.of("label_error")  # noisy labels by construction; only look that they name rows
    assert all(f.items[0].startswith("row ") for f in leak)
    found = dirty.of("leak_column")
    assert [f.items for f in found] == [["refund_flag"]] and found[0].score > 0.95
    assert {frozenset(f.items) for f in dirty.of("leakage")} == {frozenset({"row 1", "row 240"}),
                                                                 frozenset({"row 2", "row 241"}),
                                                                 frozenset({"row 3", "row 242"})}
    assert dirty.items_of(["constant"]) == {"source"}
    assert dirty.items_of(["id_like"]) == {"account_id"}
    assert dirty.items_of(["mixed_types"]) == {"score"}
    assert dirty.items_of(["missing"]) == {"notes"}
    out = tmp_path / "r"
    ql.check(tables[1], target="y", out=out, progress=False)
    kinds = set(pd.read_csv(out / "issues.csv")["kind"])
    assert {"leak_column", "leakage", "constant", "id_like", "mixed_types", "missing"} <= kinds


def test_cli_strict_exit_code(tables, tmp_path):
    from quicklearn_cli.app import app

    runner = CliRunner()
    clean = runner.invoke(app, ["check", "--data", str(tables[0]), "--target", "y", "--strict"])
    assert clean.exit_code == 0, clean.output
    dirty = runner.invoke(app, ["check", "--data", str(tables[1]), "--target", "y", "--strict", "--out", str(tmp_path)])
    assert dirty.exit_code == 2, dirty.output
    assert "leak" in dirty.output and (tmp_path / "issues.csv").exists()
    assert runner.invoke(app, ["check", "--data", str(tables[1]), "--target", "y"]).exit_code == 0


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    frame = pd.read_csv(_need(SHARED / "imdb-sample" / "texts.csv")).head(60).reset_index(drop=True)
    frame["text"] = frame["text"].str.slice(0, 400)
    train_rows = frame.index[~frame["is_valid"]]
    rows = [frame.loc[train_rows[0]].to_dict(), frame.loc[train_rows[1]].to_dict()]
    rows[0]["is_valid"] = True  # an exact copy of a training review in valid
    rows[1].update(is_valid=True, text=rows[1]["text"].upper().replace(".", "!"))  # the same, shouted: near
    rows.append({"label": "positive", "text": "   ", "is_valid": False})
    path = tmp_path_factory.mktemp("check-texts") / "texts.csv"
    pd.concat([frame, pd.DataFrame(rows)], ignore_index=True).to_csv(path, index=False)
    return path


def test_text_copies_and_empty_texts_are_found(texts):
    import quicklearn as ql

    report = ql.check(texts, target="label", progress=False)
    leak = report.of("leakage")
    assert len(leak) == 1 and "row 60" in leak[0].items and sorted(leak[0].splits) == ["train", "valid"]
    assert report.items_of(["empty"]) == {"row 62"}
    assert "row 61" in report.items_of(["near_leakage", "leakage"])
    assert report.count("duplicate") == 0


def test_nb_logistic_probe_ranks_flipped_reviews_first():
    """NBSVM's recipe, out of fold, on 300 real reviews with 15 labels flipped: the flips gather among the 30 texts
    whose given label it finds least likely (chance: 1.5 of them). With three classes its rows are probabilities,
    and a class of a single text keeps probability 1 (nothing to learn it from)."""
    from quicklearn.tasks.text.checks import nb_logistic_probs

    frame = pd.read_csv(_need(SHARED / "imdb-sample") / "texts.csv").head(300)
    texts, labels = frame["text"].tolist(), (frame["label"] == "positive").to_numpy().astype(np.int64)
    flips = np.random.default_rng(1).choice(len(labels), 15, replace=False)
    labels[flips] ^= 1
    probs = nb_logistic_probs(texts, labels, seed=0)
    assert probs.shape == (300, 2) and np.allclose(probs.sum(1), 1)
    suspects = np.argsort(probs[np.arange(300), labels])[:30]
    assert len(set(suspects) & set(flips)) >= 5
    words = {0: "sunny warm bright", 1: "rain wet grey", 2: "snow cold ice"}
    three = [f"{words[k % 3]} day number {k}" for k in range(30)] + ["a lone text"]
    y3 = np.array([k % 3 for k in range(30)] + [3])
    p3 = nb_logistic_probs(three, y3, folds=5, seed=0)
    assert np.allclose(p3.sum(1), 1) and (p3[:30].argmax(1) == y3[:30]).all() and p3[30, 3] == 1


def test_train_runs_the_quick_check_and_no_check_skips_it(tables, photos, tmp_path):
    from quicklearn_cli.app import app

    from quicklearn.analysis.check.run import quick_check
    from quicklearn.config.run import run_recipe
    from quicklearn.config.schema import parse_recipe
    from quicklearn.tasks.registry import get_task

    result = CliRunner().invoke(app, ["train", "--data", str(tables[1]), "--target", "y", "--epochs", "1",
                                      "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("data check:")]
    assert len(lines) == 1 and "3 x exact duplicates across train/valid" in lines[0]
    assert "quicklearn check --data" in lines[0]
    recipe = parse_recipe({"task": "tabular", "data": {"path": str(tables[1]), "y": "y"}, "fit": {"epochs": 1}})
    assert run_recipe(recipe, out=tmp_path / "b", check=False, progress=False).data_check is None
    # the photos' quick pass: hashes and hidden folders only (no embeddings, no cleanlab)
    images = parse_recipe({"task": "vision", "data": {"path": str(photos[1])}, "transforms": {"size": 160}})
    quick = quick_check(get_task("vision"), images)
    assert {k.name for k in quick.kinds} == {"hidden", "empty_class", "leakage", "duplicate"}
    assert quick.count("leakage") == 1 and quick.count("hidden") == 2 and not quick.facts[1:]


def test_text_embeddings_read_the_whole_text_in_windows(tiny_bert):
    """Two texts that differ only after the first max_len tokens look the same truncated, and differ in windows;
    a windowed embedding is the normalized mean of its windows' embeddings."""
    from quicklearn.tasks.text.checks import embed_texts, windows

    head = " ".join(f"word{i}" for i in range(40))
    texts = [head + " the film was wonderful and moving", head + " the plot was dull and far too long", ""]
    pieces, owner = windows(texts, 16)
    assert owner.tolist() == [0, 0, 0, 1, 1, 1, 2] and pieces[2].endswith("word39 the film was wonderful and moving") and pieces[-1] == ""
    cut = embed_texts(texts[:2], str(tiny_bert), 12, progress_bar=False)
    np.testing.assert_allclose(cut[0], cut[1], atol=1e-6)  # the first 12 tokens are the same
    whole = embed_texts(texts, str(tiny_bert), 64, window_words=16, progress_bar=False)  # windows fit 64 tokens
    assert np.abs(whole[0] - whole[1]).max() > 1e-3  # the tails differ, and now they count
    parts = embed_texts(pieces[:3], str(tiny_bert), 64, progress_bar=False).sum(0)
    np.testing.assert_allclose(whole[0], parts / np.linalg.norm(parts), atol=1e-5)
    assert np.isfinite(whole).all() and abs(float(np.linalg.norm(whole[2])) - 1) < 1e-5
