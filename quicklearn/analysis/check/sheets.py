"""Contact sheets: duplicate pairs side by side, and the top suspected label errors with their given and suggested
labels, as PNGs. Built by functions that return the figure (tests read what is drawn), saved by save_figure."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["pairs_figure", "grid_figure"]


def _show(ax: Any, img: np.ndarray, title: str) -> None:
    ax.imshow(img)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def pairs_figure(rows: Sequence[tuple[np.ndarray, str, np.ndarray, str, str]], title: str):  # noqa: ANN201 (a Figure)
    """One row per pair: (image a, its caption, image b, its caption, what the pair is), drawn side by side."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 2, figsize=(6, 3 * len(rows)), squeeze=False)
    for (a, ta, b, tb, what), (ax_a, ax_b) in zip(rows, axes):
        _show(ax_a, a, f"{what}\n{ta}")
        _show(ax_b, b, tb)
    fig.suptitle(title, fontsize=10)
    return fig


def grid_figure(items: Sequence[tuple[np.ndarray, str]], title: str, cols: int = 4):  # noqa: ANN201 (a Figure)
    """A grid of captioned images (the label-error suspects: 'given ants -> bees (0.93)')."""
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(items) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for (img, caption), ax in zip(items, axes.ravel()):
        _show(ax, img, caption)
    fig.suptitle(title, fontsize=10)
    return fig
