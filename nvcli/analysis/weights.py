"""Reading a head (paper section 3.5, Figure 3): each class's weights along the unit axis, per-layer
summaries, class similarity.

The unit axis runs early layers first (units.csv order; view-major for multi-view runs).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import NvError
from ..models.unit_table import Groups, layer_groups, layer_keys
from ..runs import files
from ..runs.results import RunResult, Writer, figure, table
from .head import DEFAULT_TOP, OVERALL, Head, extremes, ranks
from .importance import DEFAULT_RANK, CodeStats, needs_codes, ranked_head
from .settings import ClassWeightsSettings, HeadSummarySettings
from .sparse.groups import UnitGroups

if TYPE_CHECKING:
    from torch import Tensor

LAYER_STATS = ["units", "pos_weight", "neg_weight", "mean_weight", "pos_share", "neg_share", "top_share"]


GROUP_COLUMNS = ["group", "group_size", "group_corr"]  # a sparse head's near-copy groups (weights_<class>@NAME.csv)


def class_weights(head: Head, name: str, stats: CodeStats | None = None) -> pd.DataFrame:
    """`unit,[view,]layer,node,channel,weight,rank` of one class (rank 1 = largest weight); with the codes' `stats`,
    `std` and `importance` (= weight * std) come before `rank`, which then orders by importance. A head with groups
    of near-copy units adds GROUP_COLUMNS before `rank`: each unit's group (its representative, the unit that holds
    the group's weight), the group's size and the unit's correlation with the representative."""
    w = head.weight[head.class_index(name)]
    frame = head.units[head.unit_columns].copy()
    frame["weight"] = w
    if stats is not None:
        frame["std"] = stats.std
        frame["importance"] = w * stats.std
    if head.groups is not None:
        frame["group"], frame["group_size"] = head.groups.representative, head.groups.sizes()
        frame["group_corr"] = head.groups.corr
    frame["rank"] = ranks(frame["importance" if stats is not None else "weight"].to_numpy())
    return frame


def kept_units(head: Head, name: str, concepts: pd.DataFrame | None = None) -> pd.DataFrame:
    """The units with a nonzero weight for class `name` (largest positive first, then most negative), with each
    unit's concept, category and IoU from `concepts` (concepts_units.csv) when given. A head with groups adds
    `group_size` and `members`: the group's other units as `unit layer-label [concept] (corr)`, `; `-separated."""
    frame = _kept_rows(class_weights(head, name).drop(columns=["group", "group_corr"], errors="ignore"), concepts)
    if head.groups is not None:
        named = dict(zip(concepts["unit"], concepts["concept"])) if concepts is not None else {}
        frame["members"] = [_members(head.groups, head.units.get("label", head.units["node"]), int(u), named)
                            for u in frame["unit"]]
    return frame


def _members(groups: UnitGroups, labels: pd.Series, unit: int, concepts: dict[int, str]) -> str:
    """The other units of `unit`'s group: `unit layer-label [concept] (corr)`, `; `-separated."""
    return "; ".join(f"{u} {labels.iat[u]}" + (f" {concepts[u]}" if concepts.get(u) else "")
                     + f" ({groups.corr[u]:+.3f})" for u in groups.members(unit) if u != unit)


def _kept_rows(frame: pd.DataFrame, concepts: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of a class's weights table (class_weights) with a nonzero weight, with their concepts when given,
    largest positive weight first, then the most negative."""
    frame = frame[frame["weight"] != 0]
    if concepts is not None:
        frame = frame.merge(concepts[["unit", "concept", "category", "iou"]], on="unit", how="left")
    return extremes(frame, "weight", len(frame))


def kept_per_view(head: Head, name: str) -> pd.DataFrame:
    """`view,units,positive,negative`: how many units of each view class `name` weighs (multi-view runs)."""
    w = head.weight[head.class_index(name)]
    frame = pd.DataFrame({"view": head.units["view"], "units": w != 0, "positive": w > 0, "negative": w < 0})
    return frame.groupby("view", sort=True).sum().reset_index()


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


INIT_WARN = 0.5  # init_corr above this: the class's weights are still mostly where training started them


def init_correlation(head: Head, init: dict[str, Tensor] | None) -> np.ndarray | None:
    """Per class, the Pearson correlation of its weights with its initial weights (head_init.pt's `weight`).

    None when there is no initial head, or it is constant (a zero init): then nothing of it can remain. An initial
    head that is not this head's shape is refused: it was not this run's start.
    """
    if init is None:
        return None
    w0 = init.get("weight")
    if w0 is None or tuple(w0.shape) != head.weight.shape:
        found = "no 'weight'" if w0 is None else f"a weight of shape {tuple(w0.shape)}"
        raise NvError(f"'{files.HEAD_INIT}' holds {found}, but the head is {head.weight.shape[0]} classes x "
                      f"{head.weight.shape[1]} units: it is not this run's initial head (restore the run's own)")
    w0 = w0.detach().cpu().double().numpy()
    if not (w0.std(axis=1) > 0).all():
        return None
    a = head.weight - head.weight.mean(axis=1, keepdims=True)
    b = w0 - w0.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.divide((a * b).sum(axis=1), norms, out=np.zeros(len(norms)), where=norms > 0)


def class_overview(head: Head, similarity: pd.DataFrame, init_corr: np.ndarray | None = None) -> pd.DataFrame:
    """One row per class: bias, weight sums, the unit and layer of its weight of largest magnitude, its most similar
    class and, with `init_corr`, the correlation of its weights with their initial values."""
    sim = similarity.drop(columns="class").to_numpy()
    layer_names = head.units.get("label", head.units["node"])
    rows = []
    for c, name in enumerate(head.classes):
        w = head.weight[c]
        best = int(np.argmax(np.abs(w)))  # a sparse head's class may rest on evidence against it alone
        others = np.where(np.arange(len(head.classes)) == c, -np.inf, sim[c])
        nearest = int(np.argmax(others))
        rows.append({"class": name, "bias": head.bias[c], "pos_weight": w[w > 0].sum(), "neg_weight": w[w < 0].sum(),
                     "top_unit": best, "top_layer": layer_names.iat[best], "top_weight": w[best],
                     "nearest": head.classes[nearest], "similarity": sim[c, nearest]})
        if init_corr is not None:
            rows[-1]["init_corr"] = init_corr[c]
    return pd.DataFrame(rows)


@dataclass
class ClassWeights(RunResult):
    """One class's weight on every unit: weights_<class>.csv and, with `plot`, weights_<class>.png."""

    kind = "weights"
    main_table = "frame"
    run: str
    head: str
    cls: str
    stem: str  # the class's file stem (unique among the run's classes)
    frame: pd.DataFrame  # unit, [view,] layer, node, channel, weight, [std, importance,] [GROUP_COLUMNS,] rank
    rank: str = DEFAULT_RANK
    kept: pd.DataFrame | None = None  # a sparse head's units of the class (kept_units): drawn instead of the axis

    def key(self) -> files.ResultKey:
        return files.ResultKey(self.kind, self.stem, self.head)

    def settings(self) -> ClassWeightsSettings:
        return ClassWeightsSettings(self.cls, self.head, self.rank)

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.weights import kept_figure, weights_figure

        out = {files.WEIGHTS.name(self.head, cls=self.stem): table(self.frame)}
        if figures:
            png = files.WEIGHTS_PNG.name(self.head, cls=self.stem)
            if self.kept is not None:
                out[png] = figure(kept_figure, self.kept, f"{self.run}: the {len(self.kept)} units of '{self.cls}' in "
                                  f"head {self.head}")
            else:
                title = (f"{self.run}: {'weights' if self.rank == 'weight' else 'importance'} of '{self.cls}'"
                         + ("" if files.is_dense(self.head) else f" ({self.head})"))
                out[png] = figure(weights_figure, self.frame, title)
        return out

    @classmethod
    def load(cls, run_dir: Path, name: str, head: str = files.DENSE_HEAD) -> "ClassWeights | None":
        """The saved weights of class `name` in `run_dir`, or None when they were never saved."""
        from ..runs.run import load_run

        stem = files.class_stems(load_run(run_dir).classes).get(name, files.file_stem(name))
        frame = files.WEIGHTS.read(run_dir, head, cls=stem)
        if frame is None:
            return None
        kept = None
        if not files.is_dense(head):
            from .dissect.concepts import ConceptMap

            kept = _kept_rows(frame, ConceptMap.labels_for(load_run(run_dir), head))
        return cls(Path(run_dir).name, head, name, stem, frame, "importance" if "importance" in frame else "weight",
                   kept)


@dataclass
class HeadSummary(RunResult):
    """Per-layer weight statistics of every class and the class similarity of one head."""

    kind = "head-summary"
    main_table = "layers"
    run: str
    head: Head  # its weights are the ranking's scores (importance, with rank `importance`)
    top: int
    layers: pd.DataFrame
    similarity: pd.DataFrame
    grid: bool = False  # also draw every class's weights in one figure (weights_all.png)
    rank: str = DEFAULT_RANK  # what `layers` and the grid sum: the head's weights or their importance

    def key(self) -> files.ResultKey:
        return files.ResultKey(self.kind, head=self.head.name)

    def settings(self) -> HeadSummarySettings:
        return HeadSummarySettings(self.top, self.head.name, self.rank)

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.weights import similarity_figure, weights_grid

        h = self.head.name
        out = {files.WEIGHTS_LAYERS.name(h): table(self.layers), files.SIMILARITY.name(h): table(self.similarity)}
        if figures:
            out[files.SIMILARITY_PNG.name(h)] = figure(similarity_figure, self.similarity,
                                                       f"{self.run}: class similarity")
            if self.grid:
                what = "head weights" if self.rank == "weight" else "importance"
                out[files.WEIGHTS_ALL_PNG.name(h)] = figure(weights_grid, self.head.weight, self.head.units,
                                                            self.head.classes, f"{self.run}: {what} per class",
                                                            self.rank)
        return out

    @classmethod
    def load(cls, run_dir: Path, head: str = files.DENSE_HEAD, top: int = DEFAULT_TOP) -> "HeadSummary | None":
        """The saved summary of `head` in `run_dir` (its head read from model.pt or heads/), or None if never saved."""
        from ..runs.run import load_run
        from .head import read_head

        layers, similarity = files.WEIGHTS_LAYERS.read(run_dir, head), files.SIMILARITY.read(run_dir, head)
        if layers is None or similarity is None:
            return None
        run = load_run(run_dir)
        return cls(run.name, read_head(run, head), top, layers, similarity)


def weights(run_name: str, head: Head, classes: list[str], *, top: int = DEFAULT_TOP, grid: bool = False,
            rank: str = DEFAULT_RANK, stats: CodeStats | None = None,
            concepts: pd.DataFrame | None = None) -> tuple[list[ClassWeights], HeadSummary]:
    """A head's weights along the unit axis for some classes, its per-layer summary and class similarity.

    Args:
        run_name: the run's name, for titles.
        head: the head (`read_head`).
        classes: the classes to tabulate and draw.
        top: units listed per sign, and the k of `top_share` per layer.
        grid: also draw every class in one figure (weights_all.png).
        rank: `weight` (the paper's) or `importance` (weight x the code's spread; needs `stats`).
        stats: the validation codes' mean and spread (`code_stats`), for `importance`.
        concepts: concepts_units.csv, to label a sparse head's kept units in its figure.

    Returns:
        One `ClassWeights` per class (weights_<class>.csv/.png) and the `HeadSummary` (weights_layers.csv,
        class_similarity.csv/.png); `.save(run.dir)` writes each.
    """
    stems = files.class_stems(head.classes)
    shown = stats if needs_codes(rank) else None
    sparse = not files.is_dense(head.name)
    per_class = [ClassWeights(run_name, head.name, c, stems[c], class_weights(head, c, shown), rank,
                              kept_units(head, c, concepts) if sparse else None) for c in classes]
    scored = ranked_head(head, rank, stats)
    summary = HeadSummary(run_name, scored, top, layer_summary(scored, top), class_similarity(head), grid, rank)
    return per_class, summary
