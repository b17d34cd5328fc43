"""The unit axis shared by every per-unit figure: one colour per layer, early layers left."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from ..models.unit_table import layer_groups

QUALITATIVE_MAX = 20  # up to this many layers: distinct colours and a legend; beyond: a gradient and a colour bar


def layer_colours(n: int) -> list[tuple[float, float, float, float]]:
    """`n` distinct colours for layers 0..n-1 (qualitative up to 20 layers, an early -> late gradient beyond)."""
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= QUALITATIVE_MAX:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]


def layer_scale(n: int) -> ScalarMappable:
    """The gradient of `layer_colours` for more than 20 layers, for a colour bar."""
    return ScalarMappable(Normalize(0, n - 1), colormaps["viridis"])


def layer_names(frame: pd.DataFrame) -> list[str]:
    """Each row's layer as a reader knows it: its `label` (conv3, layer2.1 conv1), or `node` in older runs."""
    column = "label" if "label" in frame.columns else "node"
    return [str(name) for name in frame[column]]


def layer_labels(frame: pd.DataFrame) -> list[str]:
    """The layer name of each row of a per-layer table, prefixed 'v<view> ' in multi-view runs."""
    views = frame["view"] if "view" in frame.columns else [None] * len(frame)
    return [("" if v is None else f"v{v} ") + name for v, name in zip(views, layer_names(frame))]


def plot_unit_axis(ax: Axes, units: pd.DataFrame, values: np.ndarray, legend: bool = True) -> None:
    """`values` per unit as vertical lines along the unit axis, one colour per layer, layer boundaries dashed.

    The legend (or, beyond 20 layers, a colour bar) sits outside the axes, right of them, so no unit is hidden.
    """
    colours = layer_colours(int(units["layer"].max()) + 1)
    names = layer_names(units)
    labelled: set[int] = set()
    for key, idx in layer_groups(units):
        layer = int(key["layer"])
        x = units["unit"].to_numpy()[idx]
        ax.vlines(x, 0, values[idx], colors=[colours[layer]], linewidth=1.0,
                  label=None if layer in labelled else names[idx[0]])
        labelled.add(layer)
        if x[0] > 0:
            ax.axvline(x[0] - 0.5, color="0.6", linewidth=0.6, linestyle="--")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlim(-0.5, len(units) - 0.5)
    if legend and len(colours) <= QUALITATIVE_MAX:
        ax.legend(title="layer", fontsize=7, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False)
    elif legend:
        ax.figure.colorbar(layer_scale(len(colours)), ax=ax, label="layer (early -> late)", pad=0.01)
