"""Inputs that are wrong in plausible ways get a QuicklearnError naming the fix, and odd-but-valid ones work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import quicklearn as ql
from quicklearn.config.run import check_out_dir
from quicklearn.config.schema import merge_overrides, parse_recipe
from quicklearn.train.learner import resolve_device

pytestmark = pytest.mark.usefixtures("one_thread")


def _learner(folder, **kw):
    opts = dict(arch="resnet10t", weights=None, size=16, bs=4, progress=False, seed=0)
    opts.update(kw)
    return ql.vision_learner(folder, **opts)


def test_bad_device_string():
    with pytest.raises(ql.ConfigError, match="device='gpu'.*cuda"):
        resolve_device("gpu")


@pytest.mark.parametrize("kw, match", [
    ({"metrics": ["rmse"]}, "does not fit a single target"),
    ({"monitor": "accuracy_multi"}, "monitor='accuracy_multi' is not measured"),
    ({"class_weights": [1.0, 2.0]}, "class_weights has 2 values but there are 3 classes"),
    ({"bs": 0}, "bs=0"),
])
def test_learner_options_are_checked_before_training(tiny_folder, kw, match):
    with pytest.raises(ql.QuicklearnError, match=match):
        _learner(tiny_folder, **kw)


def test_bad_unfreeze_milestones(tiny_folder):
    learn = _learner(tiny_folder)
    with pytest.raises(ql.ConfigError, match=r"unfreeze_milestones=\[1, 5\]"):
        learn.fine_tune(1, freeze_epochs=0, unfreeze_milestones=[1, 5])


def test_merge_overrides_into_a_section_given_as_a_bool():
    recipe = parse_recipe({"task": "vision", "transforms": {"augment": True}})
    merged = merge_overrides(recipe, {"transforms.augment.flip": False})
    assert merged.transforms.augment.flip is False and merged.transforms.augment.enabled is True


def test_resume_needs_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ql.ConfigError, match="no checkpoint.pt"):
        check_out_dir(out, overwrite=False, resume=True)


def test_resume_refuses_a_different_schedule(tiny_folder, tmp_path):
    class Stop(ql.Callback):
        order = 1000  # after the Checkpoint callback (order 100): a kill once the epoch's checkpoint is written

        def on_epoch_end(self, epoch, logs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _learner(tiny_folder, path=tmp_path, cbs=[Stop()]).fine_tune(3, freeze_epochs=2)
    with pytest.raises(ql.ConfigError, match="phase of 2 epochs, not 1"):
        _learner(tiny_folder, path=tmp_path).fine_tune(3, freeze_epochs=1, resume=True)


def test_a_custom_splitter_receives_the_targets(tiny_folder):
    seen = {}

    def every_third(source, targets):
        seen["classes"] = targets.vocab.classes
        idx = list(range(len(source)))
        return [i for i in idx if i % 3], [i for i in idx if i % 3 == 0]

    dls = ql.image_dataloaders(tiny_folder, splitter=every_third, size=16, bs=4)
    assert seen["classes"] == ("blue", "green", "red") and dls.valid.n == 6


def test_predict_accepts_hwc_numpy_rgba_and_refuses_0_255_floats(tiny_folder, tmp_path):
    learn = _learner(tiny_folder)
    model = ql.load(learn.export(tmp_path / "m"))
    path = sorted((tiny_folder / "red").glob("*.png"))[0]
    rgb = np.array(Image.open(path).convert("RGB"))
    ref = model.predict(path).probs
    for item in (rgb, torch.from_numpy(rgb), torch.from_numpy(rgb).permute(2, 0, 1).float() / 255,
                 Image.open(path).convert("RGBA"), np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])):
        got = model.predict(item).probs
        assert got == pytest.approx(ref, abs=1e-5), type(item)
    with pytest.raises(ql.DataError, match=r"values in \[0, 1\].*Divide by 255"):
        model.predict(torch.from_numpy(rgb).float())
    with pytest.raises(ql.DataError, match="shape"):
        model.predict(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
