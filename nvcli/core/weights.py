"""Reading a NeuroView head (paper section 3.5, Figure 3): each class's weights along the unit axis,
per-layer summaries, class similarity, and the unit-axis plotting shared by weights, explain and compare.

The unit axis runs early layers first (units.csv order; view-major for multi-view runs). Weights are
handed out as float64 copies of the float32 parameters, so CSVs round-trip the exact stored values.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
import torch
from torch import nn

from .errors import NvError, choice_error
from .runs import Run

DEFAULT_TOP = 10
OVERALL = "overall"  # the `class` value of rows that pool every class
UNIT_COLUMNS = ["unit", "view", "layer", "node", "channel"]  # `view` only in multi-view runs
LAYER_STATS = ["units", "pos_weight", "neg_weight", "mean_weight", "pos_share", "neg_share", "top_share"]
_QUALITATIVE_MAX = 20  # up to this many layers: distinct colours and a legend; beyond: a gradient and a colour bar


@dataclass
class Head:
    """A NeuroView run's linear classifier `logits = weight @ z + bias` with its unit table and class names."""

    weight: np.ndarray  # [classes, units], float64 copies of the float32 parameters
    bias: np.ndarray  # [classes]
    units: pd.DataFrame  # units.csv: unit, [view,] layer, node, channel
    classes: list[str]

    @classmethod
    def from_model(cls, model: nn.Module, units: pd.DataFrame, classes: list[str]) -> "Head":
        """The head of a NeuroView model, checked against its unit table and class list."""
        return cls.from_tensors(model.head.weight, model.head.bias, units, classes)

    @classmethod
    def from_tensors(cls, weight: torch.Tensor, bias: torch.Tensor, units: pd.DataFrame, classes: list[str]) -> "Head":
        """A head from its weight [classes, units] and bias, checked against the unit table and class list."""
        weight = weight.detach().cpu().double().numpy()
        bias = bias.detach().cpu().double().numpy()
        if len(units) != weight.shape[1] or not np.array_equal(units["unit"].to_numpy(), np.arange(len(units))):
            raise NvError(f"units.csv lists {len(units)} units (expected 0..{weight.shape[1] - 1} in order) but the "
                          f"head has {weight.shape[1]} inputs; the run directory is inconsistent")
        if len(classes) != weight.shape[0]:
            raise NvError(f"{len(classes)} class names for a head with {weight.shape[0]} outputs")
        return cls(weight, bias, units.reset_index(drop=True), list(classes))

    def class_index(self, name: str) -> int:
        """The row of class `name`; an unknown name lists the valid ones and suggests the closest."""
        if name not in self.classes:
            raise choice_error("class", name, self.classes)
        return self.classes.index(name)

    @property
    def unit_columns(self) -> list[str]:
        """The unit-table columns present in this run."""
        return [c for c in UNIT_COLUMNS if c in self.units.columns]


def read_head(run: Run, command: str) -> Head:
    """The head of a NeuroView run (a baseline run is refused, naming `command`)."""
    run.require_neuroview(command)
    state = run.state()
    if "head.weight" not in state or "head.bias" not in state:
        raise NvError(f"'{run.dir / 'model.pt'}' has no head.weight/head.bias; it is not a NeuroView model")
    return Head.from_tensors(state["head.weight"], state["head.bias"], run.units(), run.classes)


def layer_keys(units: pd.DataFrame) -> list[str]:
    """The columns that identify a layer: (view, layer, node) or (layer, node)."""
    return [c for c in ("view", "layer", "node") if c in units.columns]


def ranks(values: np.ndarray) -> np.ndarray:
    """1 for the largest value, 2 for the next, ...; ties keep unit order."""
    order = np.argsort(-values, kind="stable")
    out = np.empty(len(values), dtype=np.int64)
    out[order] = np.arange(1, len(values) + 1)
    return out


def class_weights(head: Head, name: str) -> pd.DataFrame:
    """`unit,[view,]layer,node,channel,weight,rank` of one class (rank 1 = largest weight)."""
    w = head.weight[head.class_index(name)]
    frame = head.units[head.unit_columns].copy()
    frame["weight"] = w
    frame["rank"] = ranks(w)
    return frame


def extremes(frame: pd.DataFrame, column: str, k: int) -> pd.DataFrame:
    """The `k` rows with the largest positive values of `column`, then the `k` most negative ones."""
    ordered = frame.sort_values(column, ascending=False, kind="stable")
    top = ordered[ordered[column] > 0].head(k)
    bottom = ordered[ordered[column] < 0].tail(k).iloc[::-1]
    return pd.concat([top, bottom], ignore_index=True)


Groups = list[tuple[dict[str, object], np.ndarray]]


def layer_groups(units: pd.DataFrame) -> Groups:
    """Each layer (per view in multi-view runs) in unit order: its key columns and its unit positions."""
    keys = layer_keys(units)
    return [({k: (v.item() if hasattr(v, "item") else v) for k, v in zip(keys, key)}, part.index.to_numpy())
            for key, part in units.groupby(keys, sort=False)]


def _layer_rows(w: np.ndarray, groups: Groups, top: int) -> list[dict[str, object]]:
    """Per-layer statistics of the weight rows `w` [rows, units], pooled over the rows."""
    pos, neg = np.clip(w, 0, None), np.clip(w, None, 0)
    k = min(top, w.shape[1])
    in_top = np.zeros(w.shape, dtype=bool)
    np.put_along_axis(in_top, np.argsort(-np.abs(w), axis=1, kind="stable")[:, :k], True, axis=1)
    total_pos, total_neg, total_top = pos.sum(), neg.sum(), in_top.sum()
    rows = []
    for key, idx in groups:
        layer_pos, layer_neg = pos[:, idx].sum(), neg[:, idx].sum()
        rows.append({**key, "units": len(idx), "pos_weight": layer_pos, "neg_weight": layer_neg,
                     "mean_weight": w[:, idx].mean(),
                     "pos_share": layer_pos / total_pos if total_pos > 0 else 0.0,
                     "neg_share": layer_neg / total_neg if total_neg < 0 else 0.0,
                     "top_share": in_top[:, idx].sum() / total_top if total_top else 0.0})
    return rows


def layer_summary(head: Head, top: int = DEFAULT_TOP) -> pd.DataFrame:
    """Per class (then `overall`, all classes pooled) and layer: weight sums, mean and shares.

    pos_share / neg_share: the layer's part of the class's total positive / negative weight;
    top_share: the part of the class's `top` units of largest |weight| that lie in the layer.
    """
    groups = layer_groups(head.units)
    rows = []
    for c, name in enumerate(head.classes):
        rows += [{"class": name, **r} for r in _layer_rows(head.weight[c:c + 1], groups, top)]
    rows += [{"class": OVERALL, **r} for r in _layer_rows(head.weight, groups, top)]
    return pd.DataFrame(rows, columns=["class", *layer_keys(head.units), *LAYER_STATS])


def class_similarity(head: Head) -> pd.DataFrame:
    """Cosine similarity of the classes' weight vectors: a square table with a leading `class` column."""
    norms = np.linalg.norm(head.weight, axis=1, keepdims=True)
    unit = head.weight / np.where(norms > 0, norms, 1.0)
    sim = np.clip(unit @ unit.T, -1.0, 1.0)
    # A zero vector has no direction; only its similarity with itself is defined (1 by convention).
    np.fill_diagonal(sim, 1.0)
    frame = pd.DataFrame(sim, columns=head.classes)
    frame.insert(0, "class", head.classes)
    return frame


def class_overview(head: Head, similarity: pd.DataFrame) -> pd.DataFrame:
    """One row per class: bias, weight sums, its largest weight's unit and layer, and its most similar class."""
    sim = similarity.drop(columns="class").to_numpy()
    rows = []
    for c, name in enumerate(head.classes):
        w = head.weight[c]
        best = int(np.argmax(w))
        others = np.where(np.arange(len(head.classes)) == c, -np.inf, sim[c])
        nearest = int(np.argmax(others))
        rows.append({"class": name, "bias": head.bias[c], "pos_weight": w[w > 0].sum(), "neg_weight": w[w < 0].sum(),
                     "top_unit": best, "top_node": head.units.at[best, "node"], "top_weight": w[best],
                     "nearest": head.classes[nearest], "similarity": sim[c, nearest]})
    return pd.DataFrame(rows)


# --- file names ------------------------------------------------------------------------------------

def file_stem(name: str) -> str:
    """A name made safe for a file name: anything but letters, digits, '.', '-' and '_' becomes '_'."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).strip(".")
    return stem or "_"


def class_stems(classes: list[str]) -> dict[str, str]:
    """A distinct file stem per class: `file_stem`, with `_<class index>` appended where two stems collide."""
    stems = [file_stem(c) for c in classes]
    return {c: s if stems.count(s) == 1 else f"{s}_{i}" for i, (c, s) in enumerate(zip(classes, stems))}


# --- plotting ----------------------------------------------------------------------------------------

def layer_colours(n: int) -> list[tuple[float, float, float, float]]:
    """`n` distinct colours for layers 0..n-1 (qualitative up to 20 layers, an early -> late gradient beyond)."""
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= _QUALITATIVE_MAX:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]


def _layer_scale(n: int) -> ScalarMappable:
    """The gradient of `layer_colours` for more than 20 layers, for a colour bar."""
    return ScalarMappable(Normalize(0, n - 1), colormaps["viridis"])


def layer_labels(frame: pd.DataFrame) -> list[str]:
    """'layer: node' (prefixed 'v<view> ' in multi-view runs) for each row of a per-layer table."""
    views = frame["view"] if "view" in frame.columns else [None] * len(frame)
    return [("" if v is None else f"v{v} ") + f"{layer}: {node}"
            for v, layer, node in zip(views, frame["layer"], frame["node"])]


def plot_unit_axis(ax: Axes, units: pd.DataFrame, values: np.ndarray, legend: bool = True) -> None:
    """`values` per unit as vertical lines along the unit axis, one colour per layer, layer boundaries dashed."""
    colours = layer_colours(int(units["layer"].max()) + 1)
    labelled: set[int] = set()
    for key, idx in layer_groups(units):
        layer = int(key["layer"])
        x = units["unit"].to_numpy()[idx]
        ax.vlines(x, 0, values[idx], colors=[colours[layer]], linewidth=1.0,
                  label=None if layer in labelled else f"{layer}: {key['node']}")
        labelled.add(layer)
        if x[0] > 0:
            ax.axvline(x[0] - 0.5, color="0.6", linewidth=0.6, linestyle="--")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlim(-0.5, len(units) - 0.5)
    if legend and len(colours) <= _QUALITATIVE_MAX:
        ax.legend(title="layer", fontsize=7, title_fontsize=8, loc="upper left", frameon=False)
    elif legend:
        ax.figure.colorbar(_layer_scale(len(colours)), ax=ax, label="layer (early -> late)", pad=0.01)


def weights_figure(frame: pd.DataFrame, title: str) -> Figure:
    """Figure 3: one class's weights along the unit axis (early layers left), coloured by layer."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.subplots()
    plot_unit_axis(ax, frame, frame["weight"].to_numpy())
    ax.set_xlabel("unit (early layers left, late layers right)")
    ax.set_ylabel("head weight")
    ax.set_title(title)
    return fig


def weights_grid(head: Head, title: str) -> Figure:
    """Every class's weights along the unit axis, one panel per class, shared axes and one legend."""
    n = len(head.classes)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.6 * cols, 2.2 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    for c, (ax, name) in enumerate(zip(axes, head.classes)):
        plot_unit_axis(ax, head.units, head.weight[c], legend=False)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    layers = int(head.units["layer"].max()) + 1
    if layers <= _QUALITATIVE_MAX:
        fig.legend(*axes[0].get_legend_handles_labels(), title="layer", loc="outside right upper", fontsize=7)
    else:
        fig.colorbar(_layer_scale(layers), ax=axes.tolist(), label="layer (early -> late)")
    fig.supxlabel("unit (early layers left, late layers right)")
    fig.supylabel("head weight")
    fig.suptitle(title)
    return fig


def similarity_figure(similarity: pd.DataFrame, title: str) -> Figure:
    """A heat map of the class similarity table (cosine, -1 .. 1)."""
    values = similarity.drop(columns="class").to_numpy(dtype=float)
    names = list(similarity["class"])
    n = len(names)
    fig = Figure(figsize=(1.6 + 0.45 * n, 1.2 + 0.45 * n), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(values[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="cosine similarity")
    ax.set_title(title)
    return fig
