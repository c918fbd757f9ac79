"""Stronger training (issue 9): mixup/cutmix targets, EMA of weights, ReduceLROnPlateau, progressive resizing,
each end to end on tiny real images, through the recipe too, and across a resume."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

import quicklearn as ql
from quicklearn.config.schema import parse_recipe
from quicklearn.core.errors import ConfigError
from quicklearn.tasks.vision.recipe import learner_kwargs
from quicklearn.train.mix import BatchMixer, box_area, cutmix, cutmix_box, mixup, soft_targets

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = "resnet10t"  # small timm CNN with BatchNorm: fast at 16-64 px


def _learner(folder, tmp_path=None, **kw):
    opts = dict(arch=ARCH, weights=None, size=16, bs=8, progress=False, seed=0)
    opts.update(kw)
    return ql.vision_learner(folder, path=tmp_path, **opts)


def _onehot(y, n):
    return torch.eye(n)[y]


# ---- mixup / cutmix: the pure functions ------------------------------------------------------------
def test_mixup_mixes_images_and_one_hot_targets_with_lam():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    perm, lam = torch.tensor([3, 5, 4, 1, 0, 2]), 0.3
    mx, t = mixup(x, y, lam, perm, n_classes=3)
    assert torch.allclose(mx, lam * x + (1 - lam) * x[perm])
    assert torch.allclose(t, lam * _onehot(y, 3) + (1 - lam) * _onehot(y[perm], 3))
    assert torch.allclose(t.sum(1), torch.ones(6))
    assert t[0].tolist() == pytest.approx([0.3 + 0.7, 0, 0])  # same class on both sides
    assert t[1].tolist() == pytest.approx([0, 0.3, 0.7])


def test_mixup_of_multi_hot_and_regression_targets():
    x, perm, lam = torch.rand(3, 1, 4, 4), torch.tensor([1, 2, 0]), 0.25
    multi = torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 0, 0]])
    _, t = mixup(x, multi, lam, perm)
    assert torch.allclose(t, torch.tensor([[0.25, 0.75, 0.25], [0, 0.25, 0], [0.75, 0, 0.75]]))
    values = torch.tensor([1.0, 5.0, -3.0])
    _, t = mixup(x, values, lam, perm)
    assert torch.allclose(t, torch.tensor([0.25 * 1 + 0.75 * 5, 0.25 * 5 + 0.75 * -3, 0.25 * -3 + 0.75 * 1]))
    with pytest.raises(ConfigError, match="n_classes"):
        soft_targets(torch.tensor([0, 1]))


def test_cutmix_lam_is_the_fraction_of_pixels_kept_counted_on_the_mixed_tensor():
    B, H, W = 5, 12, 10
    x = torch.arange(B, dtype=torch.float32).view(B, 1, 1, 1).expand(B, 3, H, W).contiguous()  # image i is all i
    y, perm = torch.arange(B), torch.roll(torch.arange(B), 1)  # every image pairs with another class
    rng = np.random.default_rng(0)
    clipped = 0
    for _ in range(200):
        lam = float(rng.beta(1.0, 1.0))
        box = cutmix_box(lam, H, W, rng)
        mx, t = cutmix(x, y, perm, box, n_classes=B)
        for i in range(B):
            kept = (mx[i] == i).float().mean().item()  # pixels still from image i
            pasted = (mx[i] == perm[i]).float().mean().item()
            assert kept + pasted == pytest.approx(1.0)
            assert t[i, i].item() == pytest.approx(kept, abs=1e-6)
            assert t[i, perm[i]].item() == pytest.approx(pasted, abs=1e-6)
            assert t[i].sum().item() == pytest.approx(1.0)
        clipped += abs((1 - box_area(box) / (H * W)) - lam) > 0.05
    assert clipped > 10, "boxes near the border are clipped, so the kept area differs from the drawn lam"


def test_cutmix_keeps_channels_last_and_rejects_a_box_outside():
    x = torch.rand(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    mx, _ = cutmix(x, torch.tensor([0, 1, 0, 1]), torch.tensor([1, 0, 3, 2]), (2, 6, 2, 6), n_classes=2)
    assert mx.is_contiguous(memory_format=torch.channels_last)
    mx, _ = mixup(x, torch.tensor([0, 1, 0, 1]), 0.5, torch.tensor([1, 0, 3, 2]), n_classes=2)
    assert mx.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ConfigError, match="does not lie inside"):
        cutmix(x, torch.tensor([0, 1, 0, 1]), torch.tensor([1, 0, 3, 2]), (0, 9, 0, 4), n_classes=2)


def test_batch_mixer_is_seeded_and_picks_both_kinds():
    x, y = torch.rand(8, 3, 16, 16), torch.arange(8) % 4
    mixer = BatchMixer(mixup=0.4, cutmix=1.0, n_classes=4)
    a = [mixer(x, y, r) for r in [BatchMixer.rng(1, 5)] for _ in range(20)]
    b = [mixer(x, y, r) for r in [BatchMixer.rng(1, 5)] for _ in range(20)]
    assert all(torch.equal(xa, xb) and torch.equal(ta, tb) for (xa, ta), (xb, tb) in zip(a, b))
    c = mixer(x, y, BatchMixer.rng(1, 6))
    assert not torch.equal(c[0], a[0][0]), "another epoch key draws another mix"
    # cutmix leaves every pixel equal to some image's pixel at that place; mixup blends them
    kinds = {"cutmix" if bool((mx.unsqueeze(1) == x.unsqueeze(0)).any(1).all()) else "mixup" for mx, _ in a}
    assert kinds == {"cutmix", "mixup"}
    with pytest.raises(ConfigError, match="mixup=-1"):
        BatchMixer(mixup=-1)


# ---- mixing in the Learner -------------------------------------------------------------------------
def test_training_batches_are_mixed_and_validation_never(tiny_folder):
    learn = _learner(tiny_folder, mixup=1.0, cutmix=1.0, device="cpu")
    inputs: list[tuple[bool, torch.Tensor]] = []
    learn.model.register_forward_hook(lambda m, args, out: inputs.append((m.training, args[0].detach().clone())))
    targets: list[torch.Tensor] = []
    loss = learn.loss_func
    learn.loss_func = lambda out, y: (targets.append(y.detach().clone()), loss(out, y))[1]
    learn.fit(1, 1e-3)
    train_x = [x for training, x in inputs if training]
    valid_x = [x for training, x in inputs if not training]
    learn.dls.train.set_epoch(0)  # stage 0, epoch 0: the batches the loop drew, before mixing
    raw_train = [x for x, _ in learn.dls.train]
    raw_valid = [x for x, _ in learn.dls.valid]
    assert len(train_x) == len(raw_train) and len(valid_x) == len(raw_valid)
    assert all(not torch.equal(a, b) for a, b in zip(train_x, raw_train)), "training batches are mixed"
    assert all(torch.equal(a, b) for a, b in zip(valid_x, raw_valid)), "validation sees the plain batches"
    train_t, valid_t = targets[: len(raw_train)], targets[len(raw_train):]
    assert all(t.is_floating_point() and t.shape[1] == 3 and torch.allclose(t.sum(1), torch.ones(len(t))) for t in train_t)
    assert all(t.dtype == torch.int64 and t.ndim == 1 for t in valid_t)


def test_soft_targets_keep_label_smoothing_and_class_weights(tiny_folder):
    w = [1.0, 2.0, 3.0]
    learn = _learner(tiny_folder, mixup=0.4, label_smoothing=0.1, class_weights=w, device="cpu")
    out, soft = torch.randn(4, 3), torch.tensor([[0.7, 0.3, 0], [0, 1, 0], [0.2, 0, 0.8], [0.5, 0.5, 0]])
    smoothed = soft * 0.9 + 0.1 / 3
    expected = -(torch.tensor(w) * smoothed * out.log_softmax(1)).sum(1).mean()
    assert learn.loss_func(out, soft).item() == pytest.approx(expected.item(), rel=1e-5)
    learn.fit(1, 1e-3)
    assert math.isfinite(learn.history[-1]["train_loss"])


@pytest.mark.parametrize("kind", ["multi", "regression"])
def test_mixup_trains_multi_label_and_regression(tiny_folder, tmp_path, kind):
    import pandas as pd

    files = sorted(tiny_folder.rglob("*.png"))
    if kind == "multi":
        y = ["red green" if f.parent.name == "red" else f.parent.name for f in files]
    else:
        y = [float(i % 5) for i in range(len(files))]
    csv = tmp_path / "data.csv"
    pd.DataFrame({"image": [str(f) for f in files], "y": y}).to_csv(csv, index=False)
    learn = _learner(csv, y="y", kind=kind, label_delim=" " if kind == "multi" else None, mixup=0.4, cutmix=1.0, device="cpu")
    seen: list[torch.Tensor] = []
    loss = learn.loss_func
    learn.loss_func = lambda out, t: (seen.append(t.detach().clone()), loss(out, t))[1]
    learn.fit(1, 1e-3)
    assert math.isfinite(learn.history[-1]["train_loss"])
    first = seen[0]
    if kind == "multi":  # mixed multi-hot: some entries strictly between 0 and 1
        assert first.shape[1] == 3 and ((first > 0) & (first < 1)).any()
    else:
        assert first.ndim == 1 and first.is_floating_point()


# ---- EMA -----------------------------------------------------------------------------------------
class _StepRecorder(ql.Callback):
    """Records every parameter after every optimizer step, and what validation and the epoch end see."""

    def on_fit_begin(self, logs):
        self.start = [p.detach().clone() for p in self.learner.model.parameters()]
        self.steps: list[list[torch.Tensor]] = []
        self.seen_by_validation: list[tuple[int, list[torch.Tensor]]] = []
        self.live_at_epoch_end: list[list[torch.Tensor]] = []
        self.hook = self.learner.opt.register_step_post_hook(
            lambda opt, a, k: self.steps.append([p.detach().clone() for p in self.learner.model.parameters()]))

    def on_test_begin(self, logs):  # placed after EMA in cbs: the model already holds the average here
        self.seen_by_validation.append((len(self.steps), [p.detach().clone() for p in self.learner.model.parameters()]))

    def on_epoch_end(self, epoch, logs):
        self.live_at_epoch_end.append([p.detach().clone() for p in self.learner.model.parameters()])

    def on_fit_end(self, logs):
        self.hook.remove()


def _ema_formula(start, steps, decay, warmup):
    ema, out = [s.clone() for s in start], []
    for k, w in enumerate(steps):
        d = min(decay, (1 + k) / (10 + k)) if warmup else decay
        ema = [d * e + (1 - d) * p for e, p in zip(ema, w)]
        out.append(ema)
    return out


@pytest.mark.parametrize("warmup,grad_accum", [(False, 1), (True, 1), (False, 2)])
def test_ema_weights_equal_the_formula_after_k_steps(tiny_folder, warmup, grad_accum):
    ema, rec = ql.EMA(0.8, warmup=warmup), _StepRecorder()
    learn = _learner(tiny_folder, bs=4, grad_accum=grad_accum, cbs=[ema, rec], device="cpu")
    learn.fit(2, 1e-2)
    n_batches = len(learn.dls.train)
    assert len(rec.steps) == 2 * math.ceil(n_batches / grad_accum) == ema.updates  # one update per optimizer step
    expected = _ema_formula(rec.start, rec.steps, 0.8, warmup)
    for k, seen in rec.seen_by_validation:  # validation during training sees the average after k steps
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(seen, expected[k - 1]))
    per_epoch = math.ceil(n_batches / grad_accum)  # the last, short accumulation of an epoch steps too
    for e, live in enumerate(rec.live_at_epoch_end):  # training itself continues on the live weights
        assert all(torch.equal(a, b) for a, b in zip(live, rec.steps[(e + 1) * per_epoch - 1]))
    assert not all(torch.allclose(a, b) for a, b in zip(expected[-1], rec.steps[-1])), "the average differs from the live weights"
    final = list(learn.model.parameters())  # after fit the model keeps the average
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(final, expected[-1]))


def test_ema_weights_are_what_export_writes(tiny_folder, tmp_path):
    from safetensors.torch import load_file

    learn = _learner(tiny_folder, ema=0.9, device="cpu")
    live: list[list[torch.Tensor]] = []

    class Live(ql.Callback):
        def on_epoch_end(self, epoch, logs):
            live.append([p.detach().clone() for p in self.learner.model.parameters()])

    learn.cbs.append(Live())
    learn.fit(1, 1e-2)
    exported = load_file(learn.export(tmp_path / "model") / "model.safetensors")
    names = dict(learn.model.named_parameters())
    assert all(torch.equal(exported[n].float(), p.detach().float()) for n, p in names.items() if n in exported)
    assert any(not torch.equal(a, b) for a, b in zip(live[-1], learn.model.parameters())), "the exported weights are the average"
    assert learn.validate()["loss"] == pytest.approx(learn.history[-1]["valid_loss"], rel=1e-5)


def test_bad_ema_decay_is_refused():
    with pytest.raises(ConfigError, match="ema=1.0"):
        ql.EMA(1.0)


@pytest.mark.parametrize("where", [(0, 0), (1, 0)])
def test_resume_with_every_option_gives_the_uninterrupted_run(tiny_folder, tmp_path, where):
    from test_learner import _Interrupt

    opts = dict(mixup=0.4, cutmix=1.0, ema=0.9, reduce_lr_on_plateau=True)
    full = _learner(tiny_folder, tmp_path / "full", **opts)
    full.fine_tune(2, freeze_epochs=1)
    run = tmp_path / "killed"
    killed = _learner(tiny_folder, run, cbs=[_Interrupt(*where)], **opts)
    with pytest.raises(KeyboardInterrupt):
        killed.fine_tune(2, freeze_epochs=1)
    assert "EMA" in torch.load(run / "checkpoint.pt", weights_only=True)["callbacks"]
    resumed = _learner(tiny_folder, run, **opts)
    resumed.fine_tune(2, freeze_epochs=1, resume=True)
    keys = ("stage", "epoch", "train_loss", "valid_loss", "accuracy", "lr")
    assert [[h[k] for k in keys] for h in resumed.history] == [[h[k] for k in keys] for h in full.history]
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, full.model.state_dict()[k]), k


# ---- ReduceLROnPlateau ---------------------------------------------------------------------------
class _Scripted(ql.Callback):
    """Replaces the epoch's valid_loss with a scripted value (before ReduceLROnPlateau reads it)."""

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, epoch, logs):
        logs["valid_loss"] = self.values[epoch]


class _LRProbe(ql.Callback):
    def on_fit_begin(self, logs):
        self.lrs: list[list[float]] = []

    def on_epoch_begin(self, epoch, logs):
        self.lrs.append([])

    def on_batch_end(self, batch, logs):
        self.lrs[-1].append(max(pg["lr"] for pg in self.learner.opt.param_groups))


@pytest.mark.parametrize("patience,script,scales", [
    (1, [1.0, 1.1, 1.2, 0.5, 0.6], [1, 1, 0.5, 0.25, 0.25]),
    (2, [1.0, 1.1, 1.2, 1.3, 0.9, 1.0], [1, 1, 1, 0.5, 0.5, 0.5]),
])
def test_reduce_lr_on_plateau_lowers_the_optimizer_lr_after_patience_bad_epochs(tiny_folder, patience, script, scales):
    probe = _LRProbe()
    cbs = [_Scripted(script), ql.ReduceLROnPlateau(monitor="valid_loss", factor=0.5, patience=patience), probe]
    learn = _learner(tiny_folder, cbs=cbs, device="cpu")
    learn.fit(len(script), 1e-3)  # a constant schedule: every change of lr is the callback's
    assert [lrs[0] for lrs in probe.lrs] == pytest.approx([1e-3 * s for s in scales])
    assert all(len(set(lrs)) == 1 for lrs in probe.lrs), "the scale changes between epochs only"
    assert [h["lr"] for h in learn.history] == pytest.approx([1e-3 * s for s in scales]), "history logs the rate used"
    cbs[0].values = [1.0] * 2
    learn.fit(2, 1e-3)
    assert [lrs[0] for lrs in probe.lrs] == pytest.approx([1e-3, 1e-3]), "each fit starts again at the full rate"


def test_reduce_lr_on_plateau_stops_at_min_scale(tiny_folder):
    probe = _LRProbe()
    cbs = [_Scripted([1.0, 2, 3, 4, 5]), ql.ReduceLROnPlateau(monitor="valid_loss", factor=0.1, min_scale=0.05), probe]
    _learner(tiny_folder, cbs=cbs, device="cpu").fit(5, 1e-3)
    assert [lrs[0] for lrs in probe.lrs] == pytest.approx([1e-3, 1e-3, 1e-4, 5e-5, 5e-5])


# ---- progressive resizing ------------------------------------------------------------------------
@pytest.mark.parametrize("augment", [True, False])
def test_progressive_resizing_trains_small_then_full_and_validates_full(tiny_folder, augment):
    learn = _learner(tiny_folder, size=64, progressive=0.5, augment=augment, device="cpu")
    where: list[tuple[int, int]] = []
    shapes: list[tuple[tuple[int, int], bool, tuple[int, ...]]] = []

    class Where(ql.Callback):
        def on_epoch_begin(self, epoch, logs):
            where.append((self.learner.stage - 1, epoch))

    learn.cbs.append(Where())
    learn.model.register_forward_hook(lambda m, args, out: shapes.append((where[-1], m.training, tuple(args[0].shape[-2:]))))
    learn.fine_tune(2, freeze_epochs=1)  # frozen epoch, then 2 unfrozen: the first at 32 px, the second at 64
    train = {}
    for w, training, hw in shapes:
        if training:
            train.setdefault(w, set()).add(hw)
    assert train == {(0, 0): {(32, 32)}, (1, 0): {(32, 32)}, (1, 1): {(64, 64)}}
    assert {hw for _, training, hw in shapes if not training} == {(64, 64)}, "validation always at full size"
    assert learn.dls.train.size is None
    x, _ = next(iter(learn.dls.train))
    assert x.shape[-1] == 64


def test_progressive_small_size_rounds_to_multiples_of_32():
    from quicklearn.tasks.vision.progressive import small_size

    assert [small_size(224, 0.5), small_size(224, 0.25), small_size(64, 0.5), small_size(32, 0.5), small_size(100, 0.9)] == [
        128, 64, 32, 32, 96]
    with pytest.raises(ConfigError, match="progressive=0"):
        ql.ProgressiveResize(0)


# ---- every option end to end, and through a recipe ------------------------------------------------
@pytest.fixture(scope="module")
def mnist_few(mnist_tiny, tmp_path_factory):
    """16 training and 8 validation images per class of mnist-tiny (real digits, two batches of 16 per epoch)."""
    root = tmp_path_factory.mktemp("mnist-few")
    for split, n in (("train", 16), ("valid", 8)):
        for label in ("3", "7"):
            (root / split / label).mkdir(parents=True)
            for f in sorted((mnist_tiny / split / label).glob("*.png"))[:n]:
                shutil.copy(f, root / split / label / f.name)
    return root


@pytest.mark.parametrize("opts", [
    {"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.4, "cutmix": 1.0}, {"ema": 0.9}, {"reduce_lr_on_plateau": True},
    {"progressive": 0.5, "size": 64},
])
def test_each_option_trains_a_tiny_model_end_to_end(mnist_few, tmp_path, opts):
    kw = {"size": 32, "bs": 16} | opts
    learn = _learner(mnist_few, tmp_path / "run", device="cpu", **kw)
    learn.fine_tune(1, freeze_epochs=1)
    assert [(h["stage"], h["epoch"]) for h in learn.history] == [(0, 0), (1, 0)]
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["valid_loss"]) for h in learn.history)
    assert (tmp_path / "run" / "history.csv").exists()
    model = ql.load(learn.export(tmp_path / "model"))
    assert set(model.predict(next((mnist_few / "valid" / "7").glob("*.png"))).probs) == {"3", "7"}


def test_a_recipe_with_the_options_reaches_the_learner(tiny_folder):
    recipe = parse_recipe({"training": {"mixup": 0.4, "cutmix": 1.0, "ema": 0.99, "reduce_lr_on_plateau": True,
                                        "progressive": 0.5, "device": "cpu"},
                           "transforms": {"size": 64}, "model": {"arch": ARCH, "weights": None}})
    learn = ql.vision_learner(tiny_folder, progress=False, **learner_kwargs(recipe))
    assert (learn.mixer.mixup, learn.mixer.cutmix) == (0.4, 1.0)
    by_type = {type(cb).__name__: cb for cb in learn.cbs}
    assert by_type["EMA"].decay == 0.99 and by_type["ProgressiveResize"].start == 0.5 and "ReduceLROnPlateau" in by_type
    plain = ql.vision_learner(tiny_folder, progress=False, **learner_kwargs(parse_recipe({"model": {"arch": ARCH, "weights": None}})))
    assert plain.mixer is None and not {"EMA", "ProgressiveResize", "ReduceLROnPlateau"} & {type(cb).__name__ for cb in plain.cbs}
    with pytest.raises(ConfigError, match=r"training\.ema"):
        parse_recipe({"training": {"ema": 1.5}})
    with pytest.raises(ConfigError, match=r"training\.mixup"):
        parse_recipe({"training": {"mixup": -0.1}})


def test_bad_options_fail_before_any_image_is_decoded(tmp_path):
    missing = tmp_path / "nothing-here"
    for bad, match in (({"mixup": -1}, "mixup=-1"), ({"ema": 2.0}, "ema=2.0"), ({"progressive": 1.5}, "progressive=1.5")):
        with pytest.raises(ConfigError, match=match):
            _learner(missing, **bad)
