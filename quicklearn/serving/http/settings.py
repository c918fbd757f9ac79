"""The server's settings: one dataclass, what `quicklearn serve`'s options set (and what `serve()` takes)."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quicklearn.core.errors import ConfigError

__all__ = ["ServeSettings", "API_KEY_ENV", "BACKENDS", "is_loopback"]

API_KEY_ENV = "QUICKLEARN_API_KEY"  # better than --api-key: a command line shows in `ps`
BACKENDS = ("torch", "onnx")


@dataclass
class ServeSettings:
    """How `quicklearn serve` runs. host: 127.0.0.1 unless another address is given (binding one without an API
    key warns). max_batch / max_wait_ms: dynamic batching (1: off; None: measured at start-up, sizing.py). max_queue: requests waiting for a batch
    before new ones get 503. max_body_mb: the request body cap. max_pixels: PIL's decompression-bomb limit per
    image. api_key: None reads QUICKLEARN_API_KEY; "" is none. grace_s: how long SIGTERM waits for requests in
    flight."""

    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch: int | None = None
    max_wait_ms: float = 10.0
    max_queue: int = 256
    backend: str = "torch"
    api_key: str | None = None
    max_body_mb: float = 20.0
    max_pixels: int = 89_478_485  # PIL's own default (Image.MAX_IMAGE_PIXELS): about 0.25 GB of RGB pixels
    max_files: int = 64  # files (or rows) per request
    grace_s: float = 30.0
    threads: int | None = None  # torch / onnxruntime intra-op threads (None: their default)

    def __post_init__(self) -> None:
        self.model_dir = Path(self.model_dir).expanduser()
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend {self.backend!r}: use {' or '.join(BACKENDS)}.")
        for name, low in (("port", 0), ("workers", 1), ("max_batch", 1), ("max_queue", 1), ("max_files", 1)):
            if getattr(self, name) is not None and int(getattr(self, name)) < low:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least {low}.")
        if self.max_wait_ms < 0 or self.max_body_mb <= 0 or self.max_pixels < 1:
            raise ConfigError("--max-wait-ms must be >= 0, --max-body-mb > 0 and --max-pixels >= 1.")
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None
        self.api_key = self.api_key or None

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def to_json(self) -> str:
        """The settings as JSON (for the worker processes of --workers N; the key travels in the environment)."""
        d: dict[str, Any] = asdict(self)
        d["model_dir"], d["api_key"] = str(self.model_dir), None
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> "ServeSettings":
        return cls(**json.loads(text))


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
