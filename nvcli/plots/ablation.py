"""Unit ablation: per class, accuracy and logit margin as the top, bottom, random k units are removed."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas

MAX_CLASSES = 36  # panels drawn at most; the CSV holds every class
_STYLE = {"top": ("#c0504d", "-", "top-k removed"), "bottom": ("#2f6fa8", "-", "bottom-k removed"),
          "keep-top": ("#4f9a4f", "--", "only top-k kept")}


def _curve(ax, part: pd.DataFrame, what: str, clean: float) -> None:
    random = part[part["policy"] == "random"].groupby("k")[what]
    ks = np.array(sorted(random.groups))
    if len(ks):
        mean, low, high = random.mean().loc[ks], random.min().loc[ks], random.max().loc[ks]
        ax.fill_between(ks, low, high, color="0.6", alpha=0.35, linewidth=0)
        ax.plot(ks, mean, color="0.35", label="random k removed (mean, range)")
    for policy, (colour, style, label) in _STYLE.items():
        rows = part[part["policy"] == policy].sort_values("k")
        ax.plot(rows["k"], rows[what], color=colour, linestyle=style, marker=".", markersize=3, label=label)
    ax.axhline(clean, color="black", linewidth=0.6, linestyle=":")
    ax.set_xscale("log")
    # Plain 1-2-5 ticks read better than powers of ten, and log minor ticks were half the figure's drawing time.
    top = part["k"].max()
    ticks = [m * 10**e for e in range(len(str(int(top)))) for m in (1, 2, 5) if m * 10**e <= top]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()


def ablation_figure(frame: pd.DataFrame, title: str, classes: list[str] | None = None,
                    into: FigureBase | Axes | None = None) -> FigureBase:
    """Per class two panels: its accuracy (top) and mean logit margin (below) against the number k of units
    removed, for the top-k of the ranking, the bottom-k, random k (mean and range of the draws) and keeping
    only the top-k; the dotted line is the class without ablation."""
    names = [n for n in dict.fromkeys(frame["class"]) if classes is None or n in classes][:MAX_CLASSES]
    cols = min(len(names), math.ceil(math.sqrt(len(names))))
    rows = math.ceil(len(names) / cols)
    width, height = max(3.0 * cols, 6.5), 4.2 * rows  # one class: wide enough for the legend and title
    fig = canvas(into, figsize=(width, height))
    # Fixed margins in inches, not a layout engine: constrained layout took 2 of the command's 8 s at 9 classes.
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, top=1 - 0.8 / height, bottom=0.85 / height,
                        hspace=0.5, wspace=0.4)
    axes = fig.subplots(2 * rows, cols, squeeze=False)
    for i, name in enumerate(names):
        part = frame[frame["class"] == name]
        clean = part[part["policy"] == "none"].iloc[0]
        acc_ax, margin_ax = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        _curve(acc_ax, part, "accuracy", clean["accuracy"])
        acc_ax.set_ylim(-0.03, 1.03)
        acc_ax.set_title(name, fontsize=9)
        acc_ax.set_ylabel("accuracy", fontsize=8)
        _curve(margin_ax, part, "margin", clean["margin"])
        margin_ax.axhline(0, color="black", linewidth=0.6)
        margin_ax.set_ylabel("mean margin", fontsize=8)
        margin_ax.set_xlabel("k (units removed; kept, for the green line)", fontsize=7)
        for ax in (acc_ax, margin_ax):
            ax.tick_params(labelsize=7)
    for i in range(len(names), rows * cols):
        axes[2 * (i // cols), i % cols].set_visible(False)
        axes[2 * (i // cols) + 1, i % cols].set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0))
    shown = "" if len(names) == frame["class"].nunique() else f" (first {len(names)} classes; all in the CSV)"
    fig.suptitle(title + shown, fontsize=10, y=1 - 0.2 / height)
    return fig
