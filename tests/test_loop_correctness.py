"""The training loop gives exactly the model asked for in every combination of options (issue 16).

Each test here failed on the code before its fix: callback order, EMA with SaveBest, resume with early stopping,
resume on changed data, gradient accumulation, a label seen only in validation, column roles from validation
rows, the text attention mask, EXIF orientation and a bad pretrained tag.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import quicklearn as ql
from quicklearn.tasks.vision.images import decode_image
from tests.conftest import write_image

ARCH = "resnet10t"  # small timm CNN with BatchNorm: fast at 16-32 px


def _learner(folder, path=None, **kw):
    opts = dict(arch=ARCH, weights=None, size=16, bs=4, progress=False, seed=0)
    opts.update(kw)
    return ql.vision_learner(folder, path=path, **opts)


class _Interrupt(ql.Callback):
    """A kill right after the checkpoint of (stage, epoch) was written (it runs after every other callback)."""

    order = 1000

    def __init__(self, stage, epoch):
        self.stage, self.epoch = stage, epoch

    def on_epoch_end(self, epoch, logs):
        if logs["stage"] == self.stage and epoch == self.epoch:
            raise KeyboardInterrupt


class _Wreck(ql.Callback):
    """From epoch `at` of every fit on, multiply the learning rate by `factor`: later epochs validate worse."""

    def __init__(self, at, factor):
        self.at, self.factor = at, factor

    def on_epoch_begin(self, epoch, logs):
        if epoch >= self.at:
            self.learner.lr_scale = self.factor


# ---- callback order ---------------------------------------------------------------------------------------
def test_callbacks_run_in_the_order_they_declare_not_the_order_given(tiny_folder, tmp_path):
    calls = []

    class Probe(ql.Callback):
        def __init__(self, name, order):
            self.name, self.order = name, order

        def on_epoch_end(self, epoch, logs):
            calls.append(self.name)

    probes = [Probe("late", 50), Probe("early", -50), Probe("default", 0)]
    learn = _learner(tiny_folder, tmp_path, cbs=[*probes, ql.SaveBest(), ql.EarlyStopping()], ema=0.9)
    learn.fit(1, 1e-3)
    assert calls == ["early", "default", "late"]
    orders = {type(cb).__name__: cb.order for cb in learn.cbs if not isinstance(cb, Probe)}
    # the weight average swaps in before anyone looks at the validated model; the checkpoint is written last,
    # once every callback has updated the state it saves
    assert orders["EMA"] < orders["SaveBest"] and orders["EMA"] < orders["EarlyStopping"]
    assert orders["Checkpoint"] > max(o for name, o in orders.items() if name != "Checkpoint")


# ---- EMA and SaveBest -------------------------------------------------------------------------------------
def test_save_best_with_ema_keeps_and_exports_the_best_averaged_weights(tiny_folder, tmp_path):
    best = ql.SaveBest(monitor="valid_loss")
    learn = _learner(tiny_folder, cbs=[best, _Wreck(2, 30.0)], ema=0.9)
    learn.fit(4, 1e-2)
    losses = [h["valid_loss"] for h in learn.history]
    assert losses.index(min(losses)) < len(losses) - 1, losses  # the run got worse after its best epoch
    assert best.best == pytest.approx(min(losses))
    # what the model holds now is what scored best: the averaged weights of the best epoch
    assert learn.validate()["loss"] == pytest.approx(min(losses), rel=1e-5)
    learn.export(tmp_path / "model")
    loaded = ql.load(tmp_path / "model")
    torch.testing.assert_close(loaded.raw(learn.dls.valid_paths), learn.get_preds()[0], rtol=0, atol=1e-4)


# ---- resume ---------------------------------------------------------------------------------------------------
def _stopper_learner(folder, path, extra=()):
    cbs = [ql.EarlyStopping(monitor="valid_loss", patience=2), ql.SaveBest(monitor="valid_loss"), _Wreck(2, 30.0), *extra]
    return _learner(folder, path, cbs=cbs, ema=0.9)


@pytest.mark.parametrize("where", [(1, 1), (1, 2)])
def test_resume_with_early_stopping_save_best_and_ema_ends_as_the_uninterrupted_run(tiny_folder, tmp_path, where):
    full = _stopper_learner(tiny_folder, tmp_path / "full")
    full.fine_tune(8, freeze_epochs=1)
    assert len(full.history) < 1 + 8, "early stopping must stop this run before its last epoch"
    run = tmp_path / "killed"
    killed = _stopper_learner(tiny_folder, run, [_Interrupt(*where)])
    with pytest.raises(KeyboardInterrupt):
        killed.fine_tune(8, freeze_epochs=1)
    resumed = _stopper_learner(tiny_folder, run)
    resumed.fine_tune(8, freeze_epochs=1, resume=True)
    keys = ("stage", "epoch", "train_loss", "valid_loss", "accuracy")
    assert [[h[k] for k in keys] for h in resumed.history] == [[h[k] for k in keys] for h in full.history]
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, full.model.state_dict()[k]), k
    assert resumed.validate()["loss"] == full.validate()["loss"]


@pytest.mark.parametrize("change", ["added image", "other split"])
def test_resume_refuses_data_that_changed_since_the_checkpoint(tiny_folder, tmp_path, change):
    run = tmp_path / "run"
    killed = _learner(tiny_folder, run, cbs=[_Interrupt(1, 0)])
    with pytest.raises(KeyboardInterrupt):
        killed.fine_tune(2)
    kw = {}
    if change == "added image":
        write_image(tiny_folder / "red" / "red_extra.png", size=(30, 20), color=(230, 10, 10))
        what = "training items"
    else:
        kw["valid_pct"] = 0.4
        what = "split"
    resumed = _learner(tiny_folder, run, **kw)
    with pytest.raises(ql.ConfigError, match=rf"data changed since the checkpoint.*{what}.*--overwrite"):
        resumed.fine_tune(2, resume=True)


def test_resume_on_the_same_data_still_continues(tiny_folder, tmp_path):
    run = tmp_path / "run"
    killed = _learner(tiny_folder, run, cbs=[_Interrupt(1, 0)])
    with pytest.raises(KeyboardInterrupt):
        killed.fine_tune(2)
    resumed = _learner(tiny_folder, run)
    resumed.fine_tune(2, resume=True)
    assert [(h["stage"], h["epoch"]) for h in resumed.history] == [(0, 0), (1, 0), (1, 1)]


# ---- gradient accumulation ------------------------------------------------------------------------------------
class _Linear(nn.Module):
    """A model whose full-batch gradient is well defined (no BatchNorm, no dropout)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.lin(x)

    def groups(self):
        return [list(self.parameters())]


def _table(n=22, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": np.where(x[:, 0] + x[:, 1] > 0, "p", "q")})


@pytest.mark.parametrize("grad_clip", [None, 0.05])
def test_accumulated_gradient_equals_the_full_batch_gradient_with_a_partial_last_group(grad_clip):
    dls = ql.tabular_dataloaders(_table(), "y", bs=4, splitter="random")
    torch.manual_seed(0)
    model = _Linear(dls.train.x.shape[1], 2)
    learn = ql.Learner(dls, model, opt="sgd", wd=0.0, grad_accum=3, grad_clip=grad_clip, progress=False, device="cpu")
    n = len(dls.train)
    assert n % 3 != 0, "the test needs a partial last accumulation group"
    learn._make_opt()
    params = list(model.parameters())
    seen = []
    learn.opt.register_step_pre_hook(
        lambda opt, args, kwargs: seen.append(([p.detach().clone() for p in params], [p.grad.clone() for p in params])))
    dls.train.set_epoch(0)  # the epoch fit(1) runs first: stage 0, epoch 0
    batches = list(dls.train)
    learn.fit(1, 0.1)
    groups = [batches[k:k + 3] for k in range(0, n, 3)]
    assert len(seen) == len(groups)
    for (weights, grads), group in zip(seen, groups):
        x = torch.cat([b[0] for b in group])
        y = torch.cat([b[1] for b in group])
        ref = _Linear(x.shape[1], 2)
        with torch.no_grad():
            for p, w in zip(ref.parameters(), weights):
                p.copy_(w)
        nn.functional.cross_entropy(ref(x), y).backward()
        want = [p.grad for p in ref.parameters()]
        norm = torch.cat([g.flatten() for g in want]).norm()
        if grad_clip is not None and norm > grad_clip:
            want = [g * (grad_clip / (norm + 1e-6)) for g in want]
            got_norm = torch.cat([g.flatten() for g in grads]).norm()
            assert float(got_norm) == pytest.approx(grad_clip, rel=1e-4)  # the clipped norm is the one asked for
        for g, w in zip(grads, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


# ---- data: labels and roles from the training rows only --------------------------------------------------------
def test_a_label_seen_only_in_validation_is_refused_for_multi_label(tmp_path):
    rows = []
    for i in range(12):
        p = write_image(tmp_path / "img" / f"{i}.png", size=(20, 20), color=(10 * i, 100, 200))
        labels, valid = ("a b" if i % 2 else "a"), i >= 8
        if i == 10:
            labels = "a c"  # 'c' appears in a validation row only: its output could never train
        rows.append({"path": p.name, "labels": labels, "is_valid": valid})
    csv = tmp_path / "img" / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    with pytest.raises(ql.DataError, match=r"label 'c' has no training items"):
        ql.image_dataloaders(csv, y="labels", size=16)


def test_column_roles_are_inferred_from_the_training_rows_only():
    rng = np.random.default_rng(0)
    n = 70
    valid = np.arange(n) >= 45
    frame = pd.DataFrame({
        # 5 codes in the training rows; the validation rows bring 25 unseen ones (30 in all: 'continuous' if seen)
        "code": np.where(valid, 100 + np.arange(n), rng.integers(0, 5, n)),
        # one value in the training rows, several in validation: nothing to learn from
        "flag": np.where(valid, rng.integers(0, 3, n), 7),
        "x": rng.normal(size=n),
        "y": np.where(rng.normal(size=n) > 0, "p", "q"),
        "is_valid": valid,
    })
    dls = ql.tabular_dataloaders(frame, "y", splitter="column:is_valid")
    assert "code" in dls.roles.cat_names, dls.roles.describe()
    assert "flag" in dls.roles.dropped and "one value" in dls.roles.dropped["flag"], dls.roles.describe()


# ---- text: the attention mask --------------------------------------------------------------------------------------
def test_the_attention_mask_comes_from_the_tokenizer_even_when_padding_shares_a_real_token(tiny_bert, tmp_path):
    transformers = pytest.importorskip("transformers")
    from quicklearn.tasks.text.data import TextLoader, tokenize

    folder = tmp_path / "pad-is-sep"
    shutil.copytree(tiny_bert, folder)
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    tok.pad_token = tok.sep_token  # like GPT-2's pad = eos: padding reuses a token every text contains
    tok.save_pretrained(str(folder))
    frame = pd.DataFrame({"text": [f"the film was {w}" for w in ["great", "dull", "moving", "bland"] * 5],
                          "label": ["pos", "neg"] * 10})
    learn = ql.text_learner(frame, text="text", y="label", arch=str(folder), bs=4, progress=False, seed=0)
    tok = learn.dls.tokenizer
    assert tok.pad_token_id == tok.sep_token_id
    model = learn.model.eval()
    texts = ["the film was great", "the film was dull and far too long for anyone"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        want = model.head((hidden * m).sum(1) / m.sum(1))
        loader = TextLoader(tokenize(tok, texts, 64), torch.zeros(2), learn.dls.train.pad_id, bs=2)
        got = model(loader.collate(torch.arange(2)))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    learn.export(tmp_path / "model")
    torch.testing.assert_close(ql.load(tmp_path / "model").raw(texts), want, rtol=1e-5, atol=1e-5)


# ---- images: EXIF orientation everywhere --------------------------------------------------------------------------
def test_exif_orientation_is_applied_to_jpeg_png_and_pil_inputs_alike(tiny_folder, tmp_path):
    learn = _learner(tiny_folder, size=32)
    learn.fine_tune(1)
    learn.export(tmp_path / "model")
    model = ql.load(tmp_path / "model")
    h, w = 24, 48
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 3] = (220, 20, 20)  # red on the left, blue on the right: rotation changes what a crop sees
    arr[:, w // 3:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    jpeg = tmp_path / "phone.jpg"
    Image.fromarray(arr).save(jpeg, exif=exif.tobytes(), quality=95)
    stored = np.asarray(Image.open(jpeg).convert("RGB"))  # the JPEG's pixels as stored, before orientation
    png = tmp_path / "phone.png"
    Image.fromarray(stored).save(png, exif=exif.tobytes())
    a, b = decode_image(jpeg), decode_image(png)
    assert tuple(a.shape) == tuple(b.shape) == (3, w, h)  # both turned upright
    with Image.open(jpeg) as im:
        preds = [*model.predict([jpeg, png]), model.predict(im)]
    assert len({p.label for p in preds}) == 1
    for p in preds[1:]:
        for c in p.probs:
            assert p.probs[c] == pytest.approx(preds[0].probs[c], abs=1e-3)


# ---- architectures: a bad pretrained tag ---------------------------------------------------------------------------
def test_a_bad_pretrained_tag_is_one_line_naming_the_tags_that_exist(tiny_folder):
    with pytest.raises(ql.ConfigError, match=r"resnet18.*'bogus'.*a1_in1k"):
        _learner(tiny_folder, arch="resnet18.bogus")
    with pytest.raises(ql.ConfigError, match=r"'bogus'.*a1_in1k"):
        ql.create_body("resnet18.bogus", weights=None)
