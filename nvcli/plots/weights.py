"""Figure 3 and its companions: a class's weights along the unit axis, every class's, class similarity."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas
from .units import QUALITATIVE_MAX, layer_scale, plot_unit_axis

SCORE_LABELS = {"weight": "head weight", "importance": "importance (weight x code std)"}


def weights_figure(frame: pd.DataFrame, title: str, into: FigureBase | Axes | None = None) -> FigureBase:
    """Figure 3: one class's weights (or importance, when the frame has it) along the unit axis, coloured by layer."""
    fig = canvas(into, figsize=(9, 3.2), layout="constrained")
    ax = fig.subplots()
    column = "importance" if "importance" in frame.columns else "weight"
    plot_unit_axis(ax, frame, frame[column].to_numpy())
    ax.set_xlabel("unit (early layers left, late layers right)")
    ax.set_ylabel(SCORE_LABELS[column])
    ax.set_title(title)
    return fig


def weights_grid(weight: np.ndarray, units: pd.DataFrame, classes: list[str], title: str,
                 score: str = "weight", into: FigureBase | Axes | None = None) -> FigureBase:
    """Every class's weights (or the `score` they stand for) along the unit axis, one panel per class, shared axes."""
    n = len(classes)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = canvas(into, figsize=(3.6 * cols, 2.2 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    for c, (ax, name) in enumerate(zip(axes, classes)):
        plot_unit_axis(ax, units, weight[c], legend=False)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    layers = int(units["layer"].max()) + 1
    if layers <= QUALITATIVE_MAX:
        fig.legend(*axes[0].get_legend_handles_labels(), title="layer", loc="outside right upper", fontsize=7)
    else:
        fig.colorbar(layer_scale(layers), ax=axes.tolist(), label="layer (early -> late)")
    fig.supxlabel("unit (early layers left, late layers right)")
    fig.supylabel(SCORE_LABELS[score])
    fig.suptitle(title)
    return fig


def similarity_figure(similarity: pd.DataFrame, title: str, into: FigureBase | Axes | None = None) -> FigureBase:
    """A heat map of the class similarity table (cosine, -1 .. 1)."""
    values = similarity.drop(columns="class").to_numpy(dtype=float)
    names = list(similarity["class"])
    n = len(names)
    fig = canvas(into, figsize=(1.6 + 0.45 * n, 1.2 + 0.45 * n), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(values[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="cosine similarity")
    ax.set_title(title)
    return fig


def kept_figure(kept: pd.DataFrame, title: str, into: FigureBase | Axes | None = None) -> FigureBase:
    """A sparse head's units of one class (weights.kept_units): one bar per unit, labelled with its layer, concept
    (once dissected) and group size; positive weights up top, negative below."""
    n = len(kept)
    fig = canvas(into, figsize=(7.0, 1.0 + 0.32 * max(n, 1)), layout="constrained")
    ax = fig.subplots()
    if n == 0:
        ax.text(0.5, 0.5, "no unit: this class is decided by its bias alone", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        return fig
    layer = kept["label"] if "label" in kept.columns else kept["node"]
    concept = kept["concept"].fillna("") if "concept" in kept.columns else pd.Series([""] * n, index=kept.index)
    size = kept["group_size"] if "group_size" in kept.columns else pd.Series([1] * n, index=kept.index)
    labels = [f"unit {u} · {lay}" + (f" · {c}" if c else "") + (f" · group of {s}" if s > 1 else "")
              for u, lay, c, s in zip(kept["unit"], layer, concept, size)]
    weight = kept["weight"].to_numpy(dtype=float)
    rows = np.arange(n)
    ax.barh(rows, weight, color=np.where(weight > 0, "#b2182b", "#2166ac"))
    ax.set_yticks(rows, labels, fontsize=8)
    ax.invert_yaxis()  # the listing's order: largest positive weight first
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel("head weight (raw codes)")
    ax.set_title(title, fontsize=10)
    return fig
