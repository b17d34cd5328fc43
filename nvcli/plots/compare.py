"""How two heads spread their weight over the layers (case studies 2 and 3, Figure 3 c-d)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas
from .units import layer_labels

_SIDE_COLOURS = {"a": "#4c72b0", "b": "#dd8452"}
SIDES = ("a", "b")


def compare_figure(wide: pd.DataFrame, names: dict[str, str], accuracy: dict[str, float] | None = None,
                   score: str = "weight", into: FigureBase | Axes | None = None) -> FigureBase:
    """Per layer, the share of all positive (top) and negative (bottom) head weight in run A and run B, against
    the layer's share of the units (a head that ignored layers would give each layer that share)."""
    accuracy = accuracy or {}
    x = np.arange(len(wide))
    unit_share = wide["units"].to_numpy(dtype=float) / float(wide["units"].sum())
    fig = canvas(into, figsize=(max(6.0, 0.7 * len(wide) + 2), 5.6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, share, what in zip(axes, ("pos_share", "neg_share"), ("positive", "negative")):
        for i, side in enumerate(SIDES):
            acc = f" ({accuracy[side]:.1%})" if side in accuracy else ""
            ax.bar(x + (i - 0.5) * 0.4, wide[f"{share}_{side}"], 0.4, color=_SIDE_COLOURS[side],
                   label=f"{side.upper()}: {names[side]}{acc}")
        ax.hlines(unit_share, x - 0.45, x + 0.45, colors="black", linewidth=1.2, label="share of the units")
        ax.set_ylabel(f"share of {what} {score}")
        top = max(1e-9, float(wide[[f"{share}_a", f"{share}_b"]].to_numpy().max()), float(unit_share.max()))
        ax.set_ylim(0, top * 1.15)
    axes[0].legend(fontsize=8, frameon=False)
    axes[1].set_xticks(x, layer_labels(wide), rotation=45, ha="right", fontsize=7)
    axes[1].set_xlabel("layer (early -> late)")
    runs = " vs ".join(f"{names[side]}" + (f" ({accuracy[side]:.1%} val. accuracy)" if side in accuracy else "")
                       for side in SIDES)
    fig.suptitle(f"Where the heads put their {score} (all classes pooled): {runs}", fontsize=10)
    return fig
