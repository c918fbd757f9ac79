"""The decoded-image cache: every image is decoded and pre-sized once, into one uint8 array (N, C, S, S).

- Bounded memory: under `ram_limit` bytes the array lives in RAM; above it, it is a memory-mapped file, so a
  data set larger than RAM trains with the OS paging images in and out instead of growing the process.
- Reused across runs: the array is saved in `<cache>/images/<key>.u8` (+ `<key>.json`), keyed by the files'
  paths, sizes and modification times and by the pre-size step, so a second run on the same data skips decoding.
  Any change to a file, or to presize/resize_mode/channels, gives a new key.
- Safe: written to a temporary name and renamed into place (a kill leaves no half file); a file lock per key
  makes concurrent runs (or torchrun ranks) build it once while the others wait and then read it.
- Bounded disk: after a new entry, the least recently used entries go until the folder is under `disk_limit`.

    imgs = cached_images(paths, pipeline)          # DecodedImages(images, ok, errors, origin)

`pipeline` is anything that says how one file becomes one pre-sized uint8 item (`CachedItems`): the image
pipeline, or a task's own (segmentation caches its masks beside the photos through a mask pipeline).
    QUICKLEARN_IMAGE_CACHE=0   -> no files kept (a spill file is anonymous and vanishes with the process)
    QUICKLEARN_CACHE_RAM_MB    -> the RAM limit (default: a quarter of the machine's RAM, at most 4 GiB)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, Sequence

import numpy as np
import torch
from filelock import FileLock, Timeout

from quicklearn.core.cachedir import cache_dir
from quicklearn.core.fileio import atomic_path, write_json
from quicklearn.tasks.vision.loaders import decode_all
from quicklearn.tasks.vision.pipeline import ImagePipeline

__all__ = ["CachedItems", "DecodedImages", "cached_images", "image_cache_dir", "default_ram_limit", "clear_image_cache",
           "cache_key"]

log = logging.getLogger("quicklearn")

_FORMAT = 2  # bump when decoding or pre-sizing changes what the pixels are (2: EXIF orientation for every format)
_OFF = {"0", "false", "no", "off"}


class CachedItems(Protocol):
    """What the cache needs of a pipeline: decode one file, pre-size it to `item_shape`, and what the pixels depend
    on besides the files (`cache_id`, part of the key). ImagePipeline is one; so is segmentation's mask pipeline."""

    channels: int

    @property
    def item_shape(self) -> tuple[int, ...]: ...

    def cache_id(self) -> dict: ...

    def decode(self, path: Path) -> torch.Tensor: ...

    def item(self, img: torch.Tensor) -> torch.Tensor: ...


@dataclass
class DecodedImages:
    """The decoded images (first len(ok) slots), which input indices they are, the unreadable files' errors,
    and where the pixels came from: 'decoded' (this run, in RAM), 'spilled' (this run, memory-mapped file),
    'cache' (read from an earlier run's file into RAM) or 'mapped' (an earlier run's file, memory-mapped)."""

    images: torch.Tensor
    ok: list[int]
    errors: list[str]
    origin: Literal["decoded", "spilled", "cache", "mapped"]
    file: Path | None = None

    @property
    def in_ram(self) -> bool:
        return self.origin in ("decoded", "cache")


def image_cache_dir() -> Path:
    return cache_dir() / "images"


def default_ram_limit() -> int:
    """Bytes of decoded images kept in RAM: $QUICKLEARN_CACHE_RAM_MB, else a quarter of RAM, at most 4 GiB."""
    env = os.environ.get("QUICKLEARN_CACHE_RAM_MB")
    if env:
        return int(float(env) * 2**20)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return min(4 * 2**30, total // 4)


def _persist_default() -> bool:
    return os.environ.get("QUICKLEARN_IMAGE_CACHE", "1").strip().lower() not in _OFF


def _disk_limit_default() -> int:
    return int(float(os.environ.get("QUICKLEARN_IMAGE_CACHE_GB", "20")) * 2**30)


def cache_key(paths: Sequence[Path], pipeline: "ImagePipeline | CachedItems") -> str:
    """sha256 of the pre-size step and every file's absolute path, size and mtime (no pixel is read)."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": _FORMAT, **pipeline.cache_id()}).encode())
    for p in paths:
        ap = os.path.abspath(p)
        try:
            st = os.stat(ap)
            h.update(f"\0{ap}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"\0{ap}\0missing".encode())  # decoding reports it; the key still has to be stable
    return h.hexdigest()[:32]


def cached_images(
    paths: Sequence[Path],
    pipeline: "ImagePipeline | CachedItems",
    *,
    num_workers: int | None = None,
    description: str = "decoding images",
    ram_limit: int | None = None,
    persist: bool | None = None,
    disk_limit: int | None = None,
) -> DecodedImages:
    """Decode + pre-size `paths` once (or read them from the cache); see the module docstring."""
    ram_limit = default_ram_limit() if ram_limit is None else int(ram_limit)
    persist = _persist_default() if persist is None else persist
    shape = (len(paths), *pipeline.item_shape)
    nbytes = int(np.prod(shape))
    if not paths:
        return DecodedImages(torch.empty(shape, dtype=torch.uint8), [], [], "decoded")
    if persist:
        try:
            folder = image_cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass  # a folder that exists but refuses files fails here, not halfway through decoding
        except OSError as exc:
            log.warning("image cache %s is not writable (%s); decoding without a cache. Set QUICKLEARN_CACHE to a "
                        "writable folder to reuse decoded images across runs.", image_cache_dir(), exc)
            persist = False
    if not persist:
        return _decode(paths, pipeline, num_workers, description, shape, nbytes, ram_limit, None)
    key = cache_key(paths, pipeline)
    data, meta = folder / f"{key}.u8", folder / f"{key}.json"
    lock = FileLock(str(folder / f"{key}.lock"))
    try:
        lock.acquire(timeout=0.5)
    except Timeout:
        log.info("another process is building the image cache %s; waiting for it", data.name)
        lock.acquire()
    try:
        hit = _read(data, meta, shape, nbytes, ram_limit)
        if hit is not None:
            return hit
        out = _decode(paths, pipeline, num_workers, description, shape, nbytes, ram_limit, data)
        write_json(meta, {"format": _FORMAT, "shape": list(shape), "ok": out.ok, "errors": out.errors,
                          "first": str(paths[0]), "n": len(paths), "created": time.time()})
    finally:
        lock.release()
    _evict(folder, disk_limit if disk_limit is not None else _disk_limit_default(), keep=key)
    return out


def _decode(paths: Sequence[Path], pipeline: "ImagePipeline | CachedItems", num_workers: int | None, description: str,
            shape: tuple[int, ...], nbytes: int, ram_limit: int, dest: Path | None) -> DecodedImages:
    """Decode into RAM (then save to `dest`) or, above the RAM limit, straight into a memory-mapped file."""
    if nbytes <= ram_limit:
        buf = torch.empty(shape, dtype=torch.uint8)
        images, ok, errors = decode_all(paths, [pipeline.item], pipeline.channels, num_workers, description, out=buf,
                                         decode=pipeline.decode)
        if dest is not None:
            with atomic_path(dest) as tmp:
                buf.numpy().tofile(tmp)
        return DecodedImages(images, ok, errors, "decoded", dest)
    log.info("decoded images need %.0f MiB, over the %.0f MiB RAM limit: spilling them to a memory-mapped file",
             nbytes / 2**20, ram_limit / 2**20)
    if dest is None:  # no cache folder: an anonymous file that disappears with the process
        handle = tempfile.TemporaryFile(dir=os.environ.get("TMPDIR"))
        mm = np.memmap(handle, dtype=np.uint8, mode="w+", shape=shape)
        images, ok, errors = decode_all(paths, [pipeline.item], pipeline.channels, num_workers, description,
                                        out=torch.from_numpy(mm), decode=pipeline.decode)
        return DecodedImages(images, ok, errors, "spilled", None)
    with atomic_path(dest) as tmp:
        mm = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
        _, ok, errors = decode_all(paths, [pipeline.item], pipeline.channels, num_workers, description,
                                   out=torch.from_numpy(mm), decode=pipeline.decode)
        mm.flush()
        del mm
    mapped = np.memmap(dest, dtype=np.uint8, mode="c", shape=shape)  # copy-on-write: the file is never changed
    return DecodedImages(torch.from_numpy(mapped)[: len(ok)], ok, errors, "spilled", dest)


def _read(data: Path, meta: Path, shape: tuple[int, ...], nbytes: int, ram_limit: int) -> DecodedImages | None:
    """An earlier run's entry, or None when there is none or it does not fit (it is then rebuilt)."""
    try:
        info = json.loads(meta.read_text())
        if info.get("format") != _FORMAT or tuple(info["shape"]) != shape or data.stat().st_size != nbytes:
            return None
        ok, errors = [int(i) for i in info["ok"]], [str(e) for e in info["errors"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    os.utime(meta)  # recently used: last to be evicted
    if nbytes <= ram_limit:
        arr = np.fromfile(data, dtype=np.uint8).reshape(shape)
        return DecodedImages(torch.from_numpy(arr)[: len(ok)], ok, errors, "cache", data)
    mapped = np.memmap(data, dtype=np.uint8, mode="c", shape=shape)
    return DecodedImages(torch.from_numpy(mapped)[: len(ok)], ok, errors, "mapped", data)


def _evict(folder: Path, disk_limit: int, keep: str) -> None:
    """Delete least recently used entries (by their .json's mtime) until the folder holds at most `disk_limit` bytes."""
    entries = []
    for meta in folder.glob("*.json"):
        data = meta.with_suffix(".u8")
        try:
            entries.append((meta.stat().st_mtime, meta.stem, data.stat().st_size if data.exists() else 0))
        except OSError:
            continue
    total = sum(size for _, _, size in entries)
    for _, key, size in sorted(entries):
        if total <= disk_limit:
            break
        if key == keep:
            continue
        lock = FileLock(str(folder / f"{key}.lock"))
        try:
            with lock.acquire(timeout=0):  # in use by a builder: leave it
                (folder / f"{key}.json").unlink(missing_ok=True)
                (folder / f"{key}.u8").unlink(missing_ok=True)
            total -= size
        except Timeout:
            continue


def clear_image_cache() -> int:
    """Delete every entry of the image cache; returns the bytes freed."""
    folder = image_cache_dir()
    freed = 0
    for f in folder.glob("*.u8"):
        freed += f.stat().st_size
        f.unlink(missing_ok=True)
    for f in folder.glob("*.json"):
        f.unlink(missing_ok=True)
    return freed
