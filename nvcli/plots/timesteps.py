"""NeuroView-RNN's figure: the share of each class's weight mass at each time step, one heat map per layer."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas


def time_figure(frame: pd.DataFrame, title: str, into: FigureBase | Axes | None = None) -> FigureBase:
    """Rows: classes; columns: time steps; colour: the share of the class's |weight| at that step (weights_time.csv),
    one panel per layer with every layer's panel on one colour scale, and a line per class of the layers' sum."""
    classes = list(dict.fromkeys(frame["class"]))
    layers = list(dict.fromkeys(zip(frame["layer"], frame["label"])))
    steps = int(frame["step"].max()) + 1
    fig = canvas(into, figsize=(9, 1.2 + 0.35 * len(classes) * len(layers) + 2.2), layout="constrained")
    axes = fig.subplots(len(layers) + 1, 1, sharex=True,
                        gridspec_kw={"height_ratios": [max(1, len(classes) * 0.35)] * len(layers) + [2.2]})
    axes = np.atleast_1d(axes)
    grids = [frame[frame["layer"] == layer].pivot(index="class", columns="step", values="share").loc[classes]
             for layer, _ in layers]
    top = max(float(g.to_numpy().max()) for g in grids) or 1.0
    for ax, grid, (_, label) in zip(axes, grids, layers):
        image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_ylabel(label, fontsize=9)
    fig.colorbar(image, ax=axes[:-1].tolist(), label="share of the class's |weight|", shrink=0.9)
    total = frame.groupby(["class", "step"], sort=False)["share"].sum()
    for name in classes:
        axes[-1].plot(np.arange(steps), total.loc[name].reindex(range(steps)).to_numpy(), label=name, linewidth=1.2)
    axes[-1].set_ylabel("share (all layers)", fontsize=9)
    axes[-1].set_xlabel("time step")
    axes[-1].legend(fontsize=7, ncols=min(len(classes), 5), loc="upper left")
    fig.suptitle(title)
    return fig
