"""One decision drawn: the input, its strongest unit contributions, and the contribution per layer."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase, SubFigure

from .canvas import canvas
from .units import layer_colours, layer_labels, layer_names

if TYPE_CHECKING:
    from torch import Tensor

    from ..data.sound.spectrogram import SpecParams

_FLOOR_TOLERANCE = 1e-3  # dB: a spectrogram column this close to the clip's floor everywhere is silence


def _show_views(sub: SubFigure, views: "Tensor") -> None:
    """Every view of a multi-view input, in a grid, each named."""
    cols = math.ceil(math.sqrt(len(views)))
    rows = math.ceil(len(views) / cols)
    axes = np.atleast_1d(sub.subplots(rows, cols, squeeze=False)).ravel()
    for v, ax in enumerate(axes):
        ax.set_axis_off()
        if v < len(views):
            ax.imshow(views[v].permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_title(f"view {v}", fontsize=7, pad=2)


def _sound_frames(values: np.ndarray) -> int:
    """Columns up to the last one that is not silent: zero padding at the end is at the clip's dB floor."""
    loud = np.flatnonzero(values.max(axis=0) > values.min() + _FLOOR_TOLERANCE)
    return int(loud[-1]) + 1 if len(loud) else values.shape[1]


def _show_spectrogram(sub: SubFigure, values: np.ndarray, params: SpecParams | None) -> str:
    """A log-mel spectrogram with time (s) and frequency (kHz) axes and a dB colour bar; trailing silence cut.

    Returns a note on what was cut ('' if nothing).
    """
    ax = sub.subplots()
    if params is None:
        image = ax.imshow(values, origin="lower", aspect="auto", cmap="magma")
        ax.set_xlabel("frame")
        ax.set_ylabel("band")
        sub.colorbar(image, ax=ax, label="value")
        return ""
    from ..data.sound.spectrogram import mel_frequencies

    seconds_per_column = params.duration / values.shape[1]
    kept = _sound_frames(values)
    shown = values[:, :kept]
    image = ax.imshow(shown, origin="lower", aspect="auto", cmap="magma",
                      extent=(0, kept * seconds_per_column, -0.5, values.shape[0] - 0.5))
    centres = mel_frequencies(params).numpy()
    rows = np.linspace(0, values.shape[0] - 1, 5).round().astype(int)
    band = (len(centres) - 1) / max(values.shape[0] - 1, 1)  # rows are mel bands (or resized ones)
    ax.set_yticks(rows, [f"{centres[round(r * band)] / 1000:.1f}" for r in rows])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band centre (kHz)")
    sub.colorbar(image, ax=ax, label="dB", fraction=0.08, pad=0.02)
    if kept < values.shape[1]:
        return f"silence after {kept * seconds_per_column:.2f} s (padding to {params.duration:g} s) not shown"
    return ""


def _show_sequence(sub: SubFigure, x: "Tensor", per_step: pd.DataFrame) -> str:
    """A sequence [C, 1, T] as lines, over bars of its contribution per time step (recurrent runs)."""
    ax = sub.subplots()
    twin = ax.twinx()
    twin.bar(per_step["step"], per_step["contribution"], color=np.where(per_step["contribution"] > 0, "#b2182b",
                                                                        "#2166ac"), alpha=0.35)
    twin.set_ylabel("contribution per step", fontsize=8)
    for channel in x[:, 0, :].numpy():
        ax.plot(np.arange(len(channel)), channel, color="black", linewidth=1.0)
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlabel("time step")
    ax.set_ylabel("value")
    return ""


def _show_input(sub: SubFigure, x: "Tensor", spectrogram: SpecParams | None,
                steps: pd.DataFrame | None = None) -> str:
    """Draw the input: every view of multi-view inputs, an RGB image, a sequence or a spectrogram; returns a note."""
    if steps is not None and x.dim() == 3 and x.shape[1] == 1:
        return _show_sequence(sub, x, steps)
    if x.dim() == 4:
        _show_views(sub, x)
        return f"{len(x)} views"
    if x.shape[0] == 3:
        ax = sub.subplots()
        ax.imshow(x.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_axis_off()
        return ""
    return _show_spectrogram(sub, x[0].numpy(), spectrogram)


def unit_names(units: pd.DataFrame) -> list[str]:
    """'u<unit> [v<view> ]<layer>[@t<step>]:<channel>' for each row of a per-unit table."""
    views = units["view"] if "view" in units.columns else [None] * len(units)
    steps = units["step"] if "step" in units.columns else [None] * len(units)
    return [f"u{u} {'' if v is None else f'v{v} '}{name}{'' if t is None else f'@t{t}'}:{ch}"
            for u, v, name, t, ch in zip(units["unit"], views, layer_names(units), steps, units["channel"])]


def _layer_bars(ax, layers: pd.DataFrame, colours: list) -> None:
    ax.bar(range(len(layers)), layers["contribution"], color=[colours[layer] for layer in layers["layer"]])
    ax.set_xticks(range(len(layers)), layer_labels(layers), rotation=45, ha="right", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("summed contribution")


def _view_layer_map(sub: SubFigure, ax, layers: pd.DataFrame) -> None:
    """Multi-view runs: the summed contribution of each (view, layer) as a heat map, views as rows."""
    grid = layers.pivot(index="view", columns="layer", values="contribution")
    names = dict(zip(layers["layer"], layer_names(layers)))
    limit = float(np.abs(grid.to_numpy()).max()) or 1.0
    image = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [names[c] for c in grid.columns], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(grid.shape[0]), [f"view {v}" for v in grid.index], fontsize=7)
    if grid.size <= 80:
        for (i, j), value in np.ndenumerate(grid.to_numpy()):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if abs(value) > 0.6 * limit else "black")
    sub.colorbar(image, ax=ax, label="summed contribution", fraction=0.08, pad=0.02)


def explain_figure(summary: Any, strongest: pd.DataFrame, layers: pd.DataFrame, x: "Tensor", top: int,
                   spectrogram: SpecParams | None = None, steps: pd.DataFrame | None = None,
                   into: FigureBase | Axes | None = None) -> FigureBase:
    """The input, its `top` most positive and negative unit contributions (`strongest`, rows of the per-unit table),
    titled from `summary` (an explanation's: source, true, predicted, probability, class_, logit, bias, ...),
    and the contribution per layer (per view and layer in multi-view runs); `spectrogram` (the run's sound settings)
    gives sound inputs axes, `steps` (a sequence's contribution per time step) draws under a sequence."""
    s = summary
    colours = layer_colours(int(layers["layer"].max()) + 1)
    fig = canvas(into, figsize=(14, 4.4), layout="constrained")
    sub_in, sub_units, sub_layers = fig.subfigures(1, 3, width_ratios=[1.2, 1.5, 1.4])
    note = _show_input(sub_in, x, spectrogram, steps)
    true = f"true {s.true}, " if s.true is not None else ""
    sub_in.suptitle(f"{true}predicted {s.predicted} ({s.probability:.0%})" + (f"\n{note}" if note else ""),
                    fontsize=9)

    ax_units = sub_units.subplots()
    shown = strongest.iloc[::-1]
    ax_units.barh(range(len(shown)), shown["contribution"], color=[colours[layer] for layer in shown["layer"]])
    ax_units.set_yticks(range(len(shown)), unit_names(shown), fontsize=7)
    ax_units.axvline(0, color="black", linewidth=0.6)
    ax_units.tick_params(axis="x", labelsize=7)
    relative = s.relative
    ax_units.set_xlabel("contribution W[c,u]·(z_u − mean z_u)" if relative else "contribution W[c,u]·z_u")
    ax_units.set_title(f"top {top} units up and down, class {s.class_}", fontsize=9)

    ax_layers = sub_layers.subplots()
    if "view" in layers.columns:
        _view_layer_map(sub_layers, ax_layers, layers)
    else:
        _layer_bars(ax_layers, layers, colours)
    ax_layers.set_title(f"per {'view and ' if 'view' in layers.columns else ''}layer: logit {s.logit:.3g} = "
                        f"sum {s.contributions:.3g} + bias {s.bias:.3g}", fontsize=9)
    fig.suptitle(s.source, fontsize=10)
    return fig
