"""The decoded-image cache: reuse across runs, the RAM limit and its memory-mapped spill, invalidation,
concurrent builders, eviction, and the pixels being exactly those of a fresh decode."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch
from conftest import write_image

from quicklearn.tasks.vision.augment import Normalize
from quicklearn.tasks.vision.cache import cache_key, cached_images, clear_image_cache, image_cache_dir
from quicklearn.tasks.vision.data import image_dataloaders
from quicklearn.tasks.vision.pipeline import ImagePipeline

PIPE = ImagePipeline(16, 18, "crop", 3, Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
SLOT = 3 * 18 * 18  # bytes per decoded image


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """An empty cache per test (the session-wide one would already hold these images)."""
    monkeypatch.setenv("QUICKLEARN_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def photos(hymenoptera: Path) -> list[Path]:
    """Eight real JPEGs of different sizes."""
    return sorted((hymenoptera / "train" / "ants").glob("*.jpg"))[:8]


def _fresh(paths: list[Path]) -> torch.Tensor:
    return torch.stack([PIPE.load(p) for p in paths])


def test_second_call_reads_the_cache_with_identical_pixels(photos):
    first = cached_images(photos, PIPE, num_workers=0)
    assert first.origin == "decoded" and first.file is not None and first.file.stat().st_size == len(photos) * SLOT
    second = cached_images(photos, PIPE, num_workers=0)
    assert second.origin == "cache" and second.file == first.file
    assert torch.equal(first.images, _fresh(photos)) and torch.equal(second.images, first.images)
    assert second.ok == list(range(len(photos))) and second.errors == []


def test_over_the_ram_limit_the_images_are_memory_mapped(photos):
    spilled = cached_images(photos, PIPE, num_workers=0, ram_limit=SLOT * 3)
    assert spilled.origin == "spilled" and not spilled.in_ram
    assert torch.equal(spilled.images, _fresh(photos))
    again = cached_images(photos, PIPE, num_workers=0, ram_limit=SLOT * 3)
    assert again.origin == "mapped" and torch.equal(again.images, spilled.images)
    # copy-on-write mapping: writing to the tensor never changes the file another run reads
    again.images[0].zero_()
    assert torch.equal(cached_images(photos, PIPE, num_workers=0).images[0], _fresh(photos[:1])[0])


def test_without_a_cache_folder_the_spill_is_anonymous(photos):
    out = cached_images(photos, PIPE, num_workers=0, ram_limit=SLOT, persist=False)
    assert out.origin == "spilled" and out.file is None and torch.equal(out.images, _fresh(photos))
    assert not list(image_cache_dir().glob("*.u8")) or all(
        f.name != cache_key(photos, PIPE) + ".u8" for f in image_cache_dir().glob("*.u8"))


def test_a_changed_file_or_pre_size_changes_the_key(tmp_path):
    paths = [write_image(tmp_path / f"{i}.png", size=(20 + i, 20), color=(10 * i, 90, 200)) for i in range(4)]
    key = cache_key(paths, PIPE)
    assert cache_key(paths, ImagePipeline(16, 20, "crop", 3, PIPE.normalize)) != key
    assert cache_key(paths, ImagePipeline(16, 18, "pad", 3, PIPE.normalize)) != key
    cached_images(paths, PIPE, num_workers=0)
    write_image(paths[2], size=(30, 30), color=(255, 255, 0))  # same name, new pixels
    st = os.stat(paths[2])
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache_key(paths, PIPE) != key
    out = cached_images(paths, PIPE, num_workers=0)
    assert out.origin == "decoded" and torch.equal(out.images[2], PIPE.load(paths[2]))


def test_unreadable_files_leave_no_gap_and_the_cache_remembers_them(tmp_path):
    paths = [write_image(tmp_path / f"{i}.png", color=(30 * i, 60, 90)) for i in range(5)]
    bad = tmp_path / "2.png"
    bad.write_bytes(b"not an image at all")
    first = cached_images(paths, PIPE, num_workers=0)
    assert first.ok == [0, 1, 3, 4] and len(first.errors) == 1 and "2.png" in first.errors[0]
    assert len(first.images) == 4 and torch.equal(first.images[2], PIPE.load(paths[3]))
    second = cached_images(paths, PIPE, num_workers=0)
    assert second.origin == "cache" and second.ok == first.ok and second.errors == first.errors
    assert torch.equal(second.images, first.images)


def test_a_truncated_cache_file_is_rebuilt(photos):
    first = cached_images(photos, PIPE, num_workers=0)
    with open(first.file, "r+b") as f:
        f.truncate(SLOT)
    again = cached_images(photos, PIPE, num_workers=0)
    assert again.origin == "decoded" and torch.equal(again.images, first.images)
    assert again.file.stat().st_size == len(photos) * SLOT


def test_concurrent_builders_decode_once(photos):
    results, barrier = [], threading.Barrier(2)

    def build():
        barrier.wait()
        results.append(cached_images(photos, PIPE, num_workers=0))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.origin for r in results) == ["cache", "decoded"]
    assert torch.equal(results[0].images, results[1].images)
    assert not list(image_cache_dir().glob(".*.tmp"))  # no temporary file left behind


def test_least_recently_used_entries_are_evicted(tmp_path, photos):
    a = cached_images(photos[:4], PIPE, num_workers=0)
    b = cached_images(photos[4:], PIPE, num_workers=0)
    os.utime(a.file.with_suffix(".json"), (1, 1))  # a: long unused
    c = cached_images(photos[2:6], PIPE, num_workers=0, disk_limit=int(SLOT * 8.5))
    assert not a.file.exists() and b.file.exists() and c.file.exists()
    assert clear_image_cache() >= 8 * SLOT and not list(image_cache_dir().glob("*.u8"))


def test_dataloaders_on_the_cache_give_the_same_batches(tiny_folder, caplog):
    kw = dict(size=16, bs=4, seed=3, num_workers=0)
    first = image_dataloaders(tiny_folder, **kw)
    with caplog.at_level("INFO", logger="quicklearn"):
        second = image_dataloaders(tiny_folder, **kw)
    assert "read from the image cache" in caplog.text
    xa, ya = next(iter(first.train))
    xb, yb = next(iter(second.train))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_spilled_dataloaders_train_like_in_ram(tiny_folder, monkeypatch):
    kw = dict(size=16, bs=4, seed=3, num_workers=0)
    ram = image_dataloaders(tiny_folder, **kw)
    monkeypatch.setenv("QUICKLEARN_CACHE_RAM_MB", "0.001")
    monkeypatch.setenv("QUICKLEARN_IMAGE_CACHE", "0")
    spilled = image_dataloaders(tiny_folder, **kw)
    for (xa, ya), (xb, yb) in zip(ram.train, spilled.train):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
