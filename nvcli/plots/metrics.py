"""Training curves: loss and accuracy per epoch, on the training and the validation split."""
from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas

_SPLITS = (("train", "#4c72b0", "training (mean over the epoch's batches)"),
           ("val", "#dd8452", "validation (after the epoch)"))


def metrics_figure(metrics: pd.DataFrame, title: str, into: FigureBase | Axes | None = None) -> FigureBase:
    """Two panels, loss and accuracy against epoch, one line per split (metrics.csv's columns)."""
    fig = canvas(into, figsize=(9, 3.4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = metrics["epoch"]
    marker = "o" if len(metrics) <= 30 else None
    for split, colour, label in _SPLITS:
        loss_ax.plot(epochs, metrics[f"{split}_loss"], color=colour, marker=marker, markersize=3, label=label)
        acc_ax.plot(epochs, metrics[f"{split}_acc"], color=colour, marker=marker, markersize=3, label=label)
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(0, 1.02)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(metrics):
            ax.set_xlim(0.5, float(epochs.max()) + 0.5)
            ax.xaxis.get_major_locator().set_params(integer=True)
    acc_ax.legend(fontsize=8, frameon=False, loc="lower right")
    if len(metrics):
        last = metrics.iloc[-1]
        title += (f" (epoch {int(last['epoch'])}: validation accuracy {last['val_acc']:.1%}, "
                  f"loss {last['val_loss']:.3g})")
    fig.suptitle(title, fontsize=10)
    return fig
