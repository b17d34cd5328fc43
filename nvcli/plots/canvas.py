"""Where a figure is drawn: a new matplotlib Figure, a sub-figure, or in the place of the caller's axes."""
from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure, FigureBase

from ..errors import NvError


def canvas(into: FigureBase | Axes | None, **figure: Any) -> FigureBase:
    """A new Figure made with `figure` (figsize, layout) when `into` is None; `into` itself when it is a (sub-)figure;
    for an axes, a sub-figure that takes its grid cell (the axes removed), so a figure of many panels can be drawn
    where the caller asked for one."""
    if into is None:
        return Figure(**figure)
    if not isinstance(into, Axes):
        return into
    spec = into.get_subplotspec()
    if spec is None:
        raise NvError("ax must be a grid cell (from plt.subplots or fig.add_subplot) to draw a figure in its place",
                      param="ax")
    parent = into.figure
    into.remove()
    return parent.add_subfigure(spec)
