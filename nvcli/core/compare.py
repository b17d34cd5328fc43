"""Two NeuroView runs of one architecture side by side (paper case studies 2 and 3, Figure 3 c-d):
their accuracy, and how each head spreads its positive and negative weight over the layers.

Shares (not raw sums) are compared, so two heads trained to different weight scales stay comparable;
the runs may have different classes (e.g. trained on different datasets), the units must be the same.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .engine import ProgressFn
from .errors import NvError
from .evaluate import evaluate, network_label
from .runs import Run
from .weights import DEFAULT_TOP, OVERALL, layer_keys, layer_labels, layer_summary, read_head

log = logging.getLogger("nvcli")

SIDES = ("a", "b")
ACCURACY_COLUMNS = ["side", "run", "network", "dataset", "classes", "accuracy", "source"]
SHARES = ["pos_share", "neg_share", "top_share"]
_SIDE_COLOURS = {"a": "#4c72b0", "b": "#dd8452"}


@dataclass
class Comparison:
    """Run A against run B: accuracy, per-layer weight statistics (long), and the overall shares (wide)."""

    accuracy: pd.DataFrame  # ACCURACY_COLUMNS, one row per side
    layers: pd.DataFrame  # side, run, class, [view,] layer, node, LAYER_STATS
    overall: pd.DataFrame  # [view,] layer, node, units, pos_share_a, pos_share_b, ..., top_share_b
    names: dict[str, str]  # side -> run name


def _structure(run: Run) -> list[tuple]:
    units = run.units()
    return [(*key, len(part)) for key, part in units.groupby(layer_keys(units), sort=False)]


def check_comparable(a: Run, b: Run) -> None:
    """Refuse baseline runs and runs whose architectures or unit tables differ."""
    a.require_neuroview("compare")
    b.require_neuroview("compare")
    if a.spec.arch != b.spec.arch or a.spec.views != b.spec.views:
        raise NvError(f"cannot compare different architectures: '{a.name}' is {network_label(a)}, '{b.name}' is "
                      f"{network_label(b)}; nv compare needs two runs of the same architecture")
    sa, sb = _structure(a), _structure(b)
    if sa != sb:
        raise NvError(f"cannot compare runs with different units: '{a.name}' has {sum(s[-1] for s in sa)} units in "
                      f"{len(sa)} layers, '{b.name}' has {sum(s[-1] for s in sb)} in {len(sb)}")


def run_accuracy(run: Run, *, device: str = "auto", batch_size: int = 128, workers: int = 0,
                 progress: ProgressFn | None = None) -> tuple[float, str]:
    """The run's validation accuracy and where it came from: its eval.csv, or computed now."""
    path = run.dir / "eval.csv"
    if path.is_file():
        saved = pd.read_csv(path)
        if "accuracy" in saved.columns and len(saved):
            return float(saved["accuracy"].iloc[0]), "eval.csv"
    log.info("no eval.csv in '%s'; evaluating", run.dir)
    result = evaluate(run, device=device, batch_size=batch_size, workers=workers, progress=progress)
    return float(result.summary["accuracy"]), "computed"


def compare(a: Run, b: Run, *, top: int = DEFAULT_TOP, device: str = "auto", batch_size: int = 128,
            workers: int = 0, progress: ProgressFn | None = None) -> Comparison:
    """Compare run `a` with run `b` (same architecture and units)."""
    check_comparable(a, b)
    accuracy, layers = [], []
    for side, run in zip(SIDES, (a, b)):
        acc, source = run_accuracy(run, device=device, batch_size=batch_size, workers=workers, progress=progress)
        accuracy.append({"side": side, "run": run.name, "network": network_label(run),
                         "dataset": run.config["data"]["name"], "classes": len(run.classes), "accuracy": acc,
                         "source": source})
        summary = layer_summary(read_head(run, "compare"), top)
        summary.insert(0, "run", run.name)
        summary.insert(0, "side", side)
        layers.append(summary)
    layers_frame = pd.concat(layers, ignore_index=True)
    keys = layer_keys(layers_frame)
    overall = layers_frame[layers_frame["class"] == OVERALL]
    wide = overall[overall["side"] == "a"][[*keys, "units"]].reset_index(drop=True)
    for share in SHARES:
        for side in SIDES:
            wide[f"{share}_{side}"] = overall.loc[overall["side"] == side, share].to_numpy()
    return Comparison(pd.DataFrame(accuracy, columns=ACCURACY_COLUMNS), layers_frame, wide,
                      {"a": a.name, "b": b.name})


def output_dir(out: str | Path | None, a: Run, b: Run) -> Path:
    """The directory `nv compare A B` writes into (default A/compare_<B's name>/), created if needed."""
    path = Path(out) if out is not None else a.dir / f"compare_{b.name}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NvError(f"cannot create output directory '{path}': {exc.strerror}") from exc
    return path


def compare_figure(comparison: Comparison) -> Figure:
    """Per layer, the share of all positive (top) and negative (bottom) head weight in run A and run B."""
    wide = comparison.overall
    x = np.arange(len(wide))
    fig = Figure(figsize=(max(6.0, 0.7 * len(wide) + 2), 5.2), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, share, what in zip(axes, ("pos_share", "neg_share"), ("positive", "negative")):
        for i, side in enumerate(SIDES):
            ax.bar(x + (i - 0.5) * 0.4, wide[f"{share}_{side}"], 0.4, color=_SIDE_COLOURS[side],
                   label=f"{side.upper()}: {comparison.names[side]}")
        ax.set_ylabel(f"share of {what} weight")
        ax.set_ylim(0, max(1e-9, float(wide[[f"{share}_a", f"{share}_b"]].to_numpy().max())) * 1.15)
    axes[0].legend(fontsize=8, frameon=False)
    axes[1].set_xticks(x, layer_labels(wide), rotation=45, ha="right", fontsize=7)
    axes[1].set_xlabel("layer (early -> late)")
    fig.suptitle(f"Where the heads put their weight: {comparison.names['a']} vs {comparison.names['b']} "
                 "(all classes pooled)", fontsize=10)
    return fig

