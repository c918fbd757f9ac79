"""Text: tokenization and padding, pooling that ignores padding, length bucketing, freeze/unfreeze over the layer
groups, export/load parity with the tokenizer in the model folder, multi-label, and the recipe end to end with the
real all-MiniLM-L6-v2 on a slice of imdb-sample. Most tests use a tiny randomly initialized BERT for speed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the [text] extra is not installed")

import quicklearn as ql  # noqa: E402
from quicklearn.config.files import load_recipe
from quicklearn.config.run import run_recipe  # noqa: E402
from quicklearn.config.schema import merge_overrides  # noqa: E402
from quicklearn.core.errors import WeightsError  # noqa: E402
from quicklearn.tasks.text.data import TextLoader  # noqa: E402
from quicklearn.tasks.text.model import TextModel, load_encoder  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WORDS_POS = "great wonderful moving brilliant superb touching".split()
WORDS_NEG = "awful boring dull terrible tedious bland".split()


def reviews(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Short synthetic reviews whose label is the sentiment of their words (learnable by a tiny model)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        words = rng.choice(WORDS_POS if pos else WORDS_NEG, size=rng.integers(2, 12))
        rows.append({"text": "the film was " + " ".join(words), "label": "pos" if pos else "neg", "id": i})
    return pd.DataFrame(rows)


def test_loader_pads_with_the_pad_id_and_buckets_by_length():
    ids = [torch.arange(1, n + 1, dtype=torch.int32) for n in [3, 9, 1, 7, 5, 2, 8, 4]]
    dl = TextLoader(ids, torch.arange(8), pad_id=0, bs=2, shuffle=True, seed=3)
    batches = dl.batches()
    assert sorted(int(i) for b in batches for i in b) == list(range(8))  # every text once
    x = dl.collate(batches[0])  # (B, 2, L): ids, then the attention mask from each text's length
    assert x.dtype == torch.int64 and x.shape[1:] == (2, max(len(ids[int(i)]) for i in batches[0]))
    for (row, mask), i in zip(x, batches[0]):
        n = len(ids[int(i)])
        assert torch.equal(row[:n], ids[int(i)].long()) and (row[n:] == 0).all()
        assert (mask[:n] == 1).all() and (mask[n:] == 0).all()
    # bucketing: within the one pool, batches hold neighbours in length order
    spans = [dl.lengths[b].max() - dl.lengths[b].min() for b in batches]
    plain = TextLoader(ids, torch.arange(8), pad_id=0, bs=2, shuffle=True, bucket=False, seed=3)
    assert sum(spans) < sum(plain.lengths[b].max() - plain.lengths[b].min() for b in plain.batches())
    valid = TextLoader(ids, torch.arange(8), pad_id=0, bs=3)
    assert [len(ids[int(i)]) for b in valid.batches() for i in b] == [9, 8, 7, 5, 4, 3, 2, 1]


def test_mean_pooling_ignores_padding(tiny_bert):
    encoder, tok, _ = load_encoder(str(tiny_bert))
    model = TextModel(encoder, 2, tok.pad_token_id).eval()
    ids = torch.tensor(tok(["a short text"])["input_ids"])
    padded = torch.cat([ids, torch.full((1, 7), tok.pad_token_id)], 1)
    with torch.no_grad():
        assert torch.allclose(model(ids), model(padded), atol=1e-5)
        cls = TextModel(encoder, 2, tok.pad_token_id, pooling="cls").eval()
        cls.head.load_state_dict(model.head.state_dict())
        assert not torch.allclose(model(ids), cls(ids))


def test_freeze_trains_the_head_only_then_all_groups(tiny_bert, one_thread):
    learn = ql.text_learner(reviews(), y="label", arch=str(tiny_bert), max_len=32, bs=16, progress=False)
    groups = learn.model.groups()
    assert len(groups) == 4 and groups[-1] == list(learn.model.head.parameters())  # embeddings, 2 block groups, head
    learn.freeze()
    trainable = [p for p in learn.model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in learn.model.head.parameters()}
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())
    learn.fine_tune(2, base_lr=1e-2)
    lrs = [pg["lr"] for pg in learn.opt.param_groups]
    assert len({round(v, 12) for v in lrs}) > 1  # discriminative rates across groups
    assert learn.validate()["accuracy"] >= 0.9


def test_export_load_parity_and_predict_strings(tiny_bert, tmp_path, one_thread):
    learn = ql.text_learner(reviews(), y="label", arch=str(tiny_bert), max_len=32, bs=16, progress=False)
    learn.fine_tune(2, base_lr=1e-2)
    learn.export(tmp_path / "m")
    assert (tmp_path / "m" / "tokenizer" / "tokenizer.json").is_file() and (tmp_path / "m" / "encoder" / "config.json").is_file()
    model = ql.load(tmp_path / "m")
    texts = ["the film was great and moving", "the film was dull", "boring"]
    tok = learn.dls.tokenizer
    learn.model.eval()
    with torch.no_grad():
        expect = torch.stack([learn.model(torch.tensor(tok([t])["input_ids"]))[0] for t in texts])
    np.testing.assert_allclose(model.raw(texts).numpy(), expect.numpy(), atol=1e-5)
    preds = model.predict(texts)
    assert [p.label for p in preds][:2] == ["pos", "neg"] and all(abs(sum(p.probs.values()) - 1) < 1e-5 for p in preds)
    assert model.predict("great").label in ("pos", "neg")
    table = model.predict(reviews(10, seed=5))
    assert list(table.columns) == [*reviews(10, seed=5).columns, "prediction", "probability", "prob_neg", "prob_pos"]
    assert len(table) == 10


def test_multi_label_and_empty_texts(tiny_bert, caplog, one_thread):
    frame = reviews(80)
    frame["label"] = np.where(frame.index % 2 == 1, "neg", np.where(frame.index % 4 == 0, "pos short", "pos"))
    frame.loc[3, "text"] = ""
    with caplog.at_level("WARNING", logger="quicklearn"):
        learn = ql.text_learner(frame, text="text", y="label", arch=str(tiny_bert), max_len=16, bs=16, progress=False)
    assert learn.dls.kind == "multi" and list(learn.dls.vocab.classes) == ["neg", "pos", "short"]
    assert "1 empty text(s) in text, rows [3]" in caplog.text
    learn.fit_one_cycle(1, 1e-2)
    assert set(learn.validate()) == {"loss", "accuracy_multi", "f1"}


def test_offline_hub_name_fails_fast_with_both_ways(monkeypatch):
    monkeypatch.setenv("QUICKLEARN_OFFLINE", "1")
    with pytest.raises(WeightsError, match=r"arch='minilm'.*quicklearn\[text\].*huggingface-cli download"):
        load_encoder("bert-base-uncased")


@pytest.fixture(scope="module")
def imdb_slice(tmp_path_factory) -> Path:
    from conftest import _need

    frame = pd.read_csv(_need(SHARED / "imdb-sample" / "texts.csv"))
    part = pd.concat([frame[~frame["is_valid"]].head(160), frame[frame["is_valid"]].head(40)])
    path = tmp_path_factory.mktemp("imdb") / "slice.csv"
    part.to_csv(path, index=False)
    return path


def test_recipe_end_to_end_with_real_minilm(imdb_slice, tmp_path):
    recipe = merge_overrides(load_recipe("text"), {"data.path": str(imdb_slice), "data.y": "label",
                                                   "model.max_len": 64, "fit.freeze_epochs": 4, "fit.epochs": 0,
                                                   "training.bs": 16})
    result = run_recipe(recipe, out=tmp_path / "run", progress=False)
    assert result.learner.dls.text_cols == ["text"] and result.learner.dls.valid.n == 40  # the is_valid split
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # the head on real MiniLM sentence vectors, 160 reviews cut to 64 tokens: above chance (measured 0.70;
    # the unfrozen phase is tested on the tiny BERT above and measured on all of imdb-sample in benchmarks/text.py)
    assert metrics["valid"]["accuracy"] >= 0.65, metrics["valid"]
    model = ql.load(tmp_path / "run")
    good, bad = model.predict(["An absolute delight: wonderful acting and a moving story.",
                               "A dreadful, boring mess. I want my two hours back."])
    assert good.label == "positive" and bad.label == "negative"


def test_cli_trains_a_text_model(imdb_slice, tmp_path):
    from test_cli import invoke

    out = tmp_path / "cli"
    r = invoke("train", "--data", imdb_slice, "--task", "text", "--text-col", "text", "--target", "label",
               "--epochs", "0", "--freeze-epochs", "1", "--bs", "32", "--max-len", "64", "--out", out)
    assert r.exit_code == 0, r.stderr
    assert "fine-tuning text encoder minilm" in r.stdout and (out / "model.safetensors").is_file()
    r = invoke("predict", out, imdb_slice, "--out", tmp_path / "pred.csv")
    assert r.exit_code == 0, r.stderr
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 200 and set(pred["prediction"]) <= {"positive", "negative"} and pred["probability"].between(0.5, 1).all()
    r = invoke("train", "--data", imdb_slice, "--task", "text", "--target", "label", "--text-col", "review", "--out", tmp_path / "x")
    assert r.exit_code == 1 and "text column 'review' not found" in r.stderr and "Traceback" not in r.stderr
