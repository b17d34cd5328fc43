"""One decision drawn: the input, its strongest unit contributions, and the contribution per layer."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor

from ..analysis.head import DEFAULT_TOP, extremes
from .units import layer_colours, layer_labels


def _show_input(ax, x: Tensor) -> None:
    """An image (first view of multi-view inputs) or a spectrogram."""
    image = x[0] if x.dim() == 4 else x
    if image.shape[0] == 3:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    else:
        ax.imshow(image[0].numpy(), origin="lower", aspect="auto", cmap="magma")
    ax.set_axis_off()


def explain_figure(summary: dict, units: pd.DataFrame, layers: pd.DataFrame, x: Tensor, top: int = DEFAULT_TOP) -> Figure:
    """The input, its `top` most positive and negative unit contributions, and the contribution per layer."""
    s = summary
    colours = layer_colours(int(units["layer"].max()) + 1)
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    ax_in, ax_units, ax_layers = fig.subplots(1, 3, width_ratios=[1, 1.6, 1.4])
    _show_input(ax_in, x)
    true = f"true {s['true']}, " if s["true"] is not None else ""
    ax_in.set_title(f"{true}predicted {s['predicted']} ({s['probability']:.0%})", fontsize=9)

    shown = extremes(units, "contribution", top).iloc[::-1]
    labels = [f"u{u} ({node}:{ch})" for u, node, ch in zip(shown["unit"], shown["node"], shown["channel"])]
    ax_units.barh(range(len(shown)), shown["contribution"], color=[colours[layer] for layer in shown["layer"]])
    ax_units.set_yticks(range(len(shown)), labels, fontsize=7)
    ax_units.axvline(0, color="black", linewidth=0.6)
    ax_units.tick_params(axis="x", labelsize=7)
    ax_units.set_xlabel("contribution W[c,u]·z_u")
    ax_units.set_title(f"units, class {s['class']}", fontsize=9)

    ax_layers.bar(range(len(layers)), layers["contribution"], color=[colours[layer] for layer in layers["layer"]])
    ax_layers.set_xticks(range(len(layers)), layer_labels(layers), rotation=45, ha="right", fontsize=7)
    ax_layers.axhline(0, color="black", linewidth=0.6)
    ax_layers.set_ylabel("summed contribution")
    ax_layers.set_title(f"per layer: logit {s['logit']:.3g} = sum {s['contributions']:.3g} + bias {s['bias']:.3g}",
                        fontsize=9)
    fig.suptitle(s["source"], fontsize=10)
    return fig
