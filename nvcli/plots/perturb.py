"""Table 2 as grouped bars (accuracy per class and condition) and Figure 7 (one image under each condition)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase
from torch import Tensor

from ..data.channels import NONE, zero_channel
from .canvas import canvas

_BAR_COLOURS = {NONE: "0.55", "red": "#d62728", "green": "#2ca02c", "blue": "#1f77b4"}


def perturb_figure(frame: pd.DataFrame, title: str, into: FigureBase | Axes | None = None) -> FigureBase:
    """Grouped bars: per class (and overall), the accuracy under each condition, each bar's value written on it
    (a class that collapses to 0 shows '0.00', not a gap that looks like missing data)."""
    classes = list(dict.fromkeys(frame["class"]))
    conditions = list(dict.fromkeys(frame["condition"]))
    width = 0.8 / len(conditions)
    x = np.arange(len(classes))
    fig = canvas(into, figsize=(max(6.0, 0.25 * len(classes) * len(conditions) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    for i, condition in enumerate(conditions):
        part = frame[frame["condition"] == condition].set_index("class").loc[classes]
        label = "no perturbation" if condition == NONE else f"{condition} = 0"
        bars = ax.bar(x + (i - (len(conditions) - 1) / 2) * width, part["accuracy"], width, label=label,
                      color=_BAR_COLOURS[condition])
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in part["accuracy"]], rotation=90, fontsize=6, padding=2)
    ax.set_xticks(x, classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.2)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=7, ncols=len(conditions), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.set_title(title, pad=22)
    return fig


def examples_figure(x: Tensor, conditions: Sequence[str], title: str,
                    into: FigureBase | Axes | None = None) -> FigureBase:
    """Figure 7: one validation image as the model sees it under each condition (the first view of multi-view data)."""
    image = x[0] if x.dim() == 4 else x
    fig = canvas(into, figsize=(2.2 * len(conditions), 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(conditions), squeeze=False)).ravel()
    for ax, condition in zip(axes, conditions):
        shown = image if condition == NONE else zero_channel(image, condition)
        ax.imshow(shown.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title("original" if condition == NONE else f"{condition} = 0", fontsize=9)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return fig

