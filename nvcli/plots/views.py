"""Figure 5: per class, one bar per camera view of its mean head weight."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas


def views_figure(frame: pd.DataFrame, title: str = "", into: FigureBase | Axes | None = None) -> FigureBase:
    """Figure 5: per class, one bar per view of its mean head weight (a grid of panels, shared y axis)."""
    names = list(dict.fromkeys(frame["class"]))
    cols = math.ceil(math.sqrt(len(names)))
    rows = math.ceil(len(names) / cols)
    fig = canvas(into, figsize=(2.8 * cols, 2.1 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        part = frame[frame["class"] == name]
        values = part["mean_weight"].to_numpy()
        ax.bar(part["view"], values, color=np.where(values > 0, "#2f6fa8", "#c0504d"))
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(part["view"])
        ax.tick_params(labelsize=7)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.supxlabel("view")
    fig.supylabel("mean head weight")
    if title:
        fig.suptitle(title)
    return fig
