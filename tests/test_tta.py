"""Test-time augmentation: the averaged output equals the mean of the views computed here by hand, the Learner
and a loaded Predictor agree, and averaging over mirrored views makes the prediction flip-invariant.

Small models (resnet18, random init, 32 px; the single-label one fit for two short epochs) on real mnist-tiny
digits: what is tested is the arithmetic of the views, which such a model exposes as well as a well-trained one
(it is not flip-invariant).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from quicklearn_cli.app import app
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.tasks.vision.augment import resize_batch
from quicklearn.tasks.vision.tta import average_views, tta_outputs, tta_views, zoom_crop
from quicklearn.train.metrics import accuracy

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE, PRESIZE = 32, 40  # the crop views are the centre 32x32 of the 40x40 pre-sized images: margins of 4
N = 12  # images per class and split


@pytest.fixture(scope="module")
def digits(mnist_tiny: Path, tmp_path_factory) -> Path:
    """train/ and valid/ folders of N 3s and N 7s each, and table.csv over the same files with a multi-label
    and a float column."""
    root = tmp_path_factory.mktemp("tta-digits")
    rows = []
    for split in ("train", "valid"):
        for label in ("3", "7"):
            (root / split / label).mkdir(parents=True)
            for i, f in enumerate(sorted((mnist_tiny / split / label).glob("*.png"))[:N]):
                shutil.copy(f, root / split / label / f.name)
                rows.append({"image": f"{split}/{label}/{f.name}", "tags": label + (" odd" if i % 2 else ""),
                             "value": 0.5 + 0.75 * i, "is_valid": split == "valid"})
    pd.DataFrame(rows).to_csv(root / "table.csv", index=False)
    return root


def _learner(data, **kw):
    return ql.vision_learner(data, arch="resnet18", weights=None, size=SIZE, presize=PRESIZE, progress=False, **kw)


@pytest.fixture(scope="module")
def learners(digits: Path, env) -> dict:
    single = _learner(digits)
    single.fit(2, 1e-2)  # two short epochs: outputs large enough that a mirror visibly changes them
    return {
        "single": single,
        "multi": _learner(digits / "table.csv", y="tags"),
        "regression": _learner(digits / "table.csv", y="value", kind="regression"),
    }


def _by_hand(learn) -> torch.Tensor:
    """Probabilities (single, multi) or values (regression) averaged over the four views, each built here."""
    dl = learn.dls.valid
    x = dl.images  # uint8 (N, C, 40, 40)
    full = resize_batch(x, SIZE)
    crop = resize_batch(x[..., 4:36, 4:36], SIZE)  # 32 px already: no resampling
    views = [full, full.flip(-1), crop, crop.flip(-1)]
    learn.model.eval()
    with torch.no_grad():
        outs = [learn.model(dl.pipeline.normalize(v)).float() for v in views]
    if learn.kind == "single":
        return torch.stack([o.softmax(1) for o in outs]).mean(0)
    if learn.kind == "multi":
        return torch.stack([o.sigmoid() for o in outs]).mean(0)
    return torch.stack(outs).mean(0).flatten() * learn.y_std + learn.y_mean


@pytest.mark.parametrize("kind", ["single", "multi", "regression"])
def test_tta_equals_the_mean_of_the_hand_computed_views(learners, kind) -> None:
    learn = learners[kind]
    assert learn.kind == kind
    preds, targets = learn.tta()
    assert torch.equal(targets, learn.dls.valid.targets)
    expected = _by_hand(learn)
    got = {"single": lambda p: p.softmax(1), "multi": lambda p: p.sigmoid(), "regression": lambda p: p}[kind](preds)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
    plain, _ = learn.get_preds()
    assert plain.shape == preds.shape and not torch.allclose(plain, preds, atol=1e-3)  # the views do change it


def test_views_and_average_in_detail() -> None:
    x = torch.arange(2 * 3 * 40 * 40, dtype=torch.float32).reshape(2, 3, 40, 40).remainder(251).to(torch.uint8)
    assert torch.equal(zoom_crop(x, 40 / 32), x[..., 4:36, 4:36])
    assert zoom_crop(torch.zeros(1, 1, 37, 37), 37 / 32).shape[-1] == 33  # equal margins: 2 and 2, not 2 and 3
    outs = [torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.0]])]
    mean_p = (outs[0].softmax(1) + outs[1].softmax(1)) / 2
    single = average_views(outs, "single")
    torch.testing.assert_close(single, mean_p.log())  # log of the mean probabilities...
    torch.testing.assert_close(single.softmax(1), mean_p)  # ...so softmax gives them back
    multi = average_views(outs, "multi")
    torch.testing.assert_close(multi.sigmoid(), (outs[0].sigmoid() + outs[1].sigmoid()) / 2)
    torch.testing.assert_close(average_views(outs, "regression"), (outs[0] + outs[1]) / 2)
    with pytest.raises(ql.ConfigError, match="unknown target kind"):
        average_views(outs, "ranking")


def test_predictor_tta_equals_learner_tta(learners, tmp_path: Path) -> None:
    for kind in ("single", "multi"):
        learn = learners[kind]
        model = ql.load(learn.export(tmp_path / kind))
        paths = learn.dls.valid_paths
        preds, _ = learn.tta()
        raw = model.raw(paths, tta=True)
        np.testing.assert_allclose(raw.numpy(), preds.numpy(), rtol=1e-4, atol=1e-4)
        got = model.predict(paths, tta=True, bs=7)  # batches that do not divide the set
        key = list(learn.dls.vocab.classes)
        probs = preds.softmax(1) if kind == "single" else preds.sigmoid()
        np.testing.assert_allclose([[p.probs[c] for c in key] for p in got], probs.numpy(), atol=1e-5)
        assert not np.allclose(model.raw(paths).numpy(), raw.numpy(), atol=1e-3)


def test_tta_is_flip_invariant(learners, tmp_path: Path) -> None:
    learn = learners["single"]
    model = ql.load(learn.export(tmp_path / "model"))
    img = learn.dls.valid.images[0]  # already pre-sized (40x40): the Predictor does not resample it again
    mirror = img.flip(-1)
    plain = model.raw([img, mirror])
    assert not torch.allclose(plain[0], plain[1], atol=1e-3)  # the model itself is not flip-invariant
    tta = model.raw([img, mirror], tta=True)
    torch.testing.assert_close(tta[0], tta[1], rtol=1e-5, atol=1e-5)
    # the same through the view function on a whole batch
    batch = learn.dls.valid.images[:6]
    with torch.no_grad():
        a = tta_outputs(model.model, batch, model.pipeline, "single")
        b = tta_outputs(model.model, batch.flip(-1), model.pipeline, "single")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert len(tta_views(batch, model.pipeline)) == 4


def test_tta_needs_an_image_loader(learners) -> None:
    with pytest.raises(ql.ConfigError, match="image loader"):
        learners["single"].tta(dl=[(torch.zeros(1, 3), torch.zeros(1))])


def test_cli_predict_and_evaluate_with_tta(learners, digits: Path, tmp_path: Path) -> None:
    learn = learners["single"]
    model_dir = learn.export(tmp_path / "model")
    preds, targets = learn.tta()
    r = CliRunner().invoke(app, ["evaluate", str(model_dir), "--data", str(digits / "valid"), "--tta", "--format", "json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["n"] == 2 * N and ev["metrics"]["accuracy"] == pytest.approx(accuracy(preds, targets))
    assert ev["metrics"]["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(preds, targets)), rel=1e-4)

    r = CliRunner().invoke(app, ["predict", str(model_dir), str(digits / "valid"), "--tta", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {Path(row["path"]).name: row for row in json.loads(r.stdout)}
    probs = preds.softmax(1)
    for path, p in zip(learn.dls.valid_paths, probs):
        row = rows[path.name]
        assert row["prediction"] == learn.dls.vocab.classes[int(p.argmax())]
        assert row["probability"] == pytest.approx(float(p.max()), abs=1e-5)
    r = CliRunner().invoke(app, ["predict", str(model_dir), str(digits / "valid"), "--thresh", "0.3"])
    assert r.exit_code == 1 and "--thresh is for multi-label models" in r.stderr
