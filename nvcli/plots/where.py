"""Where maps drawn: per view, the input, the summed map over it, and each layer's map, on one symmetric scale."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas

if TYPE_CHECKING:
    from torch import Tensor

CMAP = "RdBu_r"  # red raises the logit, blue lowers it
LAYER_COLUMNS = 6
PANEL = 1.7  # inches per map


def _backdrop(x: np.ndarray) -> np.ndarray:
    """An input [C, H, W] as a grey image [H, W] in [0, 1] to draw a map over (RGB by luminance)."""
    grey = x.mean(axis=0) if x.shape[0] == 3 else x[0]
    low, high = float(grey.min()), float(grey.max())
    return (grey - low) / (high - low) if high > low else np.zeros_like(grey)


def where_figure(maps: np.ndarray, x: "Tensor", layers: list[str], title: str, origin: str = "upper",
                 into: FigureBase | Axes | None = None) -> FigureBase:
    """Per view (a block of rows): the input, the summed map over it and each layer's map (`maps`
    [(views,) layers, H, W], `x` [(views,) C, H, W]); `origin` 'lower' draws spectrograms low frequencies down."""
    maps = maps if maps.ndim == 4 else maps[None]
    inputs = x.numpy() if x.dim() == 4 else x.numpy()[None]
    summed = maps.sum(axis=1)
    limit = float(max(np.abs(maps).max(), np.abs(summed).max())) or 1.0
    cols = min(len(layers), LAYER_COLUMNS)
    rows = math.ceil(len(layers) / cols)
    fig = canvas(into, figsize=(PANEL * (cols + 2) + 1.2, PANEL * rows * len(maps) + 0.6), layout="constrained")
    grid = fig.subplots(rows * len(maps), cols + 2, squeeze=False)
    aspect = "auto" if origin == "lower" else "equal"  # spectrogram bands and frames are not square pixels
    shown = dict(cmap=CMAP, vmin=-limit, vmax=limit, origin=origin, aspect=aspect)
    for ax in grid.ravel():
        ax.set_axis_off()
    for v, (stack, total, image) in enumerate(zip(maps, summed, inputs)):
        block = grid[v * rows:(v + 1) * rows]
        ax_in, ax_sum = block[0, 0], block[0, 1]
        if image.shape[0] == 3:
            ax_in.imshow(image.transpose(1, 2, 0).clip(0, 1), aspect=aspect)
        else:
            ax_in.imshow(image[0], cmap="magma", origin=origin, aspect=aspect)
        ax_sum.imshow(_backdrop(image), cmap="gray", origin=origin, aspect=aspect)
        mapped = ax_sum.imshow(total, alpha=0.7, **shown)
        ax_in.set_title(f"view {v}" if len(maps) > 1 else "input", fontsize=8)
        ax_sum.set_title(f"all layers: {total.sum():.3g}", fontsize=8)
        for ax, name, layer in zip(block[:, 2:].ravel(), layers, stack):
            ax.imshow(layer, **shown)
            ax.set_title(f"{name}: {layer.sum():.3g}", fontsize=7)
    fig.colorbar(mapped, ax=grid.ravel().tolist(), shrink=0.8, label="logit − bias per pixel")
    fig.suptitle(title, fontsize=9)
    return fig
