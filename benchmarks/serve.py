"""issue 22: `quicklearn serve` under load, on this machine.

A hymenoptera model (tf_efficientnet_lite0, offline ImageNet weights, 224 px, one epoch) is served by four
`quicklearn serve` processes on 127.0.0.1 (started one after the other, so each measures its batch size alone):
dynamic batching at the size the server measures at start-up (no --max-batch; --max-wait-ms 10), batching at
--max-batch 32, batching off (--max-batch 1) and --backend onnx (batching at its measured size). A bounded httpx
client (N concurrent workers, each sending its next request when the last is answered) uploads the real validation
photos at 1, 8 and 32 clients, for a fixed count of requests and for a fixed time; the servers take turns, rotating
per round, so the noise of this shared machine falls on all of them alike. The floor is a plain loop over
`Predictor.predict(photo)` in this process. Printed: requests/s, p50/p95/p99 latency and failures per server and
client count, the ratios, and the in-process gain of one forward pass over 32 images against 32 passes over one
image, and the time per image at each batch size (measured in the same run).

Every server and the floor use `quicklearn serve`'s default intra-op threads (torch's: one per core), the client
sharing the cores; `--threads 1` gives each one thread (the client then has a core of its own).

    .venv/bin/python benchmarks/serve.py             # ~10 min on 2 CPU cores
    .venv/bin/python benchmarks/serve.py --quick     # a small model and counts: only checks that it runs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import quicklearn as ql  # noqa: E402

CLIENTS = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(data: Path, out: Path, quick: bool) -> Path:
    """The model the servers serve (trained once; --model reuses a folder)."""
    if quick:
        learn = ql.vision_learner(data, arch="test_efficientnet", weights=None, size=64, bs=32, progress=False, seed=0)
    else:
        learn = ql.vision_learner(data, size=224, bs=32, progress=False, seed=0)
    learn.fine_tune(1, freeze_epochs=0)
    return learn.export(out)


class Server:
    """One `quicklearn serve` process."""

    def __init__(self, name: str, model: Path, threads: int | None, *args: str):
        self.name, self.port = name, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "QUICKLEARN_API_KEY": ""}
        if threads:
            env["OMP_NUM_THREADS"], args = str(threads), ("--threads", str(threads), *args)
        self.proc = subprocess.Popen([sys.executable, "-m", "quicklearn_cli.app", "serve", str(model), "--port",
                                      str(self.port), *args], env=env, cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait(self) -> None:
        for _ in range(1200):
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} did not start: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit(f"{self.name} did not start in 2 minutes")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def load(base: str, photos: list[tuple[str, bytes]], clients: int, count: int | None, seconds: float | None
               ) -> dict:
    """N workers sending one photo per request until `count` requests are sent or `seconds` have passed."""
    latencies: list[float] = []
    failed = 0
    sent = 0
    end = time.perf_counter() + seconds if seconds else None

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent, failed
        while True:
            if count is not None and sent >= count:
                return
            if end is not None and time.perf_counter() >= end:
                return
            name, data = photos[sent % len(photos)]
            sent += 1
            t0 = time.perf_counter()
            try:
                r = await client.post("/predict", files=[("files", (name, data, "image/jpeg"))])
                ok = r.status_code == 200 and r.json()[0]["path"] == name
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            failed += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return summary(latencies, wall, failed)


def summary(latencies: list[float], wall: float, failed: int = 0) -> dict:
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"rps": len(latencies) / wall, "p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000,
            "n": len(latencies), "failed": failed}


def floor(model: object, paths: list[Path], count: int) -> dict:
    """A plain loop over Predictor.predict(photo) in this process (one thread): no HTTP, no batching."""
    latencies = []
    t0 = time.perf_counter()
    for k in range(count):
        s = time.perf_counter()
        model.predict(paths[k % len(paths)])
        latencies.append(time.perf_counter() - s)
    return summary(latencies, time.perf_counter() - t0)


def forward_gain(model: object, paths: list[Path], repeats: int) -> tuple[float, float, float]:
    """Seconds of one forward pass over 32 pre-sized images and of 32 passes over one image (best of `repeats`,
    alternating), and their ratio: what batching can gain at most, decoding aside."""
    x = torch.stack([model.item(p) for p in (paths * 32)[:32]])
    one, batch = [], []
    with torch.inference_mode():
        model.model(model.pipeline.valid_batch(x[:2]))  # warm up
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.model(model.pipeline.valid_batch(x))
            batch.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for k in range(32):
                model.model(model.pipeline.valid_batch(x[k:k + 1]))
            one.append(time.perf_counter() - t0)
    return min(batch), min(one), min(one) / min(batch)


def per_image_ms(model: object, paths: list[Path], sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> dict[int, float]:
    """Milliseconds per image of one forward pass at each batch size (best of 3), in this process."""
    x = torch.stack([model.item(p) for p in (paths * 32)[:32]])
    out = {}
    with torch.inference_mode():
        for n in sizes:
            model.model(model.pipeline.valid_batch(x[:n]))
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                model.model(model.pipeline.valid_batch(x[:n]))
                times.append(time.perf_counter() - t0)
            out[n] = 1000 * min(times) / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hymenoptera")
    ap.add_argument("--model", type=Path, default=None, help="serve this model folder instead of training one")
    ap.add_argument("--count", type=int, default=None, help="requests per measurement (default 96; quick 24)")
    ap.add_argument("--seconds", type=float, default=None, help="length of each fixed-time measurement (default 6)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of fixed-count measurements (default 2)")
    ap.add_argument("--threads", type=int, default=None,
                    help="intra-op threads of every server and of the in-process floor (default: what "
                         "`quicklearn serve` uses, torch's default, one per core)")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    count = a.count or (24 if a.quick else 96)
    seconds = a.seconds or (1.5 if a.quick else 6.0)
    rounds = a.rounds or (1 if a.quick else 2)
    photos_paths = sorted((a.data / "val").rglob("*.jpg"))
    photos = [(p.name, p.read_bytes()) for p in photos_paths]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model_dir = a.model or train(a.data, Path(tmp) / "model", a.quick)
        model = ql.load(model_dir)
        arch = model.config["model"]["arch"]
        print(f"model: {arch} at {model.pipeline.size} px, {model_dir} ({time.perf_counter() - t0:.0f} s to train and load)")
        print(f"photos: {len(photos)} hymenoptera validation JPEGs (mean {statistics.mean(len(d) for _, d in photos) / 1e3:.0f} kB), "
              f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} intra-op thread(s) per "
              f"server and in-process{'' if a.threads else ' (the default)'}")
        configs = [("batching", "--max-wait-ms", "10"), ("batching 32", "--max-batch", "32", "--max-wait-ms", "10"),
                   ("no batching", "--max-batch", "1"), ("onnx", "--backend", "onnx", "--max-wait-ms", "10")]
        servers: list[Server] = []
        try:
            for name, *args in configs:  # one at a time: each measures its batch size alone
                servers.append(Server(name, model_dir, a.threads, *args))
                servers[-1].wait()
            sizes = {s.name: httpx.get(s.base + "/info", timeout=10).json()["max_batch"] for s in servers}
            for s in servers:  # warm up: first requests pay for lazy imports and allocator growth
                asyncio.run(load(s.base, photos, 4, 16, None))
            fixed: dict[tuple[str, int], list[dict]] = {}
            timed: dict[tuple[str, int], dict] = {}
            floors: list[dict] = []
            for r in range(rounds):
                for clients in CLIENTS:
                    order = servers[r % len(servers):] + servers[:r % len(servers)]
                    for s in order:
                        fixed.setdefault((s.name, clients), []).append(asyncio.run(load(s.base, photos, clients, count, None)))
                floors.append(floor(model, photos_paths, max(16, count // 4)))
            for clients in CLIENTS:
                for s in servers:
                    timed[(s.name, clients)] = asyncio.run(load(s.base, photos, clients, None, seconds))
            gain = forward_gain(model, photos_paths, 3 if a.quick else 5)
            per_size = per_image_ms(model, photos_paths)
        finally:
            for s in servers:
                s.stop()

    def best(runs: list[dict]) -> dict:
        return max(runs, key=lambda m: m["rps"])  # the round least disturbed by the other engineers' work

    print("batch sizes: " + ", ".join(f"{name} {size}" for name, size in sizes.items())
          + " (batching and onnx: measured by the server at start-up)")
    print(f"\n{count} requests per measurement (best of {rounds} rounds) and {seconds:g} s runs; latency in ms")
    print(f"{'server':<13}{'clients':>8}{'req/s':>9}{'p50':>9}{'p95':>9}{'p99':>9}{'failed':>8}"
          f"{'req/s (time)':>14}{'p99 (time)':>12}{'failed':>8}")
    for s in servers:
        for clients in CLIENTS:
            m, t = best(fixed[(s.name, clients)]), timed[(s.name, clients)]
            print(f"{s.name:<13}{clients:>8}{m['rps']:>9.1f}{m['p50']:>9.0f}{m['p95']:>9.0f}{m['p99']:>9.0f}"
                  f"{m['failed']:>8}{t['rps']:>14.1f}{t['p99']:>12.0f}{t['failed']:>8}")
    f = best(floors)
    print(f"{'in-process':<13}{1:>8}{f['rps']:>9.1f}{f['p50']:>9.0f}{f['p95']:>9.0f}{f['p99']:>9.0f}{0:>8}"
          f"   (a loop over Predictor.predict(photo), {f['n']} photos)")

    b32, n32 = best(fixed[("batching", 32)]), best(fixed[("no batching", 32)])
    o32 = best(fixed[("onnx", 32)])
    b8 = best(fixed[("batching", 8)])
    failed = sum(m["failed"] for runs in fixed.values() for m in runs) + sum(t["failed"] for t in timed.values())
    t_batch, t_one, g = gain
    served_gain = b32["rps"] / n32["rps"]
    print(f"\nin-process forward passes: 32 images in one pass {t_batch * 1000:.0f} ms, 32 passes of one "
          f"{t_one * 1000:.0f} ms: gain {g:.2f}x; ms per image by batch size (in-process): "
          + ", ".join(f"{k}: {v:.1f}" for k, v in per_size.items()))
    n32b = best(fixed[("batching 32", 32)])
    print(f"at 32 clients: batching at the measured size / at 32 = {b32['rps'] / n32b['rps']:.2f}x requests/s")
    print(f"at 32 clients: batching / no batching = {served_gain:.2f}x requests/s (target >= 1.3x); "
          f"that is {served_gain / g:.2f} of the in-process gain (target >= 0.7)")
    print(f"at 32 clients: onnx / torch (both batching) = {o32['rps'] / b32['rps']:.2f}x requests/s; "
          f"batching at 1 client / in-process floor = {best(fixed[('batching', 1)])['rps'] / f['rps']:.2f}x")
    print(f"at 8 clients, batching: p99 / p50 = {b8['p99'] / b8['p50']:.2f} (target < 4)")
    print(f"failed requests: {failed} of {sum(m['n'] for runs in fixed.values() for m in runs) + sum(t['n'] for t in timed.values())}"
          " (target 0)")


if __name__ == "__main__":
    main()
