"""Collaborative filtering: the dot-bias model against a hand computation, y_range bounds, unknown users and items,
recommendations (exclude_seen), similar items, every split (and no time leakage), export/load/ONNX parity, column
inference and its ambiguity error, bad inputs through the CLI, resume, and the CLI end to end on movielens-small."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import quicklearn as ql
from quicklearn.core.errors import DataError
from quicklearn.tasks.collab.columns import claim_columns, infer_columns
from quicklearn.tasks.collab.data import clean_ratings, split_ratings
from quicklearn.tasks.collab.learner import auto_epochs, auto_y_range, collab_dataloaders, collab_learner
from quicklearn.tasks.collab.model import CollabModel
from quicklearn.tasks.registry import infer_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def movielens() -> Path:
    from conftest import _need

    return _need(SHARED / "movielens-small")


@pytest.fixture(scope="module")
def small(movielens, tmp_path_factory) -> Path:
    """The ratings of the first 120 users (about 17,000), beside a copy of movies.csv: a fast real data set."""
    folder = tmp_path_factory.mktemp("ml-small")
    ratings = pd.read_csv(movielens / "ratings.csv")
    ratings[ratings.userId <= 120].to_csv(folder / "ratings.csv", index=False)
    pd.read_csv(movielens / "movies.csv").to_csv(folder / "movies.csv", index=False)
    return folder / "ratings.csv"


@pytest.fixture(scope="module")
def trained(small, tmp_path_factory, one_thread):
    """A model trained on `small` with the defaults but a shorter budget, exported and loaded back."""
    learn = collab_learner(small, progress=False, seed=0)
    learn.fine_tune(4, 2e-2, freeze_epochs=0, div=25)
    folder = learn.export(tmp_path_factory.mktemp("collab-model") / "model")
    return learn, folder, ql.load(folder)


# ---- the model --------------------------------------------------------------------------------------------------
def test_dot_bias_model_matches_a_hand_computation_on_3_users_and_4_items():
    model = CollabModel(n_users=4, n_items=5, n_factors=2, y_range=(0.0, 5.0), mean=3.0)
    u = torch.tensor([[0.0, 0.0], [1.0, 0.5], [-1.0, 2.0], [0.3, -0.2]])
    i = torch.tensor([[0.0, 0.0], [0.5, 1.0], [2.0, 0.0], [-1.0, 1.0], [0.0, -0.5]])
    bu, bi, mu = torch.tensor([0.0, 0.1, -0.2, 0.3]), torch.tensor([0.0, 0.5, -0.5, 0.0, 0.25]), 0.4
    with torch.no_grad():
        model.user_factors.weight.copy_(u)
        model.item_factors.weight.copy_(i)
        model.user_bias.copy_(bu)
        model.item_bias.copy_(bi)
        model.global_bias.fill_(mu)
    codes = torch.tensor([[a, b] for a in range(1, 4) for b in range(1, 5)])
    out = model(codes).flatten()
    for k, (a, b) in enumerate(codes.tolist()):
        raw = mu + float(bu[a]) + float(bi[b]) + float((u[a] * i[b]).sum())
        assert out[k].item() == pytest.approx(5.0 / (1.0 + math.exp(-raw)), abs=1e-6)
    # a side never seen in training (code 0): the global mean plus the known side's bias, no interaction
    unknown = model(torch.tensor([[0, 2], [3, 0], [0, 0]])).flatten()
    expect = [mu + float(bi[2]), mu + float(bu[3]), mu]
    for got, raw in zip(unknown.tolist(), expect):
        assert got == pytest.approx(5.0 / (1.0 + math.exp(-raw)), abs=1e-6)
    # the global bias starts where the prediction is the training mean
    assert CollabModel(3, 3, 2, y_range=(0.0, 5.0), mean=3.0)(torch.tensor([[0, 0]])).item() == pytest.approx(3.0)


def test_y_range_bounds_every_prediction_and_auto_widens_the_rating_scale():
    model = CollabModel(10, 10, 4, y_range=(0.05, 5.45))
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-50, 50)  # absurd weights: the sigmoid still keeps predictions inside the range
    codes = torch.cartesian_prod(torch.arange(10), torch.arange(10))
    out = model(codes)
    assert out.min() >= 0.05 - 1e-6 and out.max() <= 5.45 + 1e-6 and (out.max() - out.min()) > 5.0  # float32 ends
    assert auto_y_range(torch.tensor([0.5, 3.0, 5.0])) == pytest.approx((0.05, 5.45))
    free = CollabModel(3, 3, 2, y_range=None)
    with torch.no_grad():
        free.global_bias.fill_(7.0)
    assert free(torch.tensor([[0, 0]])).item() == pytest.approx(7.0)  # no squashing without a y_range


def test_mlp_and_both_models_train_and_fall_back_like_the_dot_model(small, one_thread):
    for arch in ("nn", "both"):
        learn = collab_learner(small, arch=arch, layers=(16,), progress=False, seed=0)
        learn.fit_one_cycle(1, 1e-2)
        assert learn.history[-1]["rmse"] < 1.1
        m = learn.model.eval()
        with torch.no_grad():
            got = m(torch.tensor([[0, 5]])).item()
            raw = m.global_bias + m.item_bias[5]
            lo, hi = m.y_range
            assert got == pytest.approx(float(torch.sigmoid(raw) * (hi - lo) + lo), abs=1e-6)


# ---- using a trained model -----------------------------------------------------------------------------------------
def test_trained_model_beats_the_mean_and_unknown_users_and_items_fall_back(trained, small):
    learn, folder, model = trained
    ratings = learn.dls.valid.targets
    assert learn.validate()["rmse"] < 0.97 * float((ratings - learn.dls.train.targets.mean()).pow(2).mean().sqrt())
    pairs = pd.DataFrame({"userId": [1, 987654, 1, 987654], "movieId": [1, 1, 424242, 424242]})
    out = model.predict(pairs)
    assert out["cold_start"].tolist() == ["none", "user", "item", "both"]
    m, lo_hi = model.model, model.model.y_range
    squash = lambda raw: float(torch.sigmoid(raw) * (lo_hi[1] - lo_hi[0]) + lo_hi[0])  # noqa: E731
    u, i = int(model.index.codes("user", [1])[0]), int(model.index.codes("item", [1])[0])
    with torch.no_grad():
        assert out["prediction"][1] == pytest.approx(squash(m.global_bias + m.item_bias[i]), abs=1e-5)
        assert out["prediction"][2] == pytest.approx(squash(m.global_bias + m.user_bias[u]), abs=1e-5)
        assert out["prediction"][3] == pytest.approx(squash(m.global_bias), abs=1e-5)
    one = model.predict((1, 1))
    assert one.label == pytest.approx(out["prediction"][0], abs=1e-6)
    assert [p.label for p in model.predict([(1, 1), {"userId": 987654, "movieId": 1}])] == \
        pytest.approx(out["prediction"][:2].tolist(), abs=1e-6)


def test_recommend_excludes_seen_items_and_an_unknown_user_gets_the_most_rated(trained, small, caplog):
    learn, folder, model = trained
    frame = pd.read_csv(small)
    rated = frame.loc[frame.userId == 4, "movieId"]
    seen = set(rated[model.index.codes("item", rated) > 0])  # rated items the model knows (some only validate)
    everything = model.recommend(4, n=len(model.index.items))
    assert seen & set(everything["item"]) == seen  # without exclude_seen, rated items are candidates too
    top = model.recommend(4, n=10, exclude_seen=True)
    assert len(top) == 10 and not seen & set(top["item"])
    assert list(top.columns) == ["item", "title", "prediction", "ratings"]
    assert top["prediction"].is_monotonic_decreasing and top["title"].notna().all()  # titles from movies.csv
    best_unseen = everything[~everything["item"].isin(seen)].head(10)
    assert top["item"].tolist() == best_unseen["item"].tolist()
    assert (model.recommend(4, n=5, min_ratings=20)["ratings"] >= 20).all()
    with caplog.at_level("WARNING", logger="quicklearn"):
        cold = model.recommend("someone new", n=5)
    assert "not in the training data" in caplog.text
    counts = pd.Series(model.index.item_counts, index=model.index.items).sort_values(ascending=False, kind="stable")
    assert cold["ratings"].tolist() == counts.head(5).tolist()


def test_similar_items_by_cosine_and_item_lookup_by_title(trained):
    _, _, model = trained
    near = model.similar("Toy Story (1995)", n=5, min_ratings=0)
    code = model.find_item(1)
    assert code == model.find_item("toy story (1995)") and 1 not in near["item"].tolist()
    vectors = torch.nn.functional.normalize(model.model.item_vectors().detach()[1:], dim=1)
    sims = vectors @ vectors[code - 1]
    sims[code - 1] = -2
    best = torch.topk(sims, 5).indices + 1
    assert near["item"].tolist() == model.index.ids("item", best.tolist())
    assert near["similarity"].tolist() == pytest.approx(sims[best - 1].tolist(), abs=1e-6)
    assert (model.similar(1, n=20)["ratings"] >= 10).all()  # by default, neighbours with 10+ training ratings
    with pytest.raises(DataError, match="matches 3 titles"):
        model.find_item("toy story")
    with pytest.raises(DataError, match="not one of the model's"):
        model.find_item("no such film at all")


def test_interpret_gives_bias_tables_an_item_map_and_rmse_by_user_activity(trained, small, tmp_path):
    learn, folder, model = trained
    interp = ql.interpret(learn)
    assert interp.kind == "regression" and len(interp) == learn.dls.valid.n
    high, low = interp.tables["items_highest_bias"], interp.tables["items_lowest_bias"]
    assert high["bias"].is_monotonic_decreasing and low["bias"].is_monotonic_increasing
    assert high["bias"].min() > low["bias"].max() and (high["ratings"] >= 10).all()
    act = interp.tables["rmse_by_user_activity"]
    assert act["ratings"].sum() == len(interp)
    err = (interp.preds - interp.targets).pow(2).mean().sqrt().item()
    assert math.sqrt((act["rmse"] ** 2 * act["ratings"]).sum() / act["ratings"].sum()) == pytest.approx(err, rel=1e-5)
    fig = interp.figures["item_map"]()
    points = fig.axes[0].collections[0].get_offsets()
    assert len(points) == (np.asarray(model.index.item_counts) >= 10).sum()
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert len(labels) == 30 and "Forrest Gump (1994)" in labels
    written = {p.name for p in interp.save(tmp_path / "interp")}
    assert {"items_highest_bias.csv", "rmse_by_user_activity.csv", "item_map.png", "regression.png"} <= written
    # a loaded model on labelled ratings it has not seen: users with fewer ratings in the activity table
    frame = pd.read_csv(small).head(300)
    loaded = ql.interpret(model, frame)
    assert loaded.tables["rmse_by_user_activity"]["ratings"].sum() == 300


def test_export_load_and_onnx_parity(trained, tmp_path):
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    learn, folder, model = trained
    codes = torch.tensor([[0, 0], [1, 1], [3, 7], [0, 12], [5, 0]])
    assert torch.allclose(model.raw_codes(codes), learn.model.eval()(codes).flatten().detach(), atol=1e-6)
    path = ql.export_onnx(folder, tmp_path / "collab.onnx")
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["quicklearn"])
    assert meta["task"] == "collab" and meta["check"]["max_abs_diff"] < 1e-4
    assert meta["items"][:3] == model.index.ids("item", [1, 2, 3]) and len(meta["users"]) == len(model.index.users)
    many = torch.stack([torch.randint(0, model.index.n_users, (64,)), torch.randint(0, model.index.n_items, (64,))], 1)
    got = session.run(None, {"pairs": many.numpy()})[0]
    np.testing.assert_allclose(got, model.raw_codes(many).numpy(), atol=1e-5)


def test_resume_takes_the_checkpoint_back(small, tmp_path, one_thread):
    first = collab_learner(small, progress=False, seed=1, path=tmp_path)
    first.fit_one_cycle(2, 1e-2)
    assert (tmp_path / "checkpoint.pt").exists()
    again = collab_learner(small, progress=False, seed=1, path=tmp_path)
    again.fit_one_cycle(2, 1e-2, resume=True)  # both epochs are done: it takes the checkpoint back, trains nothing
    assert again.history == first.history
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


# ---- splits -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cleaned(movielens):
    frame = pd.read_csv(movielens / "ratings.csv")
    cols = infer_columns(frame, "ratings.csv", time="timestamp")
    return clean_ratings(frame, cols, "ratings.csv")


def test_random_split_is_seeded_and_its_share(cleaned):
    train, valid = split_ratings(cleaned, "random", 0.2, 0, "r")
    assert len(valid) == round(0.2 * len(cleaned)) and not set(train) & set(valid)
    assert np.array_equal(valid, split_ratings(cleaned, "random", 0.2, 0, "r")[1])
    assert not np.array_equal(valid, split_ratings(cleaned, "random", 0.2, 1, "r")[1])


def test_user_split_holds_out_whole_users(cleaned):
    train, valid = split_ratings(cleaned, "users", 0.2, 0, "r")
    users_t, users_v = set(cleaned.user.iloc[train]), set(cleaned.user.iloc[valid])
    assert not users_t & users_v and len(users_v) == round(0.2 * cleaned.user.nunique())
    assert len(train) + len(valid) == len(cleaned)


def test_user_time_split_never_validates_a_rating_older_than_that_users_training(cleaned):
    train, valid = split_ratings(cleaned, "user-time:timestamp", 0.2, 0, "r")
    t, v = cleaned.iloc[train], cleaned.iloc[valid]
    newest_train = t.groupby("user")["time"].max()
    oldest_valid = v.groupby("user")["time"].min()
    assert (oldest_valid >= newest_train.reindex(oldest_valid.index)).all()  # no leakage from the future
    sizes = cleaned.groupby("user").size()
    assert (v.groupby("user").size() == np.floor(sizes * 0.2 + 0.5).astype(int)).all()  # each user's latest 20%
    assert set(t.user) == set(cleaned.user)  # every user keeps training ratings


def test_unknown_validation_users_and_items_are_counted_and_reported(small, caplog):
    with caplog.at_level("WARNING", logger="quicklearn"):
        dls = collab_dataloaders(small, splitter="users", progress=False)
    assert dls.valid_unknown["unknown_user"] == dls.valid.n  # held-out users: every rating is a cold start
    assert (dls.valid.x[:, 0] == 0).all() and "that training never saw" in caplog.text
    assert auto_epochs(dls) >= 3


# ---- columns and task inference -------------------------------------------------------------------------------------
def test_columns_are_inferred_from_their_names_and_two_candidates_are_an_error():
    frame = pd.DataFrame({"User ID": [1], "product_id": [2], "Stars": [4.0], "date": ["2024-01-01"], "name": ["x"]})
    cols = infer_columns(frame, "f.csv")
    assert (cols.user, cols.item, cols.rating) == ("User ID", "product_id", "Stars")
    assert (cols.time, cols.title) == ("date", "name")
    both = pd.DataFrame({"user": [1], "userId": [1], "movieId": [2], "rating": [3.0]})
    with pytest.raises(DataError, match=r"'user' and 'userId' could both be the user column; say which with --user"):
        infer_columns(both, "f.csv")
    assert infer_columns(both, "f.csv", user="userId").user == "userId"
    with pytest.raises(DataError, match=r"no rating column found.*--target"):
        infer_columns(pd.DataFrame({"user": [1], "item": [2], "value": [3]}), "f.csv")
    assert claim_columns(pd.DataFrame({"user": [1], "item": [2], "rating": [3.0], "genre": ["x"]})) is None
    assert claim_columns(pd.DataFrame({"user": [1], "item": [2], "rating": ["good"]})) is None


def test_task_inference_claims_ratings_and_leaves_tables_and_texts_alone(movielens):
    assert infer_task(movielens / "ratings.csv")[0].name == "collab"
    assert infer_task(movielens / "movies.csv")[0].name == "tabular"
    for csv in (SHARED / "titanic" / "train.csv", SHARED / "palmer-penguins" / "penguins.csv",
                SHARED / "imdb-sample" / "texts.csv"):
        if csv.exists():
            assert infer_task(csv)[0].name != "collab", csv


# ---- the command line ----------------------------------------------------------------------------------------------
def _quicklearn(args: list, env: dict) -> subprocess.CompletedProcess:
    """The real `quicklearn` command in a fresh process."""
    code = "import sys; from quicklearn_cli.app import main; sys.argv[0] = 'quicklearn'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=240)


def _cli(args: list):  # noqa: ANN202 (a click Result: exit_code, stdout, stderr)
    """The same command in this process (no interpreter and torch start-up per call): its app, as typer runs it."""
    from quicklearn_cli.app import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, [str(a) for a in args])


def test_bad_inputs_are_one_line_and_exit_1(tmp_path):
    cases = {
        "words.csv": ("userId,movieId,rating\n1,1,4\n2,1,good\n", "column 'rating' must hold numbers, but row 1"),
        "one_user.csv": ("userId,movieId,rating\n1,1,4\n1,2,3\n1,3,5\n", "all 3 ratings are by one user"),
        "empty.csv": ("", "cannot be read as CSV"),
        "header.csv": ("userId,movieId,rating\n", "has a header but no rows"),
        "dups.csv": ("userId,movieId,rating\n1,1,4\n1,1,2\n2,1,3\n2,2,3\n", "pair(s) are rated more than once"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        extra = ["--duplicates", "error"] if name == "dups.csv" else []
        r = _cli(["train", "--task", "collab", "--data", tmp_path / name, "--out", tmp_path / name[:-4], *extra])
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert r.exit_code == 1 and len(errors) == 1 and message in errors[0], (name, r.stderr)
        assert r.exception is None or isinstance(r.exception, SystemExit), (name, r.exception)
    # by default, a pair rated twice keeps its latest rating (the last row here: no time column), said in one warning
    frame = pd.DataFrame({"u": [1, 1, 2, 2], "i": [1, 1, 1, 2], "r": [4.0, 2.0, 3.0, 3.0]})
    cols = infer_columns(frame, "f", user="u", item="i", rating="r")
    assert clean_ratings(frame, cols, "f")["rating"].tolist() == [2.0, 3.0, 3.0]
    assert clean_ratings(frame, cols, "f", "mean")["rating"].tolist() == [3.0, 3.0, 3.0]


def test_cli_trains_predicts_recommends_and_finds_similar_items(small, tmp_path, env):
    out = tmp_path / "run"
    r = _quicklearn(["train", "--data", small, "--epochs", "3", "--out", out], env)
    assert r.returncode == 0, r.stdout + r.stderr
    said = r.stdout + r.stderr  # the column and title announcements go to stderr, the results to stdout
    assert "task: collab" in said and "titles: movies.csv" in said and "train / valid ratings" in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["valid"]["rmse"] < 1.0 and {"collab.json", "seen.safetensors"} <= {p.name for p in out.iterdir()}
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"userId": [1, 77777], "movieId": [1, 1]}).to_csv(pairs, index=False)
    r = _cli(["predict", out, pairs, "--format", "csv"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "userId,movieId,prediction,cold_start" and lines[2].endswith(",user")
    r = _cli(["recommend", out, "--user", "4", "-n", "5", "--exclude-seen", "--format", "json"])
    assert r.exit_code == 0, r.output
    recs = json.loads(r.stdout)
    rated = set(pd.read_csv(small).query("userId == 4").movieId)
    assert len(recs) == 5 and not rated & {x["item"] for x in recs} and all(x["title"] for x in recs)
    r = _cli(["recommend", out, "--user", "4", "--out", tmp_path / "recs.csv"])
    assert r.exit_code == 0 and len(pd.read_csv(tmp_path / "recs.csv")) == 10
    r = _cli(["similar", out, "--item", "Toy Story (1995)", "-n", "3"])
    assert r.exit_code == 0 and "nearest to Toy Story (1995)" in r.stdout, r.output
    r = _cli(["similar", out, "--item", "toy story"])
    assert r.exit_code == 1 and "matches 3 titles" in r.stderr
    r = _cli(["recommend", tmp_path / "nowhere", "--user", "4"])
    assert r.exit_code == 1 and "no such model folder" in r.stderr
