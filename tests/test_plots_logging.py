"""Training curves, the lr-finder plot and TensorBoard logging: checked through the numbers they draw or write."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

import quicklearn as ql
from quicklearn.analysis.plots import history_figure
from quicklearn.train.callbacks.tensorboard import TensorBoardLogger
from quicklearn.train.lr_find import lr_find_figure

pytestmark = pytest.mark.usefixtures("one_thread")


def _learner(folder, **kw):
    opts = dict(arch="resnet18", weights=None, size=16, bs=6, progress=False, seed=0)
    opts.update(kw)
    return ql.vision_learner(folder, **opts)


def _not_blank(path) -> None:
    pixels = np.asarray(Image.open(path).convert("L"))
    assert pixels.std() > 5, f"{path} looks blank"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """fine_tune(2) with one frozen epoch, logging to TensorBoard: 3 epochs of 3 batches (14 training images)."""
    from tests.conftest import write_image

    root = tmp_path_factory.mktemp("plots")
    for name, c in {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}.items():
        for i in range(6):
            write_image(root / "data" / name / f"{name}_{i}.png", size=(24 + i, 20), color=c)
    tb = TensorBoardLogger(root / "tb", every=1)
    learn = _learner(root / "data", cbs=[tb])
    learn.fine_tune(2, base_lr=1e-2, freeze_epochs=1, lr_mult=10)
    tb.close()
    return learn, root


def test_lr_trace_follows_both_one_cycle_phases(trained) -> None:
    learn, _ = trained
    trace = learn.recorder.trace
    n = len(learn.dls.train)
    assert len(trace) == 3 * n and len(learn.history) == 3
    assert [t[0] for t in trace] == pytest.approx([(k + 1) / n for k in range(3 * n)])
    frozen, unfrozen = trace[:n], trace[n:]
    assert all(math.isnan(t[2]) for t in frozen)  # only the head trains in the frozen epoch
    assert max(t[1] for t in frozen) <= 1e-2 * (1 + 1e-9)
    top = 1e-2 / 2  # fine_tune's unfrozen top rate is base_lr / 2 ...
    assert max(t[1] for t in unfrozen) <= top * (1 + 1e-9) and max(t[1] for t in unfrozen) > top / 2
    for _, head, low in unfrozen:  # ... and the lowest body group trains lr_mult times slower
        assert low == pytest.approx(head / 10, rel=1e-6)


def test_training_curves_draw_the_history_and_are_not_blank(trained, tmp_path) -> None:
    learn, _ = trained
    fig = history_figure(learn.history, learn.recorder.trace)
    loss_ax, metric_ax, lr_ax = fig.axes
    assert list(loss_ax.lines[0].get_ydata()) == [h["train_loss"] for h in learn.history]
    assert list(loss_ax.lines[1].get_ydata()) == [h["valid_loss"] for h in learn.history]
    assert list(metric_ax.lines[0].get_ydata()) == [h["accuracy"] for h in learn.history]
    assert list(lr_ax.lines[0].get_ydata()) == [t[1] for t in learn.recorder.trace]
    assert lr_ax.get_yscale() == "log"
    assert "unfrozen" in fig._suptitle.get_text()
    path = learn.plot_curves(tmp_path / "curves.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    _not_blank(path)


def test_lr_find_figure_draws_the_sweep(tmp_path) -> None:
    lrs = [1e-6 * 1.5 ** k for k in range(30)]
    losses = [2.0 - 0.05 * k if k < 20 else 1.0 + 0.3 * (k - 20) for k in range(30)]
    fig = lr_find_figure(lrs, losses, lrs[12])
    (ax,) = fig.axes
    assert list(ax.lines[0].get_xdata()) == lrs and list(ax.lines[0].get_ydata()) == losses
    assert list(ax.lines[1].get_xdata()) == [lrs[12]] and list(ax.lines[1].get_ydata()) == [losses[12]]
    assert ax.get_xscale() == "log"
    from quicklearn.analysis.plots import save_figure

    _not_blank(save_figure(fig, tmp_path / "lr.png"))


def test_tensorboard_event_files_hold_the_history(trained) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    learn, root = trained
    acc = EventAccumulator(str(root / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/smooth_loss", "train/lr", "train/train_loss", "valid/valid_loss", "valid/accuracy"} <= tags
    valid = acc.Scalars("valid/valid_loss")
    assert [e.step for e in valid] == [1, 2, 3]
    assert [e.value for e in valid] == pytest.approx([h["valid_loss"] for h in learn.history], rel=1e-6)
    assert [e.value for e in acc.Scalars("valid/accuracy")] == pytest.approx([h["accuracy"] for h in learn.history])
    steps = acc.Scalars("train/lr")
    assert [e.step for e in steps] == list(range(1, len(learn.recorder.trace) + 1))
    assert [e.value for e in steps] == pytest.approx([t[1] for t in learn.recorder.trace], rel=1e-6)


def test_cli_tensorboard_flag_writes_event_files(tiny_folder, tmp_path) -> None:
    from quicklearn_cli.app import app
    from typer.testing import CliRunner

    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(tiny_folder), "--size", "16", "--weights", "none", "--arch", "resnet18",
                                 "--epochs", "1", "--freeze-epochs", "0", "--bs", "6", "--out", str(out), "--tensorboard"])
    assert r.exit_code == 0, r.output
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert "tensorboard --logdir" in r.output
    _not_blank(out / "training_curves.png")
