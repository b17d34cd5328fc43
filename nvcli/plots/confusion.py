"""The confusion matrix as a heat map, rows normalised to per-class recall."""
from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas


def confusion_figure(confusion: pd.DataFrame, title: str = "", into: FigureBase | Axes | None = None) -> FigureBase:
    """A heat map of `confusion` (columns: true, then one count column per predicted class)."""
    counts = confusion.drop(columns="true").to_numpy(dtype=float)
    share = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    n = len(confusion)
    fig = canvas(into, figsize=(1.2 + 0.45 * n, 1.0 + 0.45 * n), layout="constrained")
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), confusion.columns[1:], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), confusion["true"], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title)
    return fig
