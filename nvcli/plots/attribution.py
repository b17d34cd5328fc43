"""Attribution methods side by side: per metric, each method's mean over the images; below, example maps."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas
from .where import CMAP, PANEL

if TYPE_CHECKING:
    from torch import Tensor

BETTER = {"deletion": "lower is better", "insertion": "higher is better", "pointing": "higher is better"}


def attribution_figure(images: pd.DataFrame, examples: "Tensor | None", maps: dict[str, np.ndarray],
                       title: str, into: FigureBase | Axes | None = None) -> FigureBase:
    """Top row: per metric, bars of each method's mean over the images (with the standard error); then one row per
    example image: the input and each method's map (`maps`: method -> [E, H, W]), each on its own symmetric scale."""
    metrics = list(dict.fromkeys(images["metric"]))
    methods = list(dict.fromkeys(images["method"]))
    shown = 0 if examples is None else min(len(examples), *(len(m) for m in maps.values()))
    cols = max(len(metrics), len(maps) + 1 if shown else 1)
    fig = canvas(into, figsize=(PANEL * 1.4 * cols, PANEL * 1.6 + PANEL * shown + 0.6), layout="constrained")
    grid = fig.subplots(1 + shown, cols, squeeze=False, height_ratios=[1.6] + [1.0] * shown)
    for ax in grid.ravel():
        ax.set_axis_off()
    for ax, metric in zip(grid[0], metrics):
        values = images[images["metric"] == metric].groupby("method")["value"]
        mean, error = values.mean().reindex(methods), values.sem().reindex(methods).fillna(0)
        ax.set_axis_on()
        bars = ax.bar(range(len(methods)), mean, yerr=error, color=[f"C{i}" for i in range(len(methods))])
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in mean], fontsize=6, padding=2)
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1.1)
        ax.set_title(f"{metric} ({BETTER.get(metric, '')})", fontsize=8)
    for row in range(shown):
        image = examples[row].numpy()
        ax = grid[1 + row, 0]
        if image.shape[0] == 3:
            ax.imshow(image.transpose(1, 2, 0).clip(0, 1))
        else:
            ax.imshow(image[0], cmap="magma", origin="lower", aspect="auto")
        for ax, (method, stack) in zip(grid[1 + row, 1:], maps.items()):
            limit = float(np.abs(stack[row]).max()) or 1.0
            ax.imshow(stack[row], cmap=CMAP, vmin=-limit, vmax=limit)
            ax.set_title(method, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig
