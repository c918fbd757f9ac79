"""What `quicklearn check` looks for in a folder (or CSV) of images, and the cheap part `quicklearn train` runs first.

- hidden or system folders and files (`.ipynb_checkpoints`, `__MACOSX`, `.DS_Store`) and empty class folders;
- unreadable, truncated or odd files; images much smaller than the training size;
- class counts, imbalance, classes too small to split, classes in only one split;
- exact duplicates (content hash) and near duplicates (perceptual hash, and cosine of the pretrained backbone's
  embeddings), within a split and across train/valid (leakage);
- likely label errors (a cross-validated linear probe on the frozen embeddings, ranked by cleanlab);
- outliers by embedding distance.

The items, labels and split are the ones `image_dataloaders` makes (`image_items`), and the pixels come from the
same decoded-image cache entries (train and valid decoded as training decodes them), so a check before or after a
run decodes nothing twice; the embeddings are cached too (analysis/check/store.py).
"""

from __future__ import annotations

import hashlib
import io
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from quicklearn.analysis.check.classes import class_findings
from quicklearn.analysis.check.duplicates import cosine_pairs, exact_groups, hamming_pairs, join_pairs, phash
from quicklearn.analysis.check.findings import (
    SHARED_KINDS,
    CheckContext,
    Checker,
    DataChecks,
    Finding,
    Kind,
    item_name,
    split_names,
)
from quicklearn.analysis.check.leakage import group_findings
from quicklearn.core.progress import progress
from quicklearn.tasks.vision.images import IMAGE_EXTENSIONS

__all__ = ["VISION_KINDS", "vision_checks", "embed_images", "SYSTEM_DIRS", "SYSTEM_FILES", "PHASH_DISTANCE",
           "EMBED_SIMILARITY"]

SYSTEM_DIRS = frozenset({"__MACOSX", "__pycache__", "@eaDir", "$RECYCLE.BIN", "System Volume Information"})
SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "ehthumbs.db"})
# Near duplicates: perceptual hashes at most this many bits apart, or embeddings at least this similar (cosine).
# Set on benchmarks/check.py's planted copies of hymenoptera (resized, re-encoded, cropped by 8% a side): copies
# there are >= 0.87 similar, unrelated photos <= 0.86; pHash alone misses crops (18-20 bits apart).
PHASH_DISTANCE = 8
EMBED_SIMILARITY = 0.88
SMALL_SHARE = 0.5  # "much smaller": the short side under half the training size

VISION_KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("hidden", "hidden or system folders and files"),
    Kind("empty_class", "empty class folders"),
    Kind("odd_file", "files that are not images in the class folders"),
    Kind("small", "images much smaller than the training size"),
)}


def _k(name: str) -> Kind:
    return VISION_KINDS.get(name) or SHARED_KINDS[name]


def embed_images(images: Any, pipeline: Any, arch: str, weights: Any, *, bs: int = 64, progress_bar: bool | None = None,
                 description: str = "embedding images") -> np.ndarray:
    """The frozen pretrained backbone's pooled features (N, C) of pre-sized uint8 images (N, C, S, S): validation's
    center crop and normalization, one forward pass, global average pooling; float32, L2-normalized."""
    import torch

    from quicklearn.tasks.vision.backbones import create_body

    body, _ = create_body(arch, weights=weights, in_chans=pipeline.channels)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    body = body.to(device).eval()
    out = []
    with torch.inference_mode(), progress(progress_bar) as bar:
        task = bar.add_task(description, total=len(images), info="") if bar else None
        for s in range(0, len(images), bs):
            x = pipeline.valid_batch(images[s:s + bs].to(device))
            f = body(x).float().mean((2, 3))
            out.append(torch.nn.functional.normalize(f, dim=1).cpu().numpy())
            if bar:
                bar.advance(task, len(x))
    return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


class _VisionData:
    """The items of one recipe's data and what the checkers share, each computed once when first asked for."""

    def __init__(self, recipe: Any):
        self.recipe = recipe
        self.ctx = CheckContext()

    # ---- items, names, split -------------------------------------------------------------------------------
    @cached_property
    def items(self) -> Any:
        from quicklearn.tasks.vision.data import image_items

        d = self.recipe.data
        return image_items(d.path, y=d.y, path_col=d.path_col, kind=d.kind, label_delim=d.label_delim,
                           splitter=d.splitter, valid_pct=d.valid_pct, seed=self.recipe.training.seed)

    @property
    def root(self) -> Path:
        return Path(self.items.source.root)

    @cached_property
    def names(self) -> list[str]:
        return [item_name(p, self.root) for p in self.items.source.paths]

    @cached_property
    def splits(self) -> list[str]:
        return split_names(len(self.items.source.paths), self.items.train_idx, self.items.valid_idx)

    @cached_property
    def used(self) -> list[int]:
        """The items training uses (train, then valid), in source order."""
        return sorted([*self.items.train_idx, *self.items.valid_idx])

    # ---- file bytes ----------------------------------------------------------------------------------------
    @cached_property
    def digests(self) -> dict[int, str]:
        """blake2b of each used file's bytes (and, on the way, whether it is truncated, and its size in pixels)."""
        self.truncated: dict[int, str] = {}
        self.dims: dict[int, tuple[int, int]] = {}
        out: dict[int, str] = {}
        want_dims = not self.ctx.quick
        paths = self.items.source.paths
        with progress(self.ctx.progress) as bar:
            task = bar.add_task("hashing files", total=len(self.used), info="") if bar else None
            for n, i in enumerate(self.used):
                try:
                    data = Path(paths[i]).read_bytes()
                except OSError as e:
                    self.truncated[i] = f"cannot be read ({e.strerror})"
                    continue
                out[i] = hashlib.blake2b(data, digest_size=16).hexdigest()
                why = _truncated(data)
                if why:
                    self.truncated[i] = why
                if want_dims:
                    self.dims[i] = _dims(data)
                if bar and n % 64 == 0:
                    bar.update(task, completed=n + 1)
            if bar:
                bar.update(task, completed=len(self.used))
        return out

    # ---- pixels and embeddings -------------------------------------------------------------------------------
    @cached_property
    def pipeline(self) -> Any:
        from quicklearn.tasks.vision.data import image_pipeline

        t = self.recipe.transforms
        return image_pipeline(t.size, t.presize, t.resize_mode, t.channels, None, self.recipe.model.arch)

    @cached_property
    def decoded(self) -> tuple[Any, list[int], list[tuple[int, str]], list[str]]:
        """(uint8 images (M, C, S, S) of the items that decode, their item indices, (item, error) of those that do
        not, the cache keys): train and valid decoded exactly as `image_dataloaders` does, so both share entries."""
        import torch

        from quicklearn.tasks.vision.cache import cache_key, cached_images

        parts, rows, errors, keys = [], [], [], []
        paths = self.items.source.paths
        for idx, name in ((self.items.train_idx, "train"), (self.items.valid_idx, "valid")):
            got = cached_images([paths[i] for i in idx], self.pipeline, description=f"decoding {name} images")
            parts.append(got.images)
            rows += [idx[j] for j in got.ok]
            bad = sorted(set(range(len(idx))) - set(got.ok))
            errors += [(idx[j], e) for j, e in zip(bad, got.errors)]
            keys.append(cache_key([paths[i] for i in idx], self.pipeline))
        return torch.cat(parts) if parts else torch.empty(0), rows, errors, keys

    @cached_property
    def embeddings(self) -> np.ndarray:
        from quicklearn.analysis.check.store import cached_embeddings

        images, rows, _, keys = self.decoded
        m, t = self.recipe.model, self.recipe.transforms
        emb, hit = cached_embeddings(
            {"images": keys, "arch": m.arch, "weights": str(m.weights), "size": t.size, "what": "vision pooled"},
            lambda: embed_images(images, self.pipeline, m.arch, m.weights, progress_bar=self.ctx.progress))
        self.ctx.facts.append(f"embeddings: {m.arch} ({m.weights or 'random'} weights), {t.size} px, "
                              f"{'read from the cache' if hit else 'computed and cached'}")
        return emb

    def preview(self, name: str) -> np.ndarray | None:
        """An item's pre-sized image (for the contact sheets), from the decoded cache; None if it did not decode."""
        images, rows, _, _ = self.decoded
        where = self._row_of.get(name)
        return None if where is None else images[where].permute(1, 2, 0).numpy().repeat(3 // images.shape[1], 2)

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {self.names[i]: r for r, i in enumerate(self.decoded[1])}

    # ---- the checkers ----------------------------------------------------------------------------------------
    def hidden(self, ctx: CheckContext) -> list[Finding]:
        """Hidden and system folders/files under the data folder, and class folders with no image."""
        self.ctx = ctx
        root = self.root
        if self.items.source.frame is not None:  # a CSV names its files: nothing to walk
            return []
        out: list[Finding] = []
        system_files: list[str] = []
        trained = {Path(self.names[i]).parts[0] for i in self.used}
        image_dirs = {Path(p).parent for p in self.items.source.paths}
        depths = {len(d.relative_to(root).parts) for d in image_dirs}
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            for d in sorted(dirnames):
                if d.startswith(".") or d in SYSTEM_DIRS:
                    rel = item_name(here / d, root)
                    n = sum(len(f) for _, _, f in os.walk(here / d))
                    used = any(self.names[i].startswith(rel + "/") for i in self.used)
                    what = ("its images are TRAINED as a class" if used else "skipped by training (a dot folder), "
                            "but other tools read it as a class")
                    out.append(Finding("hidden", [rel + "/"], float(n), f"delete {rel}/", f"{n} files; {what}"))
            dirnames[:] = [d for d in dirnames if not (d.startswith(".") or d in SYSTEM_DIRS)]
            system_files += [item_name(here / f, root) for f in sorted(filenames)
                             if f in SYSTEM_FILES or f.startswith("._")]
            rel_depth = len(here.relative_to(root).parts)
            if here != root and rel_depth in depths and here not in image_dirs and not _has_images(here):
                out.append(Finding("empty_class", [item_name(here, root) + "/"], 0.0,
                                   f"add images to {item_name(here, root)}/ or delete it", "no image files in it"))
        if system_files:
            kinds = ", ".join(sorted({Path(f).name for f in system_files})[:3])
            out.append(Finding("hidden", system_files, float(len(system_files)), "delete them",
                               f"{len(system_files)} system files ({kinds})"))
        ctx.facts.append(f"top-level folders trained: {', '.join(sorted(trained)) or '-'}")
        return out

    def files(self, ctx: CheckContext) -> list[Finding]:
        """Unreadable, truncated and odd files; images much smaller than the training size."""
        self.ctx = ctx
        root, out = self.root, []
        for p in self.items.source.skipped:
            out.append(Finding("unreadable", [item_name(p, root)], None, "delete or replace it",
                               "has an image extension but is not a readable image"))
        self.digests  # noqa: B018 (reads the files: truncation and sizes)
        for i, why in sorted(self.truncated.items()):
            out.append(Finding("unreadable", [self.names[i]], None, "re-export or delete it", why, [self.splits[i]]))
        seen = {f.items[0] for f in out}
        for i, err in self.decoded[2]:
            if self.names[i] not in seen:
                out.append(Finding("unreadable", [self.names[i]], None, "re-export or delete it", err.split(": ")[-1],
                                   [self.splits[i]]))
        if self.items.source.frame is None:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if not (d.startswith(".") or d in SYSTEM_DIRS)]
                if Path(dirpath) == root:
                    continue  # a README or a CSV beside the class folders is fine
                for f in sorted(filenames):
                    if f.startswith(".") or f in SYSTEM_FILES or Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                        continue
                    out.append(Finding("odd_file", [item_name(Path(dirpath) / f, root)], None, "move it out of the class "
                                       "folders", f"a {Path(f).suffix or 'no'}-extension file"))
        size = self.recipe.transforms.size
        small = sorted(((min(wh), i) for i, wh in self.dims.items() if wh and min(wh) < SMALL_SHARE * size))
        for side, i in small:
            w, h = self.dims[i]
            out.append(Finding("small", [self.names[i]], float(side), f"use larger images, or train at --size {side}",
                               f"{w} x {h} px, trained at {size} px", [self.splits[i]]))
        return out

    def classes(self, ctx: CheckContext) -> list[Finding]:
        """Class counts per split; imbalance, classes too small to split, classes in only one split."""
        targets = self.items.targets
        if targets.vocab is None or targets.kind == "regression":
            return []
        classes = targets.vocab.classes
        values = targets.values
        counts = {c: [0, 0] for c in classes}
        for idx, col in ((self.items.train_idx, 0), (self.items.valid_idx, 1)):
            for i in idx:
                v = values[i]
                hits = v.nonzero().flatten().tolist() if v.ndim else [int(v)]
                for h in hits:
                    counts[classes[h]][col] += 1
        ctx.facts.append("images per class (train/valid): " + ", ".join(f"{c} {a}/{b}" for c, (a, b) in counts.items()))
        return class_findings(counts, "images")

    def exact(self, ctx: CheckContext) -> list[Finding]:
        """Files with the same bytes: within a split, and across train/valid (leakage)."""
        self.ctx = ctx
        digests = self.digests
        groups = exact_groups([digests.get(i) for i in range(len(self.names))])
        return group_findings(groups, self.names, self.splits, within="duplicate", across="leakage",
                              what="identical files", score=lambda g: 1.0)

    def near(self, ctx: CheckContext) -> list[Finding]:
        """Near duplicates (perceptual hash or embedding cosine), exact copies left out, as groups."""
        self.ctx = ctx
        images, rows, _, _ = self.decoded
        emb = self.embeddings
        digest = [self.digests.get(i) for i in rows]
        pairs = {(i, j) for i, j, _ in hamming_pairs(phash(images.numpy()), PHASH_DISTANCE)}
        pairs |= {(i, j) for i, j, _ in cosine_pairs(emb, EMBED_SIMILARITY)}
        pairs = {(i, j) for i, j in pairs if digest[i] is None or digest[i] != digest[j]}
        sim = {(i, j): float(emb[i] @ emb[j]) for i, j in pairs}
        groups = join_pairs(len(rows), [(i, j, s) for (i, j), s in sim.items()])
        names = [self.names[i] for i in rows]
        splits = [self.splits[i] for i in rows]

        def score(g: Any) -> float:
            return max(s for (i, j), s in sim.items() if i in g and j in g)

        return group_findings(groups, names, splits, within="near_duplicate", across="near_leakage",
                              what="near-identical images", score=score,
                              detail=lambda g: f"cosine {score(g):.3f} (resized, re-encoded or cropped copies)")

    def labels(self, ctx: CheckContext) -> list[Finding]:
        """Likely label errors: a 5-fold logistic regression on the frozen embeddings, ranked by cleanlab."""
        from quicklearn.analysis.check.labels import label_findings, probe_probs

        self.ctx = ctx
        targets = self.items.targets
        if targets.kind != "single" or targets.vocab is None:
            ctx.facts.append(f"label errors: not checked for {targets.kind} targets (single-label classes only)")
            return []
        _, rows, _, _ = self.decoded
        labels = targets.values[rows].numpy()
        probs = probe_probs(self.embeddings, labels, seed=self.recipe.training.seed)
        return label_findings(probs, labels, targets.vocab.classes, [self.names[i] for i in rows],
                              [self.splits[i] for i in rows])

    def outliers(self, ctx: CheckContext) -> list[Finding]:
        """Images far from their nearest neighbours in embedding space."""
        from quicklearn.analysis.check.outliers import outlier_findings

        self.ctx = ctx
        _, rows, _, _ = self.decoded
        return outlier_findings(self.embeddings, [self.names[i] for i in rows], [self.splits[i] for i in rows],
                                what="image")


def vision_checks(recipe: Any) -> DataChecks:
    """The image checkers over the recipe's data (its items as `image_dataloaders` reads them)."""
    d = _VisionData(recipe)
    n = len(d.items.source.paths)
    checkers = [
        Checker("hidden folders", (_k("hidden"), _k("empty_class")), d.hidden, cheap=True),
        Checker("files", (_k("unreadable"), _k("odd_file"), _k("small")), d.files),
        Checker("classes", (_k("few_items"), _k("imbalance"), _k("split_classes")), d.classes),
        Checker("exact duplicates", (_k("leakage"), _k("duplicate")), d.exact, cheap=True),
        Checker("near duplicates", (_k("near_leakage"), _k("near_duplicate")), d.near, needs=("scipy",)),
        Checker("label errors", (_k("label_error"),), d.labels, needs=("sklearn", "cleanlab")),
        Checker("outliers", (_k("outlier"),), d.outliers),
    ]
    return DataChecks("vision", str(recipe.data.path), "images", n, checkers, d.root, d.preview)



def _has_images(folder: Path) -> bool:
    return any(Path(f).suffix.lower() in IMAGE_EXTENSIONS for _, _, files in os.walk(folder) for f in files)


def _truncated(data: bytes) -> str | None:
    """Why the bytes of an image file look cut short (a JPEG without its end marker, a PNG without IEND), or None."""
    if data[:3] == b"\xff\xd8\xff" and not data.rstrip(b"\0\n\r ").endswith(b"\xff\xd9"):
        return "truncated JPEG (no end-of-image marker): part of the picture is missing"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        return "truncated PNG (no IEND chunk)"
    if len(data) == 0:
        return "empty file"
    return None


def _dims(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the file's header (Pillow reads no pixels), or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 (any unreadable header: decoding reports it)
        return None
