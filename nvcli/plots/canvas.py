"""Where a figure is drawn: a new matplotlib Figure, or a sub-figure in the place of the caller's axes."""
from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure, FigureBase

from ..errors import NvError


def canvas(into: FigureBase | None, **figure: Any) -> FigureBase:
    """`into` when given (a sub-figure to draw in), else a new Figure made with `figure` (figsize, layout)."""
    return Figure(**figure) if into is None else into


def in_place_of(ax: Axes) -> FigureBase:
    """A sub-figure that takes the grid cell of `ax` (removed), so a many-panel figure can be drawn where the caller
    asked for one axes."""
    spec = ax.get_subplotspec()
    if spec is None:
        raise NvError("ax must be a grid cell (from plt.subplots or fig.add_subplot) to draw a figure in its place",
                      param="ax")
    parent = ax.figure
    ax.remove()
    return parent.add_subfigure(spec)
