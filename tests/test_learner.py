"""The Learner on tiny real images with random init: freezing, schedules, lr finder, resume, precision, metrics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import quicklearn as ql
from quicklearn.core.errors import TrainingError
from quicklearn.train.optim import group_lrs
from quicklearn.train.schedules import cos_anneal

ARCH = "resnet10t"  # small timm CNN with BatchNorm: fast at 16-32 px


def _learner(folder, tmp_path=None, **kw):
    opts = dict(arch=ARCH, weights=None, size=16, bs=8, progress=False, seed=0)
    opts.update(kw)
    return ql.vision_learner(folder, path=tmp_path, **opts)


def _bn_params(model):
    return {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters(recurse=False)}


@pytest.mark.parametrize("train_bn", [True, False])
def test_freeze_keeps_body_fixed_and_bn_trains_only_with_train_bn(tiny_folder, train_bn):
    learn = _learner(tiny_folder, train_bn=train_bn, bs=4)  # several steps: timm zero-inits each block's last BN
    learn.freeze()
    body = dict(learn.model.body.named_parameters())
    before = {n: p.detach().clone() for n, p in body.items()}
    bn = _bn_params(learn.model.body)
    head_before = [p.detach().clone() for p in learn.model.head.parameters()]
    learn.fit_one_cycle(1, 1e-2)
    for n, p in body.items():
        if id(p) in bn:
            changed = not torch.equal(p, before[n])
            assert changed == train_bn, f"BatchNorm {n} changed={changed} with train_bn={train_bn}"
        else:
            assert torch.equal(p, before[n]), f"frozen {n} changed"
            assert p.grad is None and not p.requires_grad
    assert any(not torch.equal(a, b) for a, b in zip(head_before, learn.model.head.parameters()))


def test_unfreeze_trains_everything(tiny_folder):
    learn = _learner(tiny_folder, bs=4)
    learn.freeze()
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())
    before = [p.detach().clone() for p in learn.model.body.parameters()]
    learn.fit(1, 1e-3)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, learn.model.body.parameters()))
    assert changed == len(before)


def test_param_groups_are_ordered_and_discriminative(tiny_folder):
    learn = _learner(tiny_folder)
    groups = learn.model.groups()
    assert len(groups) == 3  # two body groups + head
    n_params = sum(len(g) for g in groups)
    assert n_params == len(list(learn.model.parameters()))
    lrs = group_lrs(slice(1e-5, 1e-3), 3)
    assert lrs[0] == pytest.approx(1e-5) and lrs[1] == pytest.approx(1e-4) and lrs[2] == pytest.approx(1e-3)
    assert group_lrs(slice(None, 1e-3), 3) == [1e-4, 1e-4, 1e-3]
    # no weight decay on biases and norm weights
    for pg in learn._make_opt() or learn.opt.param_groups:
        if pg["weight_decay"] > 0:
            assert all(p.ndim > 1 for p in pg["params"])


def test_one_cycle_lr_and_momentum_follow_the_formula(tiny_folder):
    learn = _learner(tiny_folder, bs=4)
    seen = []

    class Probe(ql.Callback):
        def on_batch_end(self, batch, logs):
            pg = next(g for g in self.learner.opt.param_groups if g["group_idx"] == self.learner.n_groups - 1)
            seen.append((pg["lr"], pg["betas"][0]))

    learn.cbs.append(Probe())
    max_lr, div, final_div, pct = 1e-2, 25.0, 1e5, 0.25
    epochs = 4
    learn.fit_one_cycle(epochs, max_lr, pct_start=pct, div=div, final_div=final_div)
    n = len(seen)
    assert n == epochs * len(learn.dls.train)
    lr0, mom0 = seen[0]
    assert lr0 == pytest.approx(max_lr / div) and mom0 == pytest.approx(0.95)
    # the peak: the step whose position is closest to pct_start
    k = min(range(n), key=lambda i: abs(i / n - pct))
    pos = k / n
    expect_lr = cos_anneal(max_lr / div, max_lr, pos / pct) if pos < pct else cos_anneal(max_lr, max_lr / final_div, (pos - pct) / (1 - pct))
    assert seen[k][0] == pytest.approx(expect_lr, rel=1e-6)
    assert max(s[0] for s in seen) == pytest.approx(max_lr, rel=0.05)
    assert min(s[1] for s in seen) == pytest.approx(0.85, abs=0.01)
    last_pos = (n - 1) / n
    assert seen[-1][0] == pytest.approx(cos_anneal(max_lr, max_lr / final_div, (last_pos - pct) / (1 - pct)), rel=1e-6)
    assert seen[-1][0] < max_lr / 10 and seen[-1][1] > 0.94


def test_lr_find_restores_model_and_optimizer(tiny_folder, tmp_path):
    learn = _learner(tiny_folder)
    learn.fit(1, 1e-3)  # an optimizer with state
    model_before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt_before = learn.opt.state_dict()
    opt_state_before = {k: {n: t.clone() for n, t in v.items() if torch.is_tensor(t)} for k, v in opt_before["state"].items()}
    res = learn.lr_find(num_it=20, plot=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 1000
    assert 1e-7 <= res.suggestion <= 10 and len(res.lrs) == len(res.losses) > 3
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, model_before[k]), k
    after = learn.opt.state_dict()
    for k, v in opt_state_before.items():
        for n, t in v.items():
            assert torch.equal(after["state"][k][n], t)
    assert [g["lr"] for g in after["param_groups"]] == [g["lr"] for g in opt_before["param_groups"]]


def test_lr_find_without_optimizer_leaves_none(tiny_folder, tmp_path):
    learn = _learner(tiny_folder)
    learn.lr_find(num_it=10, plot=None)
    assert learn.opt is None


def test_same_seed_same_metrics(tiny_folder):
    a = _learner(tiny_folder)
    a.fine_tune(1)
    b = _learner(tiny_folder)
    b.fine_tune(1)
    assert [h["valid_loss"] for h in a.history] == [h["valid_loss"] for h in b.history]


class _Interrupt(ql.Callback):
    """Simulates a kill right after the checkpoint of (stage, epoch) was written."""

    order = 1000  # after the Checkpoint callback (order 100)

    def __init__(self, stage, epoch):
        self.stage, self.epoch = stage, epoch

    def on_epoch_end(self, epoch, logs):
        if logs["stage"] == self.stage and epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("where", [(0, 0), (1, 0), (1, 1)])
def test_resume_gives_exactly_the_uninterrupted_metrics(tiny_folder, tmp_path, where):
    full = _learner(tiny_folder, tmp_path / "full")
    full.fine_tune(3, freeze_epochs=1)
    run = tmp_path / "killed"
    killed = _learner(tiny_folder, run, cbs=[_Interrupt(*where)])
    with pytest.raises(KeyboardInterrupt):
        killed.fine_tune(3, freeze_epochs=1)
    resumed = _learner(tiny_folder, run)
    resumed.fine_tune(3, freeze_epochs=1, resume=True)
    keys = ("stage", "epoch", "train_loss", "valid_loss", "accuracy")
    assert [[h[k] for k in keys] for h in resumed.history] == [[h[k] for k in keys] for h in full.history]
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, full.model.state_dict()[k]), k


def test_history_files_and_checkpoint_written(tiny_folder, tmp_path):
    learn = _learner(tiny_folder, tmp_path)
    learn.fine_tune(1)
    assert (tmp_path / "history.csv").read_text().startswith("stage,phase,epoch,train_loss,valid_loss,accuracy")
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["stage"] == 1 and ck["epoch"] == 0


def test_nan_loss_stops_with_a_clear_message(tiny_folder):
    calls = {"n": 0}

    def exploding(out, y):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(out, y)
        return loss * float("nan") if calls["n"] >= 2 else loss

    learn = _learner(tiny_folder, bs=4)
    learn.loss_func = exploding
    with pytest.raises(TrainingError, match=r"epoch 1, batch 2.*lower --lr"):
        learn.fit(1, 1e-3)


@pytest.mark.xfail(strict=False, reason="open bug: CPU bf16 autocast training turns NaN at random under a fixed seed, "
                   "even alone in a fresh process (4 of 7 runs on 2026-12-02, channels-last or not); cause not found")
def test_bf16_autocast_on_cpu_computes_in_bf16_keeps_fp32_weights_and_learns(digits_folder):
    """On real digits, 10 steps an epoch: a smooth descent. Its first bf16 steps sometimes end in NaN, in the full
    suite and alone in a fresh process alike, with the same seed (so not state left by other tests; see the
    issue 19-23 note of 2026-12-02); until that is found it is a non-strict xfail, its assertions unchanged."""
    learn = _learner(digits_folder, precision="bf16", device="cpu", bs=32)
    conv_dtypes = set()
    hook = learn.model.body.conv1[0].register_forward_hook(lambda m, i, out: conv_dtypes.add(out.dtype))
    learn.fit(3, 3e-3)
    hook.remove()
    assert learn.amp_dtype == torch.bfloat16
    assert conv_dtypes == {torch.bfloat16}  # training and validation forwards ran in bf16
    assert {p.dtype for p in learn.model.parameters()} == {torch.float32}  # master weights stay fp32
    losses = [h["train_loss"] for h in learn.history]
    assert losses[-1] < 0.85 * losses[0], losses  # it learns the digits
    assert learn.history[-1]["accuracy"] > 0.3, learn.history  # three times chance on the held-out digits
    # bf16 predictions are the fp32 ones within bf16's precision, on the same weights
    bf16_logits = learn.get_preds()[0]
    learn.amp_dtype = None
    torch.testing.assert_close(bf16_logits, learn.get_preds()[0], rtol=0.05, atol=0.05)


def test_gradual_unfreezing(tiny_folder):
    learn = _learner(tiny_folder)
    frozen_seen = []

    class Probe(ql.Callback):
        def on_epoch_begin(self, epoch, logs):
            frozen_seen.append(self.learner.frozen_to)

    learn.cbs.append(Probe())
    learn.fine_tune(0, freeze_epochs=1, unfreeze_milestones=((1, 2), 3))
    # frozen epoch (2 frozen groups), then: last body group joins at epoch 1, everything at epoch 2
    assert frozen_seen == [2, 2, 1, 0]


def test_grad_accumulation_of_3_batches_of_5_trains_the_weights_of_one_batch_of_15(tiny_folder):
    """With the batch statistics out of the way (pretrained-style frozen BatchNorm statistics, a head without
    BatchNorm or dropout, no augmentation), accumulating 3 batches of 5 is one step on their batch of 15, clipping
    included. (tests/test_loop_correctness.py checks a partial last group against the full-batch gradient.)"""
    kw = dict(opt="sgd", label_smoothing=0.1, grad_clip=0.5, freeze_bn_stats=True, augment=False,
              head=ql.HeadConfig(batchnorm=False, dropout=0.0))
    one = _learner(tiny_folder, bs=15, **kw)
    three = _learner(tiny_folder, bs=5, grad_accum=3, **kw)
    assert one.dls.train.n == 15 and len(one.dls.train) == 1 and len(three.dls.train) == 3
    # on ATen's own CPU kernels: oneDNN's differ between a batch of 15 and batches of 5 by more than rounding on
    # some CPUs (an AMD EPYC with AVX-512: up to 1.4% of a tensor's update after two steps), and this test is about
    # the loop's arithmetic, not the kernels'
    torch.backends.mkldnn.enabled = False
    try:
        one.fit(2, 5e-2)
        three.fit(2, 5e-2)
    finally:
        torch.backends.mkldnn.enabled = True
    for (name, a), b in zip(one.model.state_dict().items(), three.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
    assert not torch.equal(one.model.state_dict()["head.layers.2.weight"], _learner(tiny_folder, bs=15, **kw).model.state_dict()["head.layers.2.weight"])


def test_summary_lists_layers_and_trainable_counts(tiny_folder):
    learn = _learner(tiny_folder)
    learn.freeze()
    text = learn.summary()
    assert "body" in text and "head" in text and "trainable" in text
    assert "frozen groups 2 of 3" in text


def test_grayscale_input_channels(mnist_tiny):
    learn = ql.vision_learner(mnist_tiny, arch=ARCH, weights=None, size=16, bs=64, channels=1, progress=False)
    x, _ = next(iter(learn.dls.train))
    assert x.shape[1] == 1
    assert learn.model.body.conv1[0].in_channels == 1


def test_metrics_match_sklearn():
    from sklearn.metrics import f1_score, roc_auc_score

    from quicklearn.train.metrics import auroc, f1_macro

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 3, generator=g)
    y = torch.randint(0, 3, (200,), generator=g)
    assert f1_macro(logits, y) == pytest.approx(f1_score(y, logits.argmax(1), average="macro"))
    probs = logits.softmax(1).numpy()
    assert auroc(logits, y) == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-6)
    bl = torch.randn(100, 2, generator=g)
    by = torch.randint(0, 2, (100,), generator=g)
    assert auroc(bl, by) == pytest.approx(roc_auc_score(by, bl.softmax(1)[:, 1].numpy()), abs=1e-6)


def test_early_stopping_and_save_best_watch_the_monitored_metric(tiny_folder):
    # an improvement must beat the best by min_delta, which nothing does after the first epoch of a fit
    stopper = ql.EarlyStopping(monitor="valid_loss", patience=2, min_delta=1e9)
    best = ql.SaveBest(monitor="valid_loss")
    learn = _learner(tiny_folder, cbs=[stopper, best], monitor="valid_loss")
    learn.fit(1, 1e-2)
    learn.fit(10, 1e-3)
    assert len(learn.history) == 1 + 3  # first epoch sets the best, then 2 epochs without improvement + the stopping one
    assert learn.stop_training
    losses = [h["valid_loss"] for h in learn.history[1:]]
    assert best.best == pytest.approx(min(losses))
    assert learn.validate()["loss"] == pytest.approx(best.best, rel=1e-5)


@pytest.mark.parametrize("progress", [None, False])
def test_early_stopping_and_save_best_say_what_they_did(tiny_folder, capsys, progress):
    """Off a terminal (progress=None) the user reads why the fit ended before its last epoch and which epoch's
    weights the model holds; progress=False keeps every line to itself."""
    cbs = [ql.EarlyStopping(monitor="valid_loss", patience=2, min_delta=1e9), ql.SaveBest(monitor="valid_loss")]
    learn = _learner(tiny_folder, cbs=cbs, monitor="valid_loss", progress=progress)
    capsys.readouterr()
    learn.fit(10, 1e-3)
    err = capsys.readouterr().err
    if progress is False:
        assert err == ""
        return
    losses = [h["valid_loss"] for h in learn.history]
    best = min(range(len(losses)), key=losses.__getitem__)  # SaveBest's own min_delta is 0
    assert "epoch 3/10:" in err and "epoch 4/10:" not in err  # nothing beats epoch 1 by EarlyStopping's min_delta
    assert "early stopping after epoch 3: valid_loss has not improved for 2 epochs" in err
    assert f"kept the weights of epoch {best + 1}, the best by valid_loss ({losses[best]:.4f})" in err
    assert err.index("epoch 3/10:") < err.index("early stopping") < err.index("kept the weights")


def test_extra_metrics_and_monitor(tiny_folder):
    learn = _learner(tiny_folder, metrics=["accuracy", "f1_macro", "top5_accuracy", "auroc"], monitor="f1_macro")
    learn.fit(1, 1e-3)
    row = learn.history[-1]
    assert {"accuracy", "f1_macro", "top5_accuracy", "auroc"} <= set(row)
    assert row["top5_accuracy"] == 1.0  # 3 classes: the top 5 always hold the answer
    assert learn.monitor == "f1_macro" and learn.greater_is_better("f1_macro")
    with pytest.raises(ql.ConfigError, match="Did you mean 'accuracy'"):
        _learner(tiny_folder, metrics=["acuracy"])


def test_fit_flat_cos_holds_then_anneals(tiny_folder):
    learn = _learner(tiny_folder, bs=4)
    seen = []

    class Probe(ql.Callback):
        def on_batch_end(self, batch, logs):
            seen.append(self.learner.opt.param_groups[-1]["lr"])

    learn.cbs.append(Probe())
    learn.fit_flat_cos(4, 1e-3, pct_start=0.5)
    half = len(seen) // 2
    assert all(v == pytest.approx(1e-3) for v in seen[:half])
    assert seen[-1] < 1e-4 and all(a >= b for a, b in zip(seen[half:], seen[half + 1:]))


def test_lr_find_command_prints_a_suggestion_and_saves_the_plot(tiny_folder, tmp_path):
    from quicklearn_cli.app import app
    from typer.testing import CliRunner

    plot = tmp_path / "lr.png"
    result = CliRunner().invoke(app, ["lr-find", "--data", str(tiny_folder), "--arch", ARCH, "--weights", "none",
                                      "--size", "16", "--bs", "4", "--out", str(plot)])
    assert result.exit_code == 0, result.output
    assert "suggested learning rate" in result.output and plot.stat().st_size > 1000


def test_pretrained_stem_is_adapted_for_one_channel():
    from quicklearn.tasks.vision.weights import resolve_pretrained

    body, desc = ql.create_body("tf_efficientnet_lite0", weights="imagenet", in_chans=1)
    rgb = resolve_pretrained("tf_efficientnet_lite0", "imagenet")[0]["conv_stem.weight"]
    assert body.conv_stem.weight.shape[1] == 1
    assert torch.allclose(body.conv_stem.weight, rgb.sum(dim=1, keepdim=True))  # timm's adapt_input_conv
    assert "ImageNet" in desc


def test_auto_batch_size_keeps_the_default_on_cpu(tiny_folder):
    learn = _learner(tiny_folder, bs="auto", device="cpu")
    assert learn.dls.train.bs == min(32, learn.dls.train.n)
