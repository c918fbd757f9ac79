"""PNG plots every task uses: training curves (losses, the monitored metrics, the learning rate of every step),
a grid of titled images, and saving a figure atomically. Figures come from functions that return them, so tests
read the data drawn."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quicklearn.core.fileio import atomic_path

if TYPE_CHECKING:
    import pandas as pd
    import torch

__all__ = ["plot_history", "history_figure", "save_figure", "image_grid", "plot_importance", "importance_figure"]


def save_figure(fig, path: str | Path) -> Path:
    """tight_layout, save as a 100-dpi PNG (creating the folder, atomically), close the figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:  # a crash mid-write never leaves a truncated PNG
            fig.savefig(tmp, dpi=100, format=path.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    return path


def plot_history(history: list[dict[str, Any]], path: str | Path,
                 lr_trace: Sequence[tuple[float, float, float]] | None = None) -> Path | None:
    """Save `history_figure` as a PNG at `path`; None (and no file) when there is no history yet."""
    if not history:
        return None
    return save_figure(history_figure(history, lr_trace), path)


def history_figure(history: list[dict[str, Any]], lr_trace: Sequence[tuple[float, float, float]] | None = None):  # noqa: ANN201
    """Loss, validation metrics and learning rate against epochs, as a matplotlib Figure; `lr_trace` (from
    `LRRecorder`) draws the rate of every step instead of one point per epoch, so the one-cycle warm-up shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(1, len(history) + 1))
    skip = {"stage", "phase", "epoch", "train_loss", "valid_loss", "lr", "time_s"}
    metrics = [k for k in history[0] if k not in skip]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(x, [h["train_loss"] for h in history], "o-", label="train")
    axes[0].plot(x, [h["valid_loss"] for h in history], "o-", label="valid")
    axes[0].set_title("loss")
    axes[0].legend()
    for m in metrics:
        axes[1].plot(x, [h.get(m) for h in history], "o-", label=m)
    axes[1].set_title("validation metrics")
    if metrics:
        axes[1].legend()
    if lr_trace:
        tx = [t[0] for t in lr_trace]
        axes[2].plot(tx, [t[1] for t in lr_trace], label="head")
        if any(t[2] == t[2] for t in lr_trace):  # NaN != NaN: only when body groups trained
            axes[2].plot(tx, [t[2] for t in lr_trace], label="lowest body group")
        axes[2].legend()
        lrs = [v for t in lr_trace for v in t[1:] if v == v]
        axes[2].set_title("learning rate (every step)")
    else:
        lrs = [h["lr"] for h in history]
        axes[2].plot(x, lrs, "o-")
        axes[2].set_title("learning rate (head, end of epoch)")
    if len(set(lrs)) > 1 and min(lrs) > 0:  # one epoch (or a constant rate) has no range to put on a log axis
        axes[2].set_yscale("log")
    frozen_end = sum(1 for h in history if h.get("stage") == 0)
    from matplotlib.ticker import MaxNLocator

    for i, ax in enumerate(axes):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(len(x) + 1, 12)))
        if 0 < frozen_end < len(history):
            # points are epoch ends; the per-step lr trace unfreezes exactly at the end of the frozen epochs
            ax.axvline(frozen_end if (i == 2 and lr_trace) else frozen_end + 0.5, color="grey", ls="--", lw=0.8)
    unfrozen_note = " (dashed line: body unfrozen)" if 0 < frozen_end < len(history) else ""
    fig.suptitle(f"Training curves{unfrozen_note}", fontsize=11)
    return fig


def image_grid(images: torch.Tensor, titles: list[str], path: str | Path, suptitle: str = "",
               colors: list[str] | None = None) -> Path:
    """Save float (B,C,H,W) images in [0,1] as a titled grid PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    cols = min(4, n) if n <= 8 else min(6, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    lines = max((str(t).count("\n") + 1 for t in titles), default=1)  # room for multi-line titles (top losses)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, (2.6 + 0.2 * lines) * rows + (0.5 if suptitle else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k].detach().float().cpu().clamp(0, 1)
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img.permute(1, 2, 0).numpy())
        ax.set_title(titles[k], fontsize=9, color=(colors[k] if colors else "black"))
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return save_figure(fig, path)


def plot_importance(table: "pd.DataFrame", label: str, path: str | Path, max_columns: int = 30) -> Path:
    """A horizontal bar chart of a feature-importance table (column, importance, std), most important column on
    top, with the spread over the shuffles as error bars; `label` says what the numbers measure."""
    return save_figure(importance_figure(table, label, max_columns), path)

def importance_figure(table: "pd.DataFrame", label: str, max_columns: int = 30):  # noqa: ANN201 (a matplotlib Figure)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = table.head(max_columns).iloc[::-1]  # barh draws bottom-up: reverse so the largest is on top
    fig, ax = plt.subplots(figsize=(7.5, 1.5 + 0.34 * max(len(shown), 3)))
    colors = ["#4c72b0" if v >= 0 else "#c44e52" for v in shown["importance"]]
    ax.barh([str(c) for c in shown["column"]], shown["importance"], xerr=shown["std"], color=colors,
            ecolor="#444444", capsize=3)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(label)
    ax.set_ylabel("input column")
    more = f" (top {max_columns} of {len(table)})" if len(table) > max_columns else ""
    ax.set_title(f"Permutation feature importance{more}\none column shuffled at a time; error bars: std over shuffles",
                 fontsize=10)
    return fig
