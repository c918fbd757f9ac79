"""Interpretation: the tables equal hand computations on tiny cases, plots draw exactly that data, permutation
importance finds the column that decides the target, and the Learner and a loaded model agree on the same items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

import quicklearn as ql
from quicklearn.analysis.interpretation import Interpretation
from quicklearn.core.errors import ConfigError
from quicklearn.tasks.tabular.importance import input_columns

pytestmark = pytest.mark.usefixtures("one_thread")


def not_blank(path: Path) -> None:
    """A real PNG with more than one colour in it."""
    arr = np.asarray(Image.open(path).convert("RGB"))
    assert arr.shape[0] > 100 and arr.shape[1] > 100
    assert (arr != arr[0, 0]).any(axis=-1).mean() > 0.02, f"{path} is (nearly) uniform"


def logits_for(pred: list[int], n: int) -> torch.Tensor:
    """Logits whose argmax is `pred`, with different confidences per row (so losses differ)."""
    conf = torch.linspace(1.0, 3.0, len(pred))[:, None]
    return F.one_hot(torch.tensor(pred), n).float() * conf


# ---- classification tables ------------------------------------------------------------------------------------
# actual:    a a a b b c c c c d
# predicted: a a b b b c c a a a      (d is never predicted)
ACTUAL = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
PRED = [0, 0, 1, 1, 1, 2, 2, 0, 0, 0]
CLASSES = ["a", "b", "c", "d"]


def test_confusion_matrix_and_per_class_equal_a_hand_computation():
    interp = Interpretation.from_preds(logits_for(PRED, 4), torch.tensor(ACTUAL), CLASSES)
    cm = interp.confusion_matrix()
    assert list(cm.index) == CLASSES and list(cm.columns) == CLASSES
    assert cm.index.name == "actual" and cm.columns.name == "predicted"
    assert cm.to_numpy().tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [2, 0, 2, 0], [1, 0, 0, 0]]
    norm = interp.confusion_matrix(normalize=True)
    assert norm.loc["a"].tolist() == pytest.approx([2 / 3, 1 / 3, 0, 0]) and norm.loc["c", "a"] == pytest.approx(0.5)

    table = interp.per_class()
    # predicted counts: a 5, b 3, c 2, d 0; support: a 3, b 2, c 4, d 1
    precision = {"a": 2 / 5, "b": 2 / 3, "c": 2 / 2, "d": 0.0}
    recall = {"a": 2 / 3, "b": 2 / 2, "c": 2 / 4, "d": 0 / 1}
    f1 = {c: 0.0 if precision[c] + recall[c] == 0 else 2 * precision[c] * recall[c] / (precision[c] + recall[c]) for c in CLASSES}
    support = {"a": 3, "b": 2, "c": 4, "d": 1}
    for c in CLASSES:
        assert table.loc[c, "precision"] == pytest.approx(precision[c])
        assert table.loc[c, "recall"] == pytest.approx(recall[c])
        assert table.loc[c, "f1"] == pytest.approx(f1[c])
        assert table.loc[c, "support"] == support[c]
    assert table.loc["macro avg", "precision"] == pytest.approx(sum(precision.values()) / 4)
    assert table.loc["macro avg", "f1"] == pytest.approx(sum(f1.values()) / 4)
    assert table.loc["weighted avg", "recall"] == pytest.approx(sum(recall[c] * support[c] for c in CLASSES) / 10)
    assert table.loc["weighted avg", "f1"] == pytest.approx(sum(f1[c] * support[c] for c in CLASSES) / 10)
    assert table.loc["macro avg", "support"] == 10 == table.loc["weighted avg", "support"]
    # and scikit-learn agrees (zero_division=0, as documented)
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(ACTUAL, PRED, labels=[0, 1, 2, 3], zero_division=0)
    assert table.loc[CLASSES, "precision"].tolist() == pytest.approx(p.tolist())
    assert table.loc[CLASSES, "f1"].tolist() == pytest.approx(f.tolist())


def test_most_confused_is_sorted_by_count_and_honours_min_val():
    interp = Interpretation.from_preds(logits_for(PRED, 4), torch.tensor(ACTUAL), CLASSES)
    assert interp.most_confused() == [("c", "a", 2), ("a", "b", 1), ("d", "a", 1)]
    assert interp.most_confused(min_val=2) == [("c", "a", 2)]
    right = Interpretation.from_preds(logits_for(ACTUAL, 4), torch.tensor(ACTUAL), CLASSES)
    assert right.most_confused() == []


def test_top_losses_are_the_largest_cross_entropies():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(40, 5, generator=g) * 2, torch.randint(0, 5, (40,), generator=g)
    items = [f"img_{i}.png" for i in range(40)]
    interp = Interpretation.from_preds(logits, targets, list("vwxyz"), items=items)
    expected = [-float(torch.log_softmax(logits[i], 0)[targets[i]]) for i in range(40)]
    top = interp.top_losses(6)
    assert list(top.columns) == ["index", "item", "actual", "predicted", "probability", "loss"]
    assert top["index"].tolist() == sorted(range(40), key=lambda i: -expected[i])[:6]
    assert top["loss"].tolist() == pytest.approx(sorted(expected, reverse=True)[:6], rel=1e-5)
    for row in top.itertuples():
        probs = logits[row.index].softmax(0)
        assert row.item == items[row.index] and row.actual == "vwxyz"[int(targets[row.index])]
        assert row.predicted == "vwxyz"[int(probs.argmax())] and row.probability == pytest.approx(float(probs.max()))
    assert len(interp.top_losses(100)) == 40


def test_multi_label_per_label_table_uses_the_threshold():
    # labels x, y; probabilities after the sigmoid
    probs = torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.3, 0.8], [0.4, 0.1]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    interp = Interpretation.from_preds(torch.logit(probs), targets, ["x", "y"], kind="multi")
    table = interp.per_class()
    # at 0.5: x predicted on rows 0, 1 (tp 2, fn 1): P 1, R 2/3;  y predicted on rows 1, 2 (tp 1, fp 1): P 1/2, R 1
    assert table.loc["x", ["precision", "recall"]].tolist() == pytest.approx([1.0, 2 / 3])
    assert table.loc["y", ["precision", "recall"]].tolist() == pytest.approx([0.5, 1.0])
    assert table.loc["x", "f1"] == pytest.approx(0.8) and table.loc["y", "f1"] == pytest.approx(2 / 3)
    assert table.loc[["x", "y"], "support"].tolist() == [3, 1]
    # a per-label threshold: x at 0.25 also catches row 2 (tp 3) and row 3 (fp): P 3/4, R 1
    lower = Interpretation.from_preds(torch.logit(probs), targets, ["x", "y"], kind="multi", thresh={"x": 0.25, "y": 0.5})
    assert lower.per_class().loc["x", ["precision", "recall"]].tolist() == pytest.approx([0.75, 1.0])
    row3 = {name: t.set_index("index").loc[3] for name, t in (("plain", interp.top_losses(4)), ("lower", lower.top_losses(4)))}
    assert row3["plain"]["predicted"] == "" and row3["lower"]["predicted"] == "x" and row3["lower"]["actual"] == ""
    bce = F.binary_cross_entropy(probs[3], targets[3])  # mean over the labels
    assert row3["plain"]["loss"] == pytest.approx(float(bce), rel=1e-5)
    with pytest.raises(ConfigError, match="single"):
        interp.confusion_matrix()


# ---- plots: checked through what they draw -----------------------------------------------------------------------
def test_confusion_matrix_plot_writes_the_counts_in_the_cells(tmp_path):
    interp = Interpretation.from_preds(logits_for(PRED, 4), torch.tensor(ACTUAL), CLASSES)
    fig = interp._confusion_figure()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(v) for v in interp.confusion_matrix().to_numpy().flatten()]
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES and ax.get_xlabel() == "predicted"
    assert np.array_equal(ax.images[0].get_array(), interp.confusion_matrix().to_numpy())
    norm = interp._confusion_figure(normalize=True).axes[0]
    assert [t.get_text() for t in norm.texts][:4] == ["0.67", "0.33", "0.00", "0.00"]
    path = interp.plot_confusion_matrix(tmp_path / "cm.png")
    not_blank(path)
    many = Interpretation.from_preds(torch.randn(300, 25), torch.arange(300) % 25, [f"class_{i}" for i in range(25)])
    assert len(many._confusion_figure().axes[0].texts) == 625
    not_blank(many.plot_confusion_matrix(tmp_path / "cm25.png"))


def test_regression_metrics_and_scatter_draw_the_predictions(tmp_path):
    targets = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    preds = torch.tensor([1.5, 1.5, 3.0, 5.0, 4.0])
    interp = Interpretation.from_preds(preds, targets, kind="regression")
    m = interp.regression_metrics()
    err = preds - targets  # .5 -.5 0 1 -1
    assert m["rmse"] == pytest.approx(float(np.sqrt((0.25 + 0.25 + 0 + 1 + 1) / 5)))
    assert m["mae"] == pytest.approx(3 / 5)
    assert m["r2"] == pytest.approx(1 - float(err.pow(2).sum()) / 10.0)  # the targets' sum of squares is 10
    top = interp.top_losses(2)
    assert sorted(top["index"].tolist()) == [3, 4] and top["loss"].tolist() == [1.0, 1.0]
    ax = interp._regression_figure().axes[0]
    assert np.allclose(ax.collections[0].get_offsets(), np.stack([targets, preds], 1))
    line = ax.lines[0]
    assert np.allclose(line.get_xdata(), line.get_ydata())  # the y = x line
    assert f"RMSE {m['rmse']:.3g}" in ax.get_title() and "R²" in ax.get_title()
    not_blank(interp.plot_regression(tmp_path / "regression.png"))
    with pytest.raises(ConfigError, match="regression"):
        interp.per_class()
    with pytest.raises(ConfigError, match="image model"):
        interp.plot_top_losses(tmp_path / "x.png")
    assert [p.name for p in interp.save(tmp_path / "out")] == ["regression.png", "top_losses.csv"]


def test_from_preds_refuses_mismatched_shapes():
    with pytest.raises(ConfigError, match="one column per class"):
        Interpretation.from_preds(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), ["a", "b"])
    with pytest.raises(ConfigError, match="must match"):
        Interpretation.from_preds(torch.randn(4, 2), torch.zeros(3, dtype=torch.long), ["a", "b"])


# ---- tables: permutation importance ----------------------------------------------------------------------------------
def deciding_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """`signal` (numbers, some missing) decides the target alone; `noise` and `color` are unrelated to it."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    frame = pd.DataFrame({"signal": signal, "noise": rng.normal(size=n), "color": rng.choice(["red", "blue", "green"], n)})
    frame["target"] = np.where(signal > 0, "up", "down")
    frame.loc[rng.choice(n, 20, replace=False), "signal"] = np.nan  # missing -> the median, plus signal_na
    frame["target"] = frame["target"].where(frame["signal"].notna(), "down")
    return frame


def test_permuting_derived_features_equals_permuting_the_raw_column():
    frame = deciding_frame(60)
    frame["when"] = pd.date_range("2020-01-01", periods=60, freq="11D").astype(str)
    roles = ql.infer_roles(frame, "target", date_parts=True)
    proc = ql.TabularProcessor.fit(frame, roles)
    cols = input_columns(proc)
    assert set(cols) == {"signal", "noise", "color", "when"}
    signal_at = [len(proc.cat_names) + proc.cont_names.index("signal"), proc.cat_names.index("signal_na")]
    assert sorted(cols["signal"]) == sorted(signal_at)
    assert len(cols["when"]) == 4
    x = proc.transform(frame)
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(1))
    for col, idx in cols.items():
        shuffled = frame.copy()
        shuffled[col] = frame[col].to_numpy()[perm.numpy()]
        expected = x.clone()
        expected[:, idx] = x[perm][:, idx]
        assert torch.equal(proc.transform(shuffled), expected), col


def test_permutation_importance_ranks_the_deciding_column_first(tmp_path):
    frame = deciding_frame()
    learn = ql.tabular_learner(frame, y="target", progress=False, seed=0, layers=(32, 16))
    learn.fit_one_cycle(6, 2e-2)
    assert learn.validate()["accuracy"] > 0.9
    interp = ql.interpret(learn)
    fi = interp.feature_importance(n_repeats=3, seed=0)
    assert list(fi.columns) == ["column", "importance", "std"] and fi["column"].iloc[0] == "signal"
    assert fi.set_index("column").loc["signal", "importance"] > 0.3  # shuffled, it is a coin toss: ~0.5 drop
    for col in ("noise", "color"):
        assert abs(fi.set_index("column").loc[col, "importance"]) < 0.06
    assert interp.top_losses(3)["item"].iloc[0].count("=") >= 4  # the row, decoded: color=..., signal_na=..., ...
    with pytest.raises(ConfigError, match="multi-label"):
        ql.interpret(learn, thresh=0.3)

    # the bars are the table, most important on top
    from quicklearn.analysis.plots import importance_figure

    ax = importance_figure(fi, interp.importance_label).axes[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[-1] == "signal" and ticks[::-1] == fi["column"].tolist()  # barh's last tick is drawn at the top
    widths = [p.get_width() for p in ax.patches]
    assert widths[::-1] == pytest.approx(fi["importance"].tolist())
    written = interp.save(tmp_path / "interp")
    assert {p.name for p in written} == {"confusion_matrix.csv", "confusion_matrix.png", "per_class.csv",
                                         "top_losses.csv", "feature_importance.csv", "feature_importance.png"}
    not_blank(tmp_path / "interp" / "feature_importance.png")
    assert pd.read_csv(tmp_path / "interp" / "feature_importance.csv")["column"].iloc[0] == "signal"

    # a loaded model on labelled rows: permute the DataFrame's column, predict again
    model = ql.load(learn.export(tmp_path / "model"))
    valid = frame.iloc[:150]
    loaded = ql.interpret(model, valid)
    assert loaded.confusion_matrix().to_numpy().sum() == 150
    assert loaded.feature_importance()["column"].iloc[0] == "signal"
    assert "signal=" in loaded.top_losses(1)["item"].iloc[0]


def test_regression_table_importance_is_an_rmse_increase(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.uniform(-2, 2, 300), "noise": rng.normal(size=300)})
    frame["y"] = 3 * frame["x"] + 0.05 * rng.normal(size=300)
    learn = ql.tabular_learner(frame, y="y", progress=False, seed=0, layers=(32, 16))
    learn.fit_one_cycle(6, 2e-2)
    interp = ql.interpret(learn)
    fi = interp.feature_importance(n_repeats=2).set_index("column")
    assert fi.loc["x", "importance"] > 1.0 > abs(fi.loc["noise", "importance"]) * 10
    preds, targets = learn.get_preds()
    assert interp.regression_metrics()["rmse"] == pytest.approx(float((preds - targets).pow(2).mean().sqrt()), rel=1e-5)
    assert {p.name for p in interp.save(tmp_path / "r")} == {"regression.png", "top_losses.csv", "feature_importance.csv",
                                                              "feature_importance.png"}


# ---- images end to end: Learner, loaded model, CLI -----------------------------------------------------------------------
def test_vision_learner_loaded_model_and_cli_agree(tiny_folder, tmp_path):
    from quicklearn_cli.app import app

    learn = ql.vision_learner(tiny_folder, size=32, bs=4, progress=False, seed=0, valid_pct=0.34)
    learn.fine_tune(1)
    interp = ql.interpret(learn)
    n_valid = len(learn.dls.valid_paths)
    assert interp.items == learn.dls.valid_paths and interp.confusion_matrix().to_numpy().sum() == n_valid
    preds, _ = learn.get_preds()
    assert torch.allclose(interp.preds, preds)
    grid = interp.plot_top_losses(tmp_path / "top.png", k=4)
    not_blank(grid)

    model_dir = learn.export(tmp_path / "model")
    paths = learn.dls.valid_paths
    labels = pd.DataFrame({"path": [str(p) for p in paths], "color": [p.parent.name for p in paths]})
    labels.to_csv(tmp_path / "valid.csv", index=False)
    loaded = ql.interpret(ql.load(model_dir), tmp_path / "valid.csv", y="color")
    assert torch.allclose(loaded.preds, interp.preds, atol=1e-4)  # the same items, the same outputs
    assert loaded.confusion_matrix().equals(interp.confusion_matrix())

    r = CliRunner().invoke(app, ["interpret", str(model_dir), "--data", str(tiny_folder), "--top-losses", "4"])
    assert r.exit_code == 0, r.output
    assert "precision" in r.stdout and "top 4 losses" in r.stdout
    out = model_dir / "interpretation"
    for name in ("confusion_matrix.csv", "confusion_matrix.png", "per_class.csv", "top_losses.csv", "top_losses.png"):
        assert (out / name).is_file() and str(out / name) in r.stdout.replace("\n", ""), name
    whole = ql.interpret(ql.load(model_dir), tiny_folder)
    cm = pd.read_csv(out / "confusion_matrix.csv", index_col=0)
    assert cm.to_numpy().tolist() == whole.confusion_matrix().to_numpy().tolist() and cm.to_numpy().sum() == 18
    assert len(pd.read_csv(out / "top_losses.csv")) == 4
    not_blank(out / "top_losses.png")
    not_blank(out / "confusion_matrix.png")

    r = CliRunner().invoke(app, ["interpret", str(model_dir), "--data", str(tmp_path / "valid.csv")])
    assert r.exit_code == 1 and "--target" in r.output and "Traceback" not in r.output


# ---- texts: the Learner's length-sorted validation batches come back in row order ------------------------------------
def test_text_learner_items_follow_the_validation_rows(tiny_bert, tmp_path):
    rng = np.random.default_rng(0)
    words = {"pos": "great wonderful moving superb".split(), "neg": "awful boring dull bland".split()}
    rows = [{"text": "the film was " + " ".join(rng.choice(words[lab], size=rng.integers(1, 9))), "label": lab,
             "is_valid": i % 3 == 0} for i, lab in enumerate(["pos", "neg"] * 30)]
    frame = pd.DataFrame(rows)
    learn = ql.text_learner(frame, text="text", y="label", arch=str(tiny_bert), max_len=32, bs=8, progress=False)
    learn.fit_one_cycle(1, 1e-2)
    interp = ql.interpret(learn)
    valid = frame[frame["is_valid"]].reset_index(drop=True)
    assert interp.items == valid["text"].tolist()  # decoded ids, in row order (the loader sorts by length)
    assert [learn.dls.vocab.classes[int(t)] for t in interp.targets] == valid["label"].tolist()
    loaded = ql.interpret(ql.load(learn.export(tmp_path / "m")), valid)
    assert torch.allclose(loaded.preds, interp.preds, atol=1e-4)


def test_interpret_is_the_function_whatever_was_imported_first():
    """A public name that is also a submodule's name turns into the module once that submodule is imported."""
    import pkgutil

    import quicklearn
    import quicklearn.analysis.interpretation  # noqa: F401 (what Learner.show_results imports)

    assert callable(ql.interpret) and ql.interpret.__name__ == "interpret"
    submodules = {m.name for m in pkgutil.iter_modules(quicklearn.__path__)}
    assert not submodules & set(quicklearn._EXPORTS)


def test_multi_label_threshold_override_is_checked():
    interp = Interpretation.from_preds(torch.randn(6, 2), torch.ones(6, 2), ["x", "y"], kind="multi", thresh={"z": 0.3})
    with pytest.raises(ConfigError, match="'z' is not one of the model's labels"):
        interp.per_class()
    interp.thresh = 1.5
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        interp.per_class()
