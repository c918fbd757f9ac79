"""Cached embeddings: what a frozen backbone or encoder says of each item, kept in `<cache>/embeddings/<key>.npy` so
a second `quicklearn check` on the same data does no forward pass. The key is whatever the embeddings depend on
(the decoded-image cache key or the texts' hash, the architecture, its weights, the size); written atomically.

    emb = cached_embeddings({"images": key, "arch": arch, "size": 224}, compute=lambda: forward_pass(...))
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from quicklearn.core.cachedir import cache_dir
from quicklearn.core.fileio import atomic_path

__all__ = ["embeddings_dir", "cached_embeddings"]

log = logging.getLogger("quicklearn")
_FORMAT = 1


def embeddings_dir() -> Path:
    return cache_dir() / "embeddings"


def cached_embeddings(key: dict[str, Any], compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """(the embeddings, whether they came from the cache): read the entry of `key`, or compute and save it.
    QUICKLEARN_IMAGE_CACHE=0 keeps no files (as for decoded images)."""
    if os.environ.get("QUICKLEARN_IMAGE_CACHE", "1").strip().lower() in {"0", "false", "no", "off"}:
        return compute(), False
    text = json.dumps({"format": _FORMAT, **key}, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    path = embeddings_dir() / f"{digest}.npy"
    if path.is_file():
        try:
            return np.load(path), True
        except (OSError, ValueError):
            log.info("embeddings cache entry %s is unreadable; computing it again", path.name)
    emb = np.asarray(compute(), dtype=np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, emb)
    except OSError as exc:
        log.warning("could not keep the embeddings in %s (%s); the next check computes them again", path.parent, exc)
    return emb, False
