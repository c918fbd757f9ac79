"""`quicklearn serve`: the HTTP server on tiny models trained here (real photos, the Titanic table, texts, real
ratings), driven over real HTTP: every task's routes, each bad request the issue lists (its status, its one-line
JSON message, and the server alive afterwards), 100 concurrent bad and good requests, the API key, the body cap,
dynamic batching, the ONNX backend, a graceful SIGTERM, the checksum refusal, and the page in headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("multipart", reason="the [serve] extra is not installed (python-multipart)")
httpx = pytest.importorskip("httpx", reason="the [serve] extra is not installed")

import quicklearn as ql  # noqa: E402
from quicklearn.core.fileio import write_json  # noqa: E402
from quicklearn.serving.http.batching import Batcher, Busy  # noqa: E402
from quicklearn.serving.http.server import build_server, warn_host  # noqa: E402
from quicklearn.serving.http.settings import ServeSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
KEY = "test-key-0123456789"
pytestmark = pytest.mark.usefixtures("one_thread")


# ---- running a server ----------------------------------------------------------------------------------------
@dataclass
class Running:
    base: str
    server: Any
    key: str | None

    def client(self, key: str | None = "default", **kw: Any) -> "httpx.Client":
        key = self.key if key == "default" else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60, **kw)

    def alive(self) -> bool:
        return httpx.get(self.base + "/health", timeout=10).json()["status"] == "ok"


@contextlib.contextmanager
def running(folder: Path, **settings: Any) -> Iterator[Running]:
    """The server of `folder` in a thread, on a free port of 127.0.0.1, stopped (drained) afterwards."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings.setdefault("api_key", "")
    server = build_server(ServeSettings(folder, port=sock.getsockname()[1], **settings), sock)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    run = Running(f"http://127.0.0.1:{sock.getsockname()[1]}", server, settings["api_key"] or None)
    for _ in range(400):
        try:
            if httpx.get(run.base + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.025)
    try:
        yield run
    finally:
        server.stop()
        thread.join(20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_error(r: "httpx.Response", status: int, *words: str) -> str:
    """A 4xx JSON error of one line that says what is wrong."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "status"} and body["status"] == status
    message = body["error"]
    assert message and "\n" not in message and len(message) < 400
    for w in words:
        assert w.lower() in message.lower(), (w, message)
    return message


# ---- models, trained here ------------------------------------------------------------------------------------
def _photos(hymenoptera: Path, n: int) -> list[Path]:
    ants = sorted((hymenoptera / "val" / "ants").glob("*.jpg"))[: n // 2]
    bees = sorted((hymenoptera / "val" / "bees").glob("*.jpg"))[: n - n // 2]
    return ants + bees


@pytest.fixture(scope="module")
def vision_model(hymenoptera: Path, tmp_path_factory, env) -> Path:
    """A tiny network fine-tuned for one epoch on the real ant and bee photos, exported as `train` writes it."""
    learn = ql.vision_learner(hymenoptera, arch="test_efficientnet", weights=None, size=32, bs=32, progress=False,
                              seed=0, head=ql.HeadConfig(hidden=None))
    learn.fine_tune(1, 1e-2, freeze_epochs=0)
    folder = learn.export(tmp_path_factory.mktemp("vision") / "model")
    write_json(folder / "metrics.json", {"valid": learn.validate()})
    return folder


@pytest.fixture(scope="module")
def vision_server(vision_model: Path) -> Iterator[Running]:
    """The image model behind an API key and a 2 MB body cap (the default is 20 MB; smaller is faster to test)."""
    with running(vision_model, api_key=KEY, max_body_mb=2, max_wait_ms=20) as run:
        yield run


@pytest.fixture(scope="module")
def titanic() -> pd.DataFrame:
    from conftest import _need

    frame = pd.read_csv(_need(SHARED / "titanic") / "train.csv")
    return frame[["Survived", "Pclass", "Sex", "Age", "Fare", "Embarked"]]


@pytest.fixture(scope="module")
def tabular_server(titanic: pd.DataFrame, tmp_path_factory, env) -> Iterator[tuple[Running, Any]]:
    learn = ql.tabular_learner(titanic, "Survived", layers=(16,), progress=False, seed=0)
    learn.fine_tune(2, 2e-2, freeze_epochs=0)
    folder = learn.export(tmp_path_factory.mktemp("tabular") / "model")
    with running(folder) as run:
        yield run, ql.load(folder)


# ---- the image model: the API ----------------------------------------------------------------------------------
def test_health_needs_no_key_and_everything_else_does(vision_server: Running):
    assert httpx.get(vision_server.base + "/health").json()["status"] == "ok"
    with vision_server.client(key=None) as anonymous:
        assert_error(anonymous.get("/info"), 401, "API key missing", "Authorization: Bearer")
        assert_error(anonymous.post("/predict", files=[("files", ("a.jpg", b"x", "image/jpeg"))]), 401, "missing")
        assert anonymous.get("/").status_code == 200  # the page itself: it asks for the key
    with vision_server.client(key="wrong") as wrong:
        assert_error(wrong.get("/info"), 401, "API key wrong")
    with httpx.Client(base_url=vision_server.base, headers={"Authorization": KEY}) as no_scheme:
        assert_error(no_scheme.get("/info"), 401, "wrong")
    assert vision_server.alive()


def test_info_is_the_model_card(vision_server: Running, vision_model: Path):
    with vision_server.client() as c:
        info = c.get("/info").json()
    assert info["task"] == "vision" and info["classes"] == ["ants", "bees"] and info["kind"] == "single"
    assert info["quicklearn_version"] == ql.__version__ and info["card"]["input size"].startswith("32 x 32")
    recorded = json.loads((vision_model / "metrics.json").read_text())["valid"]
    assert info["metrics"] == pytest.approx(recorded) and "accuracy" in info["metrics"]
    assert info["input"]["files"][0] == "image/jpeg" and info["auth"] is True and info["trained"]


def test_predict_answers_as_predict_format_json(vision_server: Running, vision_model: Path, hymenoptera: Path):
    from quicklearn.tasks.vision.cli import predict_images

    photos = _photos(hymenoptera, 4)
    with vision_server.client() as c:
        r = c.post("/predict", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos])
    assert r.status_code == 200, r.text
    got = r.json()
    model = ql.load(vision_model)
    want = json.loads(predict_images(model, [str(p) for p in photos]).frame.to_json(orient="records"))
    assert [g["path"] for g in got] == [p.name for p in photos]  # the file's name, never a path of the server's
    for g, w in zip(got, want):
        assert list(g) == list(w)  # the same columns in the same order: one client for both
        assert g["prediction"] == w["prediction"] or abs(g["prob_ants"] - 0.5) < 0.02
        assert g["prob_ants"] == pytest.approx(w["prob_ants"], abs=0.02)  # PIL here, torchvision's JPEG decoder there


def _png_header(w: int, h: int) -> bytes:
    """A PNG whose header says w x h pixels (no pixel data): a decompression bomb's first bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bad_uploads(hymenoptera: Path) -> dict[str, tuple[tuple[str, bytes, str], int, tuple[str, ...]]]:
    """name -> (the upload, the status it gets, words its message has)."""
    jpeg = _photos(hymenoptera, 1)[0].read_bytes()
    return {
        "truncated JPEG": (("cut.jpg", jpeg[: len(jpeg) // 3], "image/jpeg"), 400, ("cut.jpg", "truncated")),
        "text as image/jpeg": (("notes.jpg", b"these are my notes, not a photo\n" * 20, "image/jpeg"), 415,
                               ("notes.jpg", "image/jpeg", "not a known image format")),
        "zero bytes": (("empty.jpg", b"", "image/jpeg"), 400, ("empty.jpg", "empty", "0 bytes")),
        "20000x20000 PNG header": (("bomb.png", _png_header(20000, 20000), "image/png"), 413,
                                   ("bomb.png", "too large")),
        "PNG sent as JPEG": (("fake.jpg", _png_header(10, 10), "image/jpeg"), 415, ("sent as image/jpeg", "image/png")),
    }


@pytest.mark.parametrize("case", ["truncated JPEG", "text as image/jpeg", "zero bytes", "20000x20000 PNG header",
                                  "PNG sent as JPEG"])
def test_a_bad_upload_is_one_4xx_line_and_the_server_lives_on(vision_server: Running, bad_uploads, case: str):
    upload, status, words = bad_uploads[case]
    with vision_server.client() as c:
        assert_error(c.post("/predict", files=[("files", upload)]), status, *words)
    assert vision_server.alive()


def test_an_oversized_body_is_413_before_it_is_parsed(vision_server: Running):
    big = os.urandom(3 * 1024 * 1024)  # over the 2 MB cap this server has
    with vision_server.client() as c:
        assert_error(c.post("/predict", files=[("files", ("big.jpg", b"\xff\xd8\xff" + big, "image/jpeg"))]), 413,
                     "over the limit", "--max-body-mb")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap counts what arrives
            for _ in range(6):
                yield big[: 512 * 1024]

        assert_error(c.post("/predict", content=chunks(), headers={"Content-Type": "application/octet-stream"}), 413,
                     "over the limit")
        assert_error(c.post("/predict", data={"other": "field"}), 422, "no files", "'files'")
        assert_error(c.get("/predict"), 405, "not allowed")
        assert_error(c.get("/etc/passwd"), 404, "no such route")
        assert c.get("/page/../../settings.py").status_code == 404  # the page's files only, never a path one names
    assert vision_server.alive()


def test_100_concurrent_bad_and_good_requests(vision_server: Running, bad_uploads, hymenoptera: Path):
    """Every good request gets its own photo's prediction (batched with others), every bad one its own 4xx."""
    photos = _photos(hymenoptera, 6)
    with vision_server.client() as c:
        alone = {p.name: c.post("/predict", files=[("files", (p.name, p.read_bytes(), "image/jpeg"))]).json()[0]
                 for p in photos}
        before = c.get("/info").json()["batches"]
    bad = list(bad_uploads.values())
    plan = [("good", photos[k % len(photos)]) if k % 2 == 0 else ("bad", bad[k % len(bad)]) for k in range(100)]

    async def send(client: "httpx.AsyncClient", what: str, item: Any) -> tuple[str, Any, "httpx.Response"]:
        upload = (item.name, item.read_bytes(), "image/jpeg") if what == "good" else item[0]
        return what, item, await client.post("/predict", files=[("files", upload)])

    async def all_at_once() -> list[tuple[str, Any, "httpx.Response"]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=vision_server.base, headers={"Authorization": f"Bearer {KEY}"},
                                     limits=limits, timeout=120) as client:
            return await asyncio.gather(*(send(client, w, i) for w, i in plan))

    for what, item, r in asyncio.run(all_at_once()):
        if what == "good":
            assert r.status_code == 200, r.text
            got = r.json()[0]
            assert got["path"] == item.name and got["prediction"] == alone[item.name]["prediction"]
            assert got["prob_ants"] == pytest.approx(alone[item.name]["prob_ants"], abs=1e-4)
        else:
            assert_error(r, item[1], *item[2])
    with vision_server.client() as c:
        after = c.get("/info").json()["batches"]
    assert after["items"] - before["items"] == 50
    assert after["batches"] - before["batches"] < 50 and after["largest"] > 1  # the 50 photos shared forward passes
    assert vision_server.alive()


# ---- batching -------------------------------------------------------------------------------------------------------
def test_the_batcher_groups_concurrent_requests_and_answers_each_its_own_rows():
    sizes: list[int] = []

    def run(items: list[int]) -> torch.Tensor:
        sizes.append(len(items))
        time.sleep(0.02)
        return torch.tensor(items) * 10

    async def main() -> list[Any]:
        b = Batcher(run, max_batch=8, max_wait_ms=30, max_queue=100)
        b.start()
        out = await asyncio.gather(*(b.submit([k, k + 100]) for k in range(10)))
        await b.stop()
        return out

    out = asyncio.run(main())
    assert [o.tolist() for o in out] == [[10 * k, 10 * (k + 100)] for k in range(10)]
    assert sum(sizes) == 20 and max(sizes) == 8 and len(sizes) <= 4  # 2-item requests: 4 per batch of 8


def test_a_full_queue_is_busy_with_a_retry_after():
    release = threading.Event()

    def run(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    async def main() -> tuple[int, list[Any]]:
        b = Batcher(run, max_batch=1, max_wait_ms=0, max_queue=2)
        b.start()
        first = asyncio.ensure_future(b.submit([0]))
        await asyncio.sleep(0.05)  # the first is running; two more wait; the fourth finds the queue full
        waiting = [asyncio.ensure_future(b.submit([k])) for k in (1, 2)]
        await asyncio.sleep(0.01)
        with pytest.raises(Busy) as busy:
            await b.submit([3])
        release.set()
        done = await asyncio.gather(first, *waiting)
        await b.stop()
        return busy.value.retry_after, done

    retry_after, done = asyncio.run(main())
    assert retry_after >= 1 and done == [[0], [1], [2]]


def test_no_batching_runs_one_item_per_pass(vision_model: Path, hymenoptera: Path):
    photo = _photos(hymenoptera, 1)[0]

    async def many(base: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            rs = await asyncio.gather(*(client.post("/predict", files=[("files", (photo.name, photo.read_bytes(),
                                                                                     "image/jpeg"))]) for _ in range(8)))
        return [r.status_code for r in rs]

    with running(vision_model, max_batch=1) as run:
        assert asyncio.run(many(run.base)) == [200] * 8
        stats = httpx.get(run.base + "/info").json()["batches"]
    assert stats["batches"] == 8 and stats["largest"] == 1


def test_the_onnx_backend_answers_as_torch_does(vision_model: Path, vision_server: Running, hymenoptera: Path):
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    pytest.importorskip("onnxscript", reason="the [onnx] extra is not installed")
    photos = _photos(hymenoptera, 2)
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    with vision_server.client() as c:
        want = c.post("/predict", files=files).json()
    with running(vision_model, backend="onnx") as run:
        info = httpx.get(run.base + "/info").json()
        got = httpx.post(run.base + "/predict", files=files, timeout=60).json()
    assert info["backend"] == "onnx"
    for g, w in zip(got, want):
        assert list(g) == list(w) and g["prob_bees"] == pytest.approx(w["prob_bees"], abs=2e-3)


# ---- start-up and stopping: the real command ----------------------------------------------------------------------
def _serve(folder: Path, port: int, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quicklearn_cli.app", "serve", str(folder), "--port", str(port), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _wait_up(base: str, proc: subprocess.Popen) -> None:
    for _ in range(600):
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the server did not start")


def test_sigterm_lets_requests_in_flight_finish_and_refuses_new_ones(vision_model: Path, hymenoptera: Path, env):
    photo = _photos(hymenoptera, 1)[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(vision_model, port, {**env, "QUICKLEARN_API_KEY": ""})
    boundary = "quicklearn-test-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{photo.name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    try:
        _wait_up(base, proc)
        results: list[Any] = []

        def slow_upload() -> Iterator[bytes]:  # half the body, a pause in which SIGTERM comes, the rest
            yield body[: len(body) // 2]
            time.sleep(1.2)
            yield body[len(body) // 2:]

        def in_flight() -> None:
            results.append(httpx.post(base + "/predict", content=slow_upload(), timeout=30,
                                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}))

        t = threading.Thread(target=in_flight)
        t.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        late = httpx.get(base + "/health", timeout=5)  # the listener stays open while the upload is in flight
        assert_error(late, 503, "stopping")
        assert late.headers["Retry-After"]
        t.join(30)
        assert results and results[0].status_code == 200, results and results[0].text
        assert results[0].json()[0]["path"] == photo.name
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_folder_that_fails_its_checksums_is_refused_at_start_up(vision_model: Path, tmp_path: Path, env):
    broken = tmp_path / "broken"
    shutil.copytree(vision_model, broken)
    data = bytearray((broken / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (broken / "model.safetensors").write_bytes(bytes(data))
    proc = _serve(broken, free_port(), env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "refusing to serve" in err and "model.safetensors" in err and "corrupted" in err
    assert len([line for line in err.strip().splitlines() if line.strip()]) <= 3 and "Traceback" not in err


def test_another_address_without_a_key_warns(vision_model: Path):
    warning = warn_host(ServeSettings(vision_model, host="0.0.0.0", api_key=""))
    assert warning and "0.0.0.0" in warning and "QUICKLEARN_API_KEY" in warning
    assert warn_host(ServeSettings(vision_model, host="0.0.0.0", api_key="k")) is None
    assert warn_host(ServeSettings(vision_model, api_key="")) is None  # 127.0.0.1, the default


# ---- tables: JSON rows ------------------------------------------------------------------------------------------------
def test_table_rows_are_answered_as_predict_answers(tabular_server, titanic: pd.DataFrame):
    run, model = tabular_server
    rows = json.loads(titanic.drop(columns="Survived").head(5).to_json(orient="records"))
    with run.client() as c:
        r = c.post("/predict", json={"rows": rows})
        info = c.get("/info").json()
    assert r.status_code == 200, r.text
    want = json.loads(model.predict(pd.DataFrame(rows)).to_json(orient="records"))
    assert [sorted(g) for g in r.json()] == [sorted(w) for w in want]  # the fields in the model's order
    for g, w in zip(r.json(), want):
        assert g["prediction"] == w["prediction"] and g["probability"] == pytest.approx(w["probability"], abs=1e-5)
    fields = {f["name"]: f for f in info["input"]["rows"]}
    assert set(fields) == {"Pclass", "Sex", "Age", "Fare", "Embarked"}
    assert fields["Sex"]["choices"] == ["female", "male"] and fields["Age"]["type"] == "number"


def test_wrong_json_fields_for_a_table_model(tabular_server):
    run, _ = tabular_server
    row = {"Pclass": 3, "Sex": "male", "Age": 22.0, "Fare": 7.25, "Embarked": "S"}
    with run.client() as c:
        assert_error(c.post("/predict", json={"rows": [{**row, "Agee": 3}]}), 422, "rows[0]", "unknown field 'Agee'",
                     "the model reads Pclass")
        missing = {k: v for k, v in row.items() if k != "Fare"}
        assert_error(c.post("/predict", json={"rows": [row, missing]}), 422, "rows[1].Fare", "required")
        assert_error(c.post("/predict", json={"rows": [{**row, "Age": "old"}]}), 422, "rows[0].Age")
        assert_error(c.post("/predict", json={"row": row}), 422, "unknown field 'row'")
        assert_error(c.post("/predict", json={"rows": []}), 422, "rows")
        assert_error(c.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"}), 422)
        assert c.post("/predict", json={"rows": [{**row, "Age": None}]}).status_code == 200  # null: a missing value
    assert run.alive()


# ---- texts, ratings, masks ------------------------------------------------------------------------------------------
def test_text_rows(tiny_bert: Path, tmp_path_factory, env):
    from conftest import _need

    frame = pd.read_csv(_need(SHARED / "imdb-sample") / "texts.csv").head(160)
    text_col, label = "text", "label"
    learn = ql.text_learner(frame[[text_col, label]], y=label, arch=str(tiny_bert), max_len=32, bs=32, progress=False)
    learn.fine_tune(1, 1e-3, freeze_epochs=0)
    folder = learn.export(tmp_path_factory.mktemp("text") / "model")
    model = ql.load(folder)
    texts = frame[text_col].tail(3).tolist()
    with running(folder) as run:
        r = httpx.post(run.base + "/predict", json={"rows": [{text_col: t} for t in texts]}, timeout=60)
        assert_error(httpx.post(run.base + "/predict", json={"rows": [{text_col: 5}]}), 422, f"rows[0].{text_col}")
    assert r.status_code == 200, r.text
    want = json.loads(model.predict(pd.DataFrame({text_col: texts})).to_json(orient="records"))
    assert [g["prediction"] for g in r.json()] == [w["prediction"] for w in want]
    assert [g["probability"] for g in r.json()] == pytest.approx([w["probability"] for w in want], abs=1e-5)


def test_collab_pairs_recommend_and_similar(tmp_path_factory, env):
    from conftest import _need

    movielens = _need(SHARED / "movielens-small")
    folder = tmp_path_factory.mktemp("ml")
    ratings = pd.read_csv(movielens / "ratings.csv")
    ratings[ratings.userId <= 60].to_csv(folder / "ratings.csv", index=False)
    shutil.copy(movielens / "movies.csv", folder / "movies.csv")
    learn = ql.collab_learner(folder / "ratings.csv", progress=False, seed=0)
    learn.fine_tune(1, 2e-2, freeze_epochs=0)
    model_dir = learn.export(folder / "model")
    model = ql.load(model_dir)
    with running(model_dir) as run, run.client() as c:
        pairs = c.post("/predict", json={"rows": [{"userId": 1, "movieId": 1}, {"userId": 99999, "movieId": 1}]})
        rec = c.post("/recommend", json={"user": 1, "n": 5, "exclude_seen": True})
        sim = c.post("/similar", json={"item": 1, "n": 3})
        assert_error(c.post("/recommend", json={"n": 5}), 422, "user", "required")
        assert_error(c.post("/similar", json={"item": "no such film at all"}), 400, "not one of the model's")
        info = c.get("/info").json()
    assert pairs.status_code == 200, pairs.text
    want = json.loads(model.predict(pd.DataFrame({"userId": [1, 99999], "movieId": [1, 1]})).to_json(orient="records"))
    assert [p["cold_start"] for p in pairs.json()] == ["none", "user"]
    assert [p["prediction"] for p in pairs.json()] == pytest.approx([w["prediction"] for w in want], abs=1e-4)
    assert rec.json() == json.loads(model.recommend(1, n=5, exclude_seen=True).to_json(orient="records"))
    assert [s["item"] for s in sim.json()] == model.similar(1, n=3)["item"].tolist()
    assert [r["path"] for r in info["routes"]] == ["/recommend", "/similar"]


def test_segmentation_masks(tmp_path_factory, env):
    pytest.importorskip("segmentation_models_pytorch", reason="the [segment] extra is not installed")
    from test_segment import scene, write_scenes

    from quicklearn.tasks.registry import get_task

    try:
        get_task("segment").serve
        if type(get_task("segment")).serve is ql.Task.serve:
            pytest.skip("the segment task does not serve yet")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no segment task here ({e})")
    root = write_scenes(tmp_path_factory.mktemp("scenes") / "scenes", n_train=8, n_valid=4)
    learn = ql.segmentation_learner(root, size=64, bs=4, progress=False, seed=0)
    learn.fine_tune(1, 4e-3, freeze_epochs=0)
    folder = learn.export(tmp_path_factory.mktemp("seg") / "model")
    photo, _ = scene(7)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="PNG")
    with running(folder) as run:
        r = httpx.post(run.base + "/predict", files=[("files", ("street.png", buf.getvalue(), "image/png"))], timeout=60)
    assert r.status_code == 200, r.text
    row = r.json()[0]
    import base64

    mask = Image.open(io.BytesIO(base64.b64decode(row["mask_png"])))
    assert mask.size == (photo.shape[1], photo.shape[0])  # the photo's own size
    shares = {k: v for k, v in row.items() if k.startswith("share_")}
    assert sum(shares.values()) == pytest.approx(1.0) and row["path"] == "street.png"


# ---- the page -------------------------------------------------------------------------------------------------------
def test_the_page_needs_nothing_from_the_internet():
    from quicklearn.serving.http.app import PAGE_DIR

    files = {p.name: p.read_text() for p in PAGE_DIR.iterdir()}
    assert {"index.html", "page.css", "page.js"} <= set(files)
    for name, text in files.items():
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


def _chromium() -> tuple[str, str]:
    chrome = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
    if chrome is None or not Path("/usr/bin/chromedriver").exists():
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium chromium-driver; .ci/run does it)")
    pytest.importorskip("selenium", reason="selenium is not installed (the [test] extra)")
    return chrome, "/usr/bin/chromedriver"


def test_the_page_in_headless_chromium(vision_server: Running, hymenoptera: Path, tmp_path: Path):
    """The page asks for the key, shows the model card, takes a photo and shows the top class and its bar."""
    chrome, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        wait = WebDriverWait(browser, 30)
        browser.get(vision_server.base + "/")
        wait.until(EC.visibility_of_element_located((By.ID, "key-box")))
        browser.find_element(By.ID, "key").send_keys(KEY)
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait.until(EC.visibility_of_element_located((By.ID, "card-box")))
        assert "accuracy" in browser.find_element(By.ID, "metrics").text
        assert "ants, bees" in browser.find_element(By.ID, "card").text
        photo = _photos(hymenoptera, 1)[0]
        browser.find_element(By.ID, "file-input").send_keys(str(photo))
        top = wait.until(EC.visibility_of_element_located((By.ID, "top-class")))
        with vision_server.client() as c:
            want = c.post("/predict", files=[("files", (photo.name, photo.read_bytes(), "image/jpeg"))]).json()[0]
        assert want["prediction"] in top.text
        labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".bar-label")]
        widths = [e.size["width"] for e in browser.find_elements(By.CSS_SELECTOR, ".bar")]
        assert labels[0] == want["prediction"] and set(labels) == {"ants", "bees"}
        assert widths[0] > 0 and widths[0] >= widths[1]
        shot = tmp_path / "serve_page.png"
        browser.save_screenshot(str(shot))
        if os.environ.get("QUICKLEARN_SCREENSHOT_DIR"):
            shutil.copy(shot, Path(os.environ["QUICKLEARN_SCREENSHOT_DIR"]) / shot.name)
        assert Image.open(shot).size[0] > 500
        assert not browser.find_element(By.ID, "error").is_displayed()
    finally:
        browser.quit()


def test_the_batch_size_is_the_fastest_per_item_and_a_server_measures_its_own(vision_model: Path):
    from quicklearn.serving.http.sizing import choose_max_batch

    def fixed_cost(items: list[int]) -> None:  # 4 ms a pass + 0.2 ms an item: the bigger the batch, the better
        time.sleep(0.004 + 0.0002 * len(items))

    def spills(items: list[int]) -> None:  # the time per item grows with the batch, as on a CPU past its caches
        time.sleep(0.0005 * len(items) * (1 + len(items) / 4))

    size, table = choose_max_batch(fixed_cost, 0, cap=32)
    assert size == 32 and list(table) == [1, 2, 4, 8, 16, 32], table
    size, table = choose_max_batch(spills, 0, cap=32)
    assert size == 1 and max(table) <= 4, table  # it stops once a size is clearly slower per item
    bursts = {"left": 3}

    def noisy(items: list[int]) -> None:  # fixed_cost, but the first 3 passes over 2 items meet a burst of noise
        if len(items) == 2 and bursts["left"] > 0:
            bursts["left"] -= 1
            time.sleep(0.03)
        fixed_cost(items)

    size, table = choose_max_batch(noisy, 0, cap=32)
    assert size == 32 and list(table) == [1, 2, 4, 8, 16, 32], table  # one slow look at 2 does not end the search
    with running(vision_model) as run:  # no --max-batch: measured with the model, at start-up
        with run.client() as c:
            measured = c.get("/info").json()["max_batch"]
    assert isinstance(measured, int) and 1 <= measured <= 32
    assert run.server.app.batcher.max_batch == measured
