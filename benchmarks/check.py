"""Issue 23: `quicklearn check` on copies of hymenoptera and imdb-sample with known planted problems.

Photos: 10 exact and 10 near duplicates across train/val (resized + re-encoded, re-encoded at low quality, cropped by
8% on each side), 5% of the labels flipped (moved to the other class's folder), 3 corrupt files (truncated, empty,
text named .jpg), a hidden `.ipynb_checkpoints` class. Texts: 10 exact and 10 near-duplicate reviews across the split
(a sentence dropped, a few words changed, case and punctuation changed), 5% of the labels flipped, 3 empty texts.

Printed: recall and precision per planted kind and data set. Pairs already duplicated in the untouched copy (checked
the same way first) do not count as false, nor do pairs they imply (a planted copy of a photo that already had a near
twin). Labels: recall = flipped items within the top 2 x planted suspects. Then the full check's time against one
backbone forward pass over the same cached images (the decoded-image cache warm, the embeddings not), alternating,
on the 398 photos and on 4,000 resampled from them (hard links: copies by construction, timing only); then `train`'s
cost with its quick check against --no-check on first runs (empty caches), alternating.

    .venv/bin/python benchmarks/check.py            # ~20 min on 2 CPU cores
    .venv/bin/python benchmarks/check.py --quick    # smoke run: smaller sets, no 4,000-photo timing
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from itertools import combinations
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("QUICKLEARN_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PAIR_KINDS = {"exact": ("leakage", "duplicate"), "near": ("near_leakage", "near_duplicate")}


def pairs_of(report, kinds) -> set[frozenset]:
    return {frozenset(p) for f in report.findings if f.kind in kinds for p in combinations(f.items, 2)}


def components(pairs: set[frozenset]) -> dict[str, int]:
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            a = parent[a]
        return a

    for p in pairs:
        a, b = sorted(p)
        parent[find(a)] = find(b)
    return {a: hash(find(a)) for a in list(parent)}


def pair_scores(found: set[frozenset], planted: set[frozenset], known: set[frozenset]) -> tuple[float, int, int]:
    """(recall of the planted pairs, false pairs, found pairs); a pair is not false when planted or pre-existing
    pairs connect its two items."""
    comp = components(planted | known)
    false = [p for p in found if p not in planted and len({comp.get(x, x) for x in p}) > 1]
    return len(found & planted) / max(len(planted), 1), len(false), len(found)


def line(data: str, kind: str, recall: float, precision: str, note: str = "") -> None:
    print(f"{data:<12} {kind:<22} recall {recall:6.1%}   {precision:<22} {note}")


# ---- photos ----------------------------------------------------------------------------------------------------
def plant_photos(src: Path, dest: Path, rng: random.Random) -> dict:
    shutil.copytree(src, dest)
    train = sorted(p for p in (dest / "train").rglob("*.jpg"))
    chosen = rng.sample(train, 20)
    exact, near = set(), set()
    for k, p in enumerate(chosen[:10]):
        target = dest / "val" / p.parent.name / f"exact_{k}.jpg"
        shutil.copy(p, target)
        exact.add(frozenset({rel(p, dest), rel(target, dest)}))
    for k, p in enumerate(chosen[10:]):
        target = dest / "val" / p.parent.name / f"near_{k}.jpg"
        with Image.open(p) as im:
            im = im.convert("RGB")
            if k % 3 == 0:
                im.resize((im.width * 2 // 3, im.height * 2 // 3)).save(target, quality=75)
            elif k % 3 == 1:
                im.save(target, quality=35)
            else:
                w, h = im.size
                im.crop((w // 12, h // 12, w - w // 12, h - h // 12)).save(target, quality=90)
        near.add(frozenset({rel(p, dest), rel(target, dest)}))
    others = [p for p in sorted(dest.rglob("*.jpg")) if p not in chosen and not p.name.startswith(("exact_", "near_"))]
    flips = rng.sample(others, round(0.05 * len(others)))
    flipped, renamed = set(), {}
    for p in flips:
        other = "bees" if p.parent.name == "ants" else "ants"
        target = p.parent.parent / other / p.name
        renamed[rel(p, dest)] = rel(target, dest)
        p.rename(target)
        flipped.add(rel(target, dest))
    keep = [p for p in sorted((dest / "train").rglob("*.jpg")) if rel(p, dest) not in flipped][:3]
    corrupt = {"train/ants/corrupt_truncated.jpg", "train/bees/corrupt_empty.jpg", "val/ants/corrupt_text.jpg"}
    data = keep[0].read_bytes()
    (dest / "train/ants/corrupt_truncated.jpg").write_bytes(data[: len(data) // 3])
    (dest / "train/bees/corrupt_empty.jpg").write_bytes(b"")
    (dest / "val/ants/corrupt_text.jpg").write_text("<html>404 not found</html>")
    hidden = dest / "train" / ".ipynb_checkpoints"
    hidden.mkdir()
    for p in keep[1:3]:
        shutil.copy(p, hidden / f"{p.stem}-checkpoint.jpg")
    return {"exact": exact, "near": near, "flipped": flipped, "renamed": renamed, "corrupt": corrupt,
            "hidden": {"train/.ipynb_checkpoints/"}}


def rel(p: Path, root: Path) -> str:
    return p.resolve().relative_to(root.resolve()).as_posix()


def score_report(data: str, report, base, planted: dict) -> None:
    ren = planted.get("renamed", {})
    for what, kinds in PAIR_KINDS.items():
        before = pairs_of(base, (*PAIR_KINDS["exact"], *PAIR_KINDS["near"]))
        known = {frozenset(ren.get(x, x) for x in p) for p in before}
        recall, false, found = pair_scores(pairs_of(report, kinds), planted[what], known)
        line(data, f"{what} duplicate pairs", recall, f"false pairs {false} / {found}",
             f"(target: 100%, <= 2 false; {len(known)} pairs in the untouched copy)")
    flipped = planted["flipped"]
    suspects = [f.items[0] for f in report.of("label_error")]
    top = suspects[: 2 * len(flipped)]
    hits = len(set(top) & flipped)
    line(data, "flipped labels", hits / len(flipped), f"precision {hits / max(len(top), 1):5.1%} (top {len(top)})",
         f"(target: >= 70% in the top {2 * len(flipped)}; {len(suspects)} flagged, "
         f"{len(set(suspects) & flipped)} of {len(flipped)} flipped among them)")
    for what, kinds in (("corrupt", ("unreadable",)), ("empty", ("empty",)), ("hidden", ("hidden",))):
        if what not in planted:
            continue
        found = report.items_of(kinds)
        hits = len(found & planted[what])
        line(data, f"{what} {'files' if what != 'empty' else 'texts'}", hits / len(planted[what]),
             f"precision {hits / max(len(found), 1):5.1%}", f"({len(found)} reported)")


# ---- texts -------------------------------------------------------------------------------------------------------
def near_text(text: str, rng: random.Random, k: int) -> str:
    sentences = [s for s in text.replace("!", ".").split(". ") if s]
    if k % 3 == 0 and len(sentences) > 3:
        sentences.pop(rng.randrange(1, len(sentences) - 1))
        return ". ".join(sentences)
    if k % 3 == 1:
        words = text.split()
        for _ in range(max(2, len(words) // 40)):
            words[rng.randrange(len(words))] = rng.choice(["really", "quite", "movie", "film", "very"])
        return " ".join(words)
    return text.lower().replace(",", "").replace(".", "!")


def plant_texts(src: Path, dest: Path, rng: random.Random, n: int | None) -> dict:
    frame = pd.read_csv(src)
    if n:
        frame = frame.head(n)
    frame = frame.reset_index(drop=True)
    train_rows = list(frame.index[~frame["is_valid"]])
    chosen = rng.sample(train_rows, 20)
    others = [i for i in frame.index if i not in chosen]
    flips = rng.sample(others, round(0.05 * len(frame)))
    frame.loc[flips, "label"] = frame.loc[flips, "label"].map({"positive": "negative", "negative": "positive"})
    rows, exact, near = [], set(), set()
    for k, i in enumerate(chosen):
        r = frame.loc[i].to_dict()
        r["is_valid"] = True
        if k >= 10:
            r["text"] = near_text(r["text"], rng, k)
        (exact if k < 10 else near).add(frozenset({f"row {i}", f"row {len(frame) + len(rows)}"}))
        rows.append(r)
    empty = set()
    for k in range(3):
        empty.add(f"row {len(frame) + len(rows)}")
        rows.append({"label": "positive", "text": "" if k else "   ", "is_valid": bool(k % 2)})
    pd.concat([frame, pd.DataFrame(rows)], ignore_index=True).to_csv(dest, index=False)
    return {"exact": exact, "near": near, "flipped": {f"row {i}" for i in flips}, "empty": empty}


# ---- timing --------------------------------------------------------------------------------------------------------
def resample(src: Path, dest: Path, n: int, rng: random.Random) -> None:
    files = sorted(src.rglob("*.jpg"))
    for k in range(n):
        p = rng.choice(files)
        target = dest / p.relative_to(src).parent / f"{k}_{p.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(p, target)


def forward_time(folder: Path) -> float:
    """One backbone forward pass over the folder's cached decoded images (what the check's embedding pass runs)."""
    from quicklearn.config.schema import parse_recipe
    from quicklearn.tasks.vision.checks import _VisionData, embed_images

    d = _VisionData(parse_recipe({"task": "vision", "data": {"path": str(folder)}}))
    images = d.decoded[0]  # from the image cache (warm)
    t = time.perf_counter()
    embed_images(images, d.pipeline, "tf_efficientnet_lite0", "imagenet", progress_bar=False)
    return time.perf_counter() - t


def check_time(folder: Path) -> float:
    import quicklearn as ql
    from quicklearn.analysis.check.store import embeddings_dir

    shutil.rmtree(embeddings_dir(), ignore_errors=True)  # embeddings cold, decoded images warm
    t = time.perf_counter()
    ql.check(folder, progress=False)
    return time.perf_counter() - t


def timing(folder: Path, label: str, rounds: int) -> None:
    import quicklearn as ql

    ql.check(folder, progress=False)  # warm the decoded-image cache
    fw, ck = [], []
    for r in range(rounds):
        order = (forward_time, check_time) if r % 2 == 0 else (check_time, forward_time)
        for fn in order:
            (fw if fn is forward_time else ck).append(fn(folder))
    f, c = min(fw), min(ck)
    print(f"{label:<28} forward {f:7.1f} s   full check {c:7.1f} s   ratio {c / f:5.2f}x   (target <= 1.5x; "
          f"best of {rounds}: forward {', '.join(f'{v:.1f}' for v in fw)}; check {', '.join(f'{v:.1f}' for v in ck)})")


def train_cost(folder: Path, base: Path, rounds: int, size: int) -> None:
    from quicklearn.config.run import run_recipe
    from quicklearn.config.schema import parse_recipe

    times: dict[bool, list[float]] = {True: [], False: []}
    quick: list[float] = []
    for r in range(rounds):
        for check in ((True, False) if r % 2 == 0 else (False, True)):
            cache = base / f"cache-{r}-{check}"
            os.environ["QUICKLEARN_CACHE"] = str(cache)  # a first run: nothing decoded yet
            recipe = parse_recipe({"task": "vision", "data": {"path": str(folder)}, "transforms": {"size": size},
                                   "fit": {"freeze_epochs": 1, "epochs": 1}, "output": {"plots": False}})
            t = time.perf_counter()
            res = run_recipe(recipe, out=base / f"run-{r}-{check}", progress=False, check=check)
            times[check].append(time.perf_counter() - t)
            if res.data_check is not None:
                quick.append(res.data_check.wall_s)
            shutil.rmtree(cache, ignore_errors=True)
    on, off = float(np.mean(times[True])), float(np.mean(times[False]))
    print(f"train (first run, {size} px, 1+1 epochs)  with check {on:6.1f} s   --no-check {off:6.1f} s   "
          f"cost {on / off - 1:+6.1%} (target <= +5%); the quick check itself {np.mean(quick):.2f} s "
          f"= {np.mean(quick) / off:.1%} of a run")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smoke run: 300 texts, no 4,000-photo timing, one round")
    ap.add_argument("--data", choices=("all", "photos", "texts"), default="all",
                    help="which planted set to check (the timings run with the photos)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    import quicklearn as ql

    tmp = Path(tempfile.mkdtemp(prefix="ql-check-bench-"))
    os.environ["QUICKLEARN_CACHE"] = str(tmp / "cache")
    t0 = time.perf_counter()
    print("kind                                 recall   precision / false pairs")
    if args.data != "texts":
        photos = tmp / "photos"
        base_photos = tmp / "photos-untouched"
        shutil.copytree(SHARED / "hymenoptera", base_photos)
        planted = plant_photos(SHARED / "hymenoptera", photos, random.Random(0))
        base = ql.check(base_photos, progress=False)
        report = ql.check(photos, progress=False, out=tmp / "photos-report")
        score_report("hymenoptera", report, base, planted)
    if args.data != "photos":
        texts_part(tmp, 300 if args.quick else None)
    print(f"(planted checks: {time.perf_counter() - t0:.0f} s; reports in {tmp})")
    if args.data == "texts":
        return
    rounds = 1 if args.quick else 2
    rng = random.Random(2)
    timing(base_photos, "398 photos", rounds)
    if not args.quick:
        big = tmp / "photos-4000"
        resample(base_photos, big, 4000, rng)
        timing(big, "4,000 photos (resampled)", 1)
    train_cost(base_photos, tmp, 1 if args.quick else 2, 96 if args.quick else 160)
    print(f"total {time.perf_counter() - t0:.0f} s")


def texts_part(tmp: Path, n: int | None) -> None:
    """The planted imdb-sample copy, checked and scored against its untouched copy."""
    import quicklearn as ql

    rng = random.Random(1)
    texts = tmp / "texts.csv"
    untouched = tmp / "texts-untouched.csv"
    frame = pd.read_csv(SHARED / "imdb-sample" / "texts.csv")
    (frame.head(n) if n else frame).to_csv(untouched, index=False)
    planted_t = plant_texts(SHARED / "imdb-sample" / "texts.csv", texts, rng, n)
    base_t = ql.check(untouched, target="label", progress=False)
    report_t = ql.check(texts, target="label", progress=False, out=tmp / "texts-report")
    score_report("imdb-sample", report_t, base_t, planted_t)


if __name__ == "__main__":
    main()
