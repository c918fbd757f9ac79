"""Training curves as a PNG: losses, the monitored metrics and the learning rate per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_history", "save_figure"]


def save_figure(fig, path: str | Path) -> Path:
    """tight_layout, save as a 100-dpi PNG (creating the folder), close the figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_history(history: list[dict[str, Any]], path: str | Path) -> Path | None:
    if not history:
        return None
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
    lrs = [h["lr"] for h in history]
    axes[2].plot(x, lrs, "o-")
    if len(set(lrs)) > 1 and min(lrs) > 0:  # one epoch (or a constant rate) has no range to put on a log axis
        axes[2].set_yscale("log")
    axes[2].set_title("learning rate (head, end of epoch)")
    frozen_end = sum(1 for h in history if h.get("stage") == 0)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_xticks(x)
        if 0 < frozen_end < len(history):
            ax.axvline(frozen_end + 0.5, color="grey", ls="--", lw=0.8)
    unfrozen_note = " (dashed line: body unfrozen)" if 0 < frozen_end < len(history) else ""
    fig.suptitle(f"Training curves{unfrozen_note}", fontsize=11)
    return save_figure(fig, path)
