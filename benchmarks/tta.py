"""TTA benchmark: validation accuracy of one hymenoptera model with and without test-time augmentation.

Default vision_learner (tf_efficientnet_lite0, offline ImageNet weights), 224 px, fine_tune(2), one or more seeds; then
`learn.validate()` (the validation view) against `learn.tta()` (that view, its mirror, the centre 224 crop of the
256 pre-sized image and its mirror; probabilities averaged).

    python benchmarks/tta.py [--data ../shared/data/hymenoptera] [--seeds 0 1 2] [--epochs 2] [--size 224]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import quicklearn as ql
from quicklearn.train.metrics import accuracy


def one_seed(data: Path, seed: int, epochs: int, size: int) -> dict:
    """Train one model; its validation accuracy and loss without and with TTA, and the time each took."""
    t0 = time.perf_counter()
    learn = ql.vision_learner(data, size=size, seed=seed, progress=False)
    learn.fine_tune(epochs)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds, targets = learn.get_preds()
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tta_preds, tta_targets = learn.tta()
    tta_s = time.perf_counter() - t0
    assert torch.equal(targets, tta_targets)
    return {
        "n": len(targets), "train_s": train_s, "plain_s": plain_s, "tta_s": tta_s,
        "acc": accuracy(preds, targets), "acc_tta": accuracy(tta_preds, targets),
        "loss": float(F.cross_entropy(preds, targets)), "loss_tta": float(F.cross_entropy(tta_preds, targets)),
        "changed": int((preds.argmax(1) != tta_preds.argmax(1)).sum()),
    }


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=here.parent / "shared" / "data" / "hymenoptera")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args()
    print(f"TTA benchmark: {args.data}, {ql.DEFAULT_ARCH}, {args.size}px, fine_tune({args.epochs}), seeds {args.seeds}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    print(f"{'seed':<5} {'accuracy':>9} {'+TTA':>7} {'loss':>7} {'+TTA':>7} {'changed':>8} {'time':>6} {'+TTA':>6}")
    rows = []
    for seed in args.seeds:
        r = one_seed(args.data, seed, args.epochs, args.size)
        rows.append(r)
        print(f"{seed:<5} {r['acc']:>9.4f} {r['acc_tta']:>7.4f} {r['loss']:>7.4f} {r['loss_tta']:>7.4f} {r['changed']:>8d} "
              f"{r['plain_s']:>5.1f}s {r['tta_s']:>5.1f}s", flush=True)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("acc", "acc_tta", "loss", "loss_tta", "plain_s", "tta_s")}
    n = rows[0]["n"]
    print(f"{'mean':<5} {mean['acc']:>9.4f} {mean['acc_tta']:>7.4f} {mean['loss']:>7.4f} {mean['loss_tta']:>7.4f} "
          f"{'':>8} {mean['plain_s']:>5.1f}s {mean['tta_s']:>5.1f}s")
    print(f"{n} validation images (one image = {100 / n:.2f} points); TTA - plain: {100 * (mean['acc_tta'] - mean['acc']):+.2f} "
          f"points of accuracy, loss {mean['loss_tta'] - mean['loss']:+.4f}, prediction time x{mean['tta_s'] / mean['plain_s']:.1f}")


if __name__ == "__main__":
    main()
