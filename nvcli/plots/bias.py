"""Shape bias: per kind of conflict and shape class, the share of cue-conflict decisions that follow each cue."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas

_CUES = {"shape": "#4c72b0", "texture": "#dd8452", "colour": "#c44e52", "other": "0.6"}
_KINDS = {"style": "texture and colour of one other class", "split": "texture and colour of two other classes"}


def bias_figure(frame: pd.DataFrame, title: str, into: FigureBase | Axes | None = None) -> FigureBase:
    """One panel per kind of conflict: per shape class and overall, the shares of decisions following the shape, the
    texture, the colour and none; the shape bias (shape / (shape + texture)) is written above each group."""
    kinds = list(dict.fromkeys(frame["kind"]))
    fig = canvas(into, figsize=(max(6.0, 0.9 * frame["class"].nunique() + 3), 3.2 * len(kinds) + 0.6),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(kinds), 1, squeeze=False)[:, 0])
    for ax, kind in zip(axes, kinds):
        part = frame[frame["kind"] == kind]
        x = np.arange(len(part))
        for i, (cue, colour) in enumerate(_CUES.items()):
            ax.bar(x + (i - 1.5) * 0.2, part[cue].to_numpy(float), 0.2, color=colour, label=cue)
        # A saved bias.csv reads an undefined bias as an empty cell.
        for i, bias in enumerate(pd.to_numeric(part["shape_bias"], errors="coerce").to_numpy(float)):
            ax.text(i, 1.03, "bias -" if np.isnan(bias) else f"bias {bias:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, [str(c) for c in part["class"]], fontsize=8)
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("share of decisions")
        ax.set_title(f"{kind}: the shape of one class, the {_KINDS.get(kind, kind)}", fontsize=9)
    axes[0].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[-1].set_xlabel("class of the shape")
    fig.suptitle(title, fontsize=10)
    return fig
