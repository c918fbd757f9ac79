"""The table defaults of issue 19: early stopping that restores the best epoch (checked against the recorded history),
numerical embeddings, scaling and the batched ensemble surviving export/load to 1e-5, `--baseline` writing both
metric sets, and heavy-tailed columns that train without overflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import quicklearn as ql
from quicklearn.tasks.tabular.data import TabularProcessor, infer_roles
from quicklearn.tasks.tabular.model import ByteDropout, TabularModel

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def noisy_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A weak signal under label noise: a network with a high rate overfits it within a few epochs."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(6)})
    frame["g"] = rng.choice(list("abcdefgh"), size=n)
    logit = frame["x0"] + 0.5 * (frame["g"] == "a")
    frame["y"] = np.where(logit + rng.normal(scale=2.0, size=n) > 0, "yes", "no")
    return frame


def test_early_stopping_restores_the_best_epoch(one_thread):
    learn = ql.tabular_learner(noisy_frame(), y="y", progress=False, seed=0, layers=(256, 256), dropout=0.0, wd=0.0,
                               patience=3)
    learn.fit(40, 3e-2)  # a flat, too-high rate: the validation loss bottoms out early, then rises
    losses = [h["valid_loss"] for h in learn.history]
    best = int(np.argmin(losses))
    assert len(losses) < 40, "never stopped early"
    assert len(losses) == best + 1 + 3, (losses, best)  # stopped `patience` epochs after the best one
    assert losses[-1] > losses[best] + 1e-3  # the last epoch is worse: restoring matters here
    assert learn.validate()["loss"] == pytest.approx(losses[best], abs=1e-6)  # the model holds the best epoch


@pytest.mark.parametrize("scaling", ["quantile", "robust"])
def test_embeddings_scaling_and_ensemble_round_trip_through_export(tmp_path, scaling, one_thread):
    frame = noisy_frame(240, seed=1)
    frame["skewed"] = np.exp(np.random.default_rng(2).normal(scale=3.0, size=len(frame)))
    frame.loc[::9, "x1"] = np.nan
    valid = list(range(0, len(frame), 4))
    learn = ql.tabular_learner(frame, y="y", progress=False, seed=0, scaling=scaling, num_embed=8, ensemble=4,
                               layers=(32, 16), splitter=ql.IndexSplitter(valid))
    assert learn.model.members == 4 and learn.model.cont_embed is not None
    learn.fit_one_cycle(2, 1e-2)
    learn.export(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model"]["num_embed"] == 8 and config["model"]["ensemble"] == 4
    assert config["processor"]["scaling"] == scaling
    model = ql.load(tmp_path / "m")
    preds, _ = learn.get_preds()
    np.testing.assert_allclose(model.raw(frame.iloc[valid]).numpy(), preds.numpy(), atol=1e-5)
    probs = model.predict(frame.iloc[valid].drop(columns="y"))[["prob_no", "prob_yes"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)  # the members' average is a distribution


def test_regression_ensemble_round_trip(tmp_path, one_thread):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.choice(["u", "v"], size=200)})
    frame["y"] = 3 * frame["a"] + (frame["b"] == "u") * 2 + rng.normal(scale=0.1, size=200) + 100
    valid = list(range(0, 200, 5))
    learn = ql.tabular_learner(frame, y="y", progress=False, seed=0, num_embed=4, ensemble=3, layers=(16,),
                               splitter=ql.IndexSplitter(valid))
    learn.fit_one_cycle(3, 1e-2)
    learn.export(tmp_path / "r")
    preds, _ = learn.get_preds()  # in the target's units
    out = ql.load(tmp_path / "r").raw(frame.iloc[valid])
    np.testing.assert_allclose(out.numpy().ravel(), preds.numpy().ravel(), rtol=1e-6, atol=1e-4)


def test_ensemble_trains_every_member_and_averages_probabilities_in_evaluation():
    # no BatchNorm (periodic embeddings, no hidden layer) and no dropout: training and evaluation see the same members
    model = TabularModel([5], n_cont=2, n_out=3, layers=(), dropout=0.0, num_embed=4, ensemble=4, kind="single")
    x = torch.cat([torch.randint(0, 5, (6, 1)).float(), torch.randn(6, 2)], 1)
    with torch.no_grad():
        members = model.train()(x)
        out = model.eval()(x)
    assert members.shape == (6, 4, 3) and out.shape == (6, 3)
    assert not torch.allclose(members[:, 0], members[:, 1])  # each member scales the input by its own signs
    np.testing.assert_allclose(out.exp().numpy(), members.softmax(-1).mean(1).numpy(), atol=1e-6)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_byte_dropout_drops_p_and_keeps_the_mean(p):
    drop = ByteDropout(p)
    x = torch.ones(400, 500)
    torch.manual_seed(0)
    y = drop.train()(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - round(p * 256) / 256) < 0.005  # every byte of each 64-bit draw is uniform (none biased)
    assert abs(y.mean().item() - 1.0) < 0.01  # kept values are scaled as nn.Dropout scales them
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # the Learner's per-epoch seed makes it repeatable
    assert torch.equal(drop.eval()(x), x)
    g = torch.ones(3, 8, requires_grad=True)
    drop.train()(g).sum().backward()  # the gradient flows through the kept values only
    kept = 256 / (256 - round(p * 256))
    assert all(v == 0.0 or abs(v - kept) < 1e-6 for v in g.grad.unique().tolist())
    # no parameters or buffers: a folder written with nn.Dropout in its place loads unchanged
    model = TabularModel([5], n_cont=2, n_out=2, layers=(8,), ensemble=2)
    assert isinstance(model.mlp[3], ByteDropout) and not list(model.mlp[3].state_dict())


def test_heavy_tailed_columns_train_without_overflow(tmp_path, one_thread):
    rng = np.random.default_rng(4)
    n = 400
    frame = pd.DataFrame({
        "lognormal": np.exp(rng.normal(scale=8.0, size=n)),  # values from 1e-10 to 1e+10
        "pareto": rng.pareto(0.5, size=n) * 1e30,  # an infinite-mean tail, values to ~1e36
        "signal": rng.normal(size=n),
    })
    frame["y"] = np.where(frame["signal"] + (frame["lognormal"] > 1) > 0.5, "hi", "lo")
    roles = infer_roles(frame, "y")
    proc = TabularProcessor.fit(frame, roles, scaling="quantile")
    x = proc.transform(frame, "frame")
    assert torch.isfinite(x).all() and float(x.abs().max()) < 4  # ranks, not magnitudes
    auto = TabularProcessor.fit(frame, roles)  # the default: ranks for the heavy tails, mean/std for the rest
    assert sorted(auto.quantiles) == ["lognormal", "pareto"]
    assert torch.isfinite(auto.transform(frame, "frame")).all()
    learn = ql.tabular_learner(frame, y="y", progress=False, seed=0)  # the defaults
    learn.fit_one_cycle(3, 1e-2)
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["valid_loss"]) for h in learn.history)
    assert learn.validate()["accuracy"] > 0.7
    learn.export(tmp_path / "m")
    extreme = {"lognormal": 1e300, "pareto": 1e-300, "signal": 0.0}  # beyond anything the training rows had
    p = ql.load(tmp_path / "m").predict(extreme)
    assert np.isfinite(p.probability)


def test_baseline_writes_both_metric_sets(tmp_path):
    from conftest import _need
    from quicklearn_cli.app import app
    from typer.testing import CliRunner

    penguins = _need(SHARED / "palmer-penguins" / "penguins.csv")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(penguins), "--target", "species", "--baseline",
                                      "--epochs", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["baseline"]["metrics"]) == set(metrics["valid"]) == {"loss", "accuracy"}
    assert metrics["baseline"]["model"] == "HistGradientBoostingClassifier"
    assert metrics["baseline"]["metrics"]["accuracy"] > 0.9  # penguins' species are easy for boosting
    assert "HistGradientBoostingClassifier" in result.output
    assert json.loads((out / "config.json").read_text())["task"] == "tabular"  # the folder holds the network
