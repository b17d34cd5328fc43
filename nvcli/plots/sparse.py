"""The sparse head's path: accuracy against the units each class uses (log scale), the dense head as reference."""
from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .canvas import canvas


def path_figure(frame: pd.DataFrame, dense_acc: float, title: str = "",
                into: FigureBase | Axes | None = None) -> FigureBase:
    """Validation (and training) accuracy against mean units per class along the path (sparse_path.csv)."""
    # The first step (lambda_max) has no units: it cannot sit on a log axis, and it only predicts the majority class.
    drawn = frame[frame["units_per_class_mean"] > 0]
    fig = canvas(into, figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.axhline(dense_acc, color="0.3", linestyle="--", linewidth=1, label=f"dense head ({dense_acc:.3f})")
    ax.plot(drawn["units_per_class_mean"], drawn["train_acc"], color="#9ecae1", marker=".", linewidth=1,
            label="sparse head, training")
    ax.plot(drawn["units_per_class_mean"], drawn["val_acc"], color="#08519c", marker="o", markersize=3,
            label="sparse head, validation")
    ax.set_xscale("log")
    narrow = len(drawn) > 0 and drawn["units_per_class_mean"].max() < 20 * drawn["units_per_class_mean"].min()
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 1.5, 2, 3, 5, 7) if narrow else (1, 2, 5)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("units per class (mean over classes)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    return fig
