"""serve(): the checks at start-up, the app, uvicorn, N worker processes, and a graceful stop on SIGTERM.

    quicklearn.serving.http.server.serve(ServeSettings("runs/photos"))   # what `quicklearn serve` runs

At start-up the model folder is loaded as `quicklearn.load` loads it, so a folder whose files fail their
checksums is refused before anything listens. On SIGTERM (or Ctrl-C) the server stops taking requests (new ones
get 503), lets those in flight finish (up to `grace_s`), then exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Any, Callable

from quicklearn.core.errors import ConfigError, QuicklearnError
from quicklearn.core.runtime import tune_cpu_allocator
from quicklearn.serving.http.settings import API_KEY_ENV, ServeSettings, is_loopback

__all__ = ["serve", "build_app", "build_server", "DrainingServer", "SETTINGS_ENV"]

log = logging.getLogger("quicklearn")

SETTINGS_ENV = "QUICKLEARN_SERVE_SETTINGS"  # how worker processes (--workers N) get the settings


def _require_serve() -> None:
    missing = []
    for name in ("fastapi", "uvicorn", "multipart"):
        try:
            __import__(name)
        except ImportError:
            missing.append("python-multipart" if name == "multipart" else name)
    if missing:
        raise QuicklearnError(f"quicklearn serve needs {', '.join(missing)}, which are not installed: "
                              'pip install "quicklearn[serve]".')


def build_app(settings: ServeSettings) -> Any:
    """The guarded ASGI app of `settings.model_dir`: the folder loaded (checksums verified), its task's ServeSpec,
    the backend (torch, or onnx exported now). Raises a one-line QuicklearnError/ConfigError on a bad folder."""
    _require_serve()
    import torch
    from PIL import Image

    from quicklearn.serving.http.app import create_app
    from quicklearn.serving.http.backend import make_backend
    from quicklearn.serving.load import load
    from quicklearn.tasks.registry import get_task

    folder = settings.model_dir
    if not folder.is_dir():
        raise QuicklearnError(f"{folder}: no such model folder. Give the folder `quicklearn train` wrote.")
    Image.MAX_IMAGE_PIXELS = settings.max_pixels  # PIL's decompression-bomb guard, on, at the server's limit
    # as the Learner does: a batch's activations (tens of MB per layer) are kept for reuse, not unmapped each pass
    # (benchmarks/serve.py measured no clear change either way: 0.56x vs 0.60x batching/no batching at 32 clients)
    tune_cpu_allocator()
    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    try:
        predictor = load(folder)
    except QuicklearnError as e:
        raise QuicklearnError(f"refusing to serve {folder}: {e}") from None
    spec = get_task(predictor.task).serve(predictor)
    backend = make_backend(settings.backend, predictor, spec, settings.threads)
    if settings.max_batch is None:  # measured once (the workers of --workers N get the parent's size)
        settings.max_batch = measured_max_batch(backend, spec)
    return create_app(settings, predictor, spec, backend)


def measured_max_batch(backend: Any, spec: Any) -> int:
    """The batch size with the fastest forward pass per item on this machine (sizing.py), logged with its table;
    DEFAULT_MAX_BATCH for a task that gives no example item."""
    from quicklearn.serving.http.sizing import DEFAULT_MAX_BATCH, choose_max_batch

    if spec.example is None:
        return DEFAULT_MAX_BATCH
    size, table = choose_max_batch(backend.run, spec.example())
    log.info("batch size %d: ms per item by batch size %s", size, {k: round(v, 1) for k, v in table.items()})
    return size


class DrainingServer:
    """A uvicorn server whose first SIGTERM/SIGINT drains: the guard answers 503 to new requests while those in
    flight finish (at most `grace_s`), then uvicorn stops; a second Ctrl-C stops at once."""

    def __init__(self, app: Any, settings: ServeSettings, sock: socket.socket | None = None):
        import uvicorn

        outer = self

        class _Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:  # a signal handler: must return at once
                outer.drain(sig, frame)

        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                                timeout_graceful_shutdown=int(settings.grace_s) + 1, access_log=False)
        self.app, self.settings, self.sock = app, settings, sock
        self.server = _Server(config)
        self._base_exit = uvicorn.Server.handle_exit
        self._draining = threading.Event()

    def drain(self, sig: int, frame: Any) -> None:
        """Stop taking requests, wait for those in flight, then let uvicorn exit (a second signal: at once)."""
        if self._draining.is_set():
            self._base_exit(self.server, sig, frame)
            return
        self._draining.set()
        self.app.guard.draining = True  # new requests: 503; those past the guard still batch and finish

        def wait_then_exit() -> None:
            end = time.monotonic() + self.settings.grace_s
            while self.app.guard.in_flight > 0 and time.monotonic() < end:
                time.sleep(0.02)
            self._base_exit(self.server, sig, frame)

        threading.Thread(target=wait_then_exit, name="quicklearn-drain", daemon=True).start()

    def run(self) -> None:
        self.server.run(sockets=[self.sock] if self.sock is not None else None)

    def stop(self) -> None:
        """Drain and stop from another thread (what SIGTERM does)."""
        self.drain(signal.SIGTERM, None)


def build_server(settings: ServeSettings, sock: socket.socket | None = None) -> DrainingServer:
    """The app of `settings` in a DrainingServer, listening on `sock` when given (tests bind port 0 themselves)."""
    return DrainingServer(build_app(settings), settings, sock)


def warn_host(settings: ServeSettings) -> str | None:
    """The warning for an address other machines reach, served without an API key (None when there is none)."""
    if is_loopback(settings.host) or settings.api_key:
        return None
    return (f"serving on {settings.host} without an API key: anyone who can reach this address can use the model. "
            f"Set {API_KEY_ENV} (or --api-key) to require 'Authorization: Bearer KEY'.")


def serve(settings: ServeSettings, announce: Callable[[str], None] | None = None) -> None:
    """Serve the model folder until SIGTERM / Ctrl-C: one process, or `workers` processes that each load the
    model and batch their own requests (uvicorn's supervisor; each drains on SIGTERM as uvicorn does).
    announce(line): told where it listens, once the model folder has passed its checks."""
    if settings.workers > 1:
        import uvicorn

        build_app(settings)  # refuse a bad folder here, once, before any worker starts (and size the batches)
    else:
        server = build_server(settings)
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    line = (f"serving {settings.model_dir} on http://{host}:{settings.port} (page /, API docs /docs; backend "
            f"{settings.backend}, batches up to {settings.max_batch}{', API key required' if settings.api_key else ''}"
            f"{f', {settings.workers} workers' if settings.workers > 1 else ''}); Ctrl-C or SIGTERM stops it")
    if warning := warn_host(settings):
        log.warning(warning)
    if announce is not None:
        announce(line)
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_json()
        if settings.api_key:
            os.environ[API_KEY_ENV] = settings.api_key
        uvicorn.run("quicklearn.serving.http.server:worker_app", factory=True, host=settings.host, port=settings.port,
                    workers=settings.workers, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=int(settings.grace_s) + 1)
        return
    server.run()


def worker_app() -> Any:
    """The app of one worker process of `serve(workers=N)` (its settings from the environment)."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise ConfigError(f"{SETTINGS_ENV} is not set: worker_app is started by quicklearn serve --workers N.")
    return build_app(ServeSettings.from_json(text))
