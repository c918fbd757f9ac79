"""The learning-rate finder's sweep, its valley suggestion and its plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from quicklearn.analysis.plots import save_figure
from quicklearn.core.progress import progress

if TYPE_CHECKING:
    from quicklearn.train.learner import Learner

__all__ = ["run_lr_find", "valley", "plot_lr_find", "lr_find_figure"]


def run_lr_find(learn: "Learner", start_lr: float, end_lr: float, num_it: int) -> tuple[list[float], list[float]]:
    """Train with an exponentially growing lr, one batch per step; stop when the smoothed loss explodes."""
    lrs: list[float] = []
    losses: list[float] = []
    avg, best, beta = 0.0, math.inf, 0.98
    learn._set_train_mode()
    step, epoch = 0, 0
    with progress() as bar:
        task = bar.add_task("lr finder", total=num_it, info="") if bar else None
        while step < num_it:
            learn.dls.train.set_epoch(10_000 + epoch)
            for x, y in learn.dls.train:
                lr = start_lr * (end_lr / start_lr) ** (step / max(1, num_it - 1))
                for pg in learn.opt.param_groups:  # type: ignore[union-attr]
                    pg["lr"] = lr
                loss = learn._step(x, y, 0, 1)
                avg = beta * avg + (1 - beta) * loss
                smooth = avg / (1 - beta ** (step + 1))
                lrs.append(lr)
                losses.append(smooth)
                best = min(best, smooth)
                step += 1
                if bar:
                    bar.update(task, advance=1, info=f"lr {lr:.1e} loss {smooth:.4f}")
                if not math.isfinite(smooth) or smooth > 4 * best or step >= num_it:
                    return lrs, losses
            epoch += 1
    return lrs, losses


def valley(lrs: list[float], losses: list[float]) -> float:
    """fastai's 'valley': the lr 2/3 of the way down the longest descending stretch of the loss curve."""
    n = len(losses)
    if n < 3:
        return lrs[0] if lrs else 1e-3
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[max_end] < lds[i]:
            max_end, max_start = i, i - lds[i]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return lrs[min(idx, n - 1)]


def plot_lr_find(lrs: list[float], losses: list[float], suggestion: float, path: str | Path) -> Path:
    """Save `lr_find_figure` as a PNG at `path`."""
    return save_figure(lr_find_figure(lrs, losses, suggestion), path)


def lr_find_figure(lrs: list[float], losses: list[float], suggestion: float):  # noqa: ANN201
    """Smoothed loss against the learning rate (log axis), with the suggested rate marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title("Learning-rate finder")
    i = min(range(len(lrs)), key=lambda k: abs(math.log(lrs[k]) - math.log(suggestion)))
    ax.plot([suggestion], [losses[i]], "o", color="tab:red", label=f"suggested lr {suggestion:.2e}")
    ax.legend()
    finite = [v for v in losses if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.95, min(max(finite), finite[0] * 2) * 1.05)
    return fig
