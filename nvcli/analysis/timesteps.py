"""Reading a recurrent NeuroView head along time (NeuroView-RNN's figure): how much of each class's weight lies at
each time step (and layer), and which steps to remove first in `nv ablate`.

A class's mass at step t of layer l is the sum of |score| over that layer's hidden units at t (score: the raw weight,
or weight x the code's std with rank `importance`). Its share is that mass over the class's total mass.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import NvError
from ..runs import files
from ..runs.results import RunResult, Writer, figure, table
from .head import Head
from .importance import DEFAULT_RANK, CodeStats, scores
from .settings import RankedSettings

TIME_COLUMNS = ["class", "layer", "label", "step", "mass", "share", "pos_weight", "neg_weight"]
SUMMARY_COLUMNS = ["class", "peak_step", "peak_share", "centre", "spread"]


def require_steps(units: pd.DataFrame, what: str) -> np.ndarray:
    """The `step` of every unit; a run without a time axis (not recurrent) is refused, naming `what` was asked."""
    if "step" not in units.columns:
        raise NvError(f"{what} needs a run with a time axis (a recurrent arch: rnn, gru or lstm); this run's "
                      "units have no time step")
    return units["step"].to_numpy()


def step_mass(score: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """[classes, steps]: the sum of |score| over each step's units (every layer)."""
    count = int(steps.max()) + 1
    return np.stack([np.bincount(steps, weights=np.abs(row), minlength=count) for row in score])


def time_frame(head: Head, score: np.ndarray) -> pd.DataFrame:
    """TIME_COLUMNS: per class, layer and step, the mass, its share of the class's total and the signed sums."""
    steps = require_steps(head.units, "weights by time")
    layers = head.units["layer"].to_numpy()
    labels = dict(zip(head.units["layer"], head.units.get("label", head.units["node"])))
    count = int(steps.max()) + 1
    parts = []
    for c, name in enumerate(head.classes):
        total = np.abs(score[c]).sum()
        for layer in sorted(labels):
            inside = layers == layer
            w = score[c, inside]
            sums = {key: np.bincount(steps[inside], weights=values, minlength=count) for key, values in
                    (("mass", np.abs(w)), ("pos_weight", np.clip(w, 0, None)), ("neg_weight", np.clip(w, None, 0)))}
            parts.append(pd.DataFrame({"class": name, "layer": layer, "label": labels[layer], "step": np.arange(count),
                                       **sums, "share": sums["mass"] / total if total > 0 else 0.0}))
    return pd.concat(parts, ignore_index=True)[TIME_COLUMNS]


def time_summary(head: Head, score: np.ndarray) -> pd.DataFrame:
    """SUMMARY_COLUMNS per class: the step of largest mass and its share, the mass-weighted mean step (`centre`) and
    `spread`: the effective number of steps holding the mass (exp of the shares' entropy) over the steps, from
    1/steps (one step) to 1 (even)."""
    mass = step_mass(score, require_steps(head.units, "weights by time"))
    rows = []
    for name, row in zip(head.classes, mass):
        total = row.sum()
        share = row / total if total > 0 else np.full(len(row), 1.0 / len(row))
        nonzero = share[share > 0]
        rows.append({"class": name, "peak_step": int(row.argmax()), "peak_share": float(share.max()),
                     "centre": float((share * np.arange(len(row))).sum()),
                     "spread": float(np.exp(-(nonzero * np.log(nonzero)).sum()) / len(row))})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


@dataclass
class TimeWeights(RunResult):
    """weights_time.csv (mass per class, layer and step), weights_time_summary.csv and weights_time.png."""

    kind = "weights-time"
    main_table = "frame"
    run: str
    head: str
    frame: pd.DataFrame  # TIME_COLUMNS
    summary: pd.DataFrame  # SUMMARY_COLUMNS
    rank: str = DEFAULT_RANK

    def settings(self) -> RankedSettings:
        return RankedSettings(self.head, self.rank)

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.timesteps import time_figure

        h = self.head
        out = {files.WEIGHTS_TIME.name(h): table(self.frame), files.WEIGHTS_TIME_SUMMARY.name(h): table(self.summary)}
        if figures:
            what = "weight" if self.rank == "weight" else "importance"
            out[files.WEIGHTS_TIME_PNG.name(h)] = figure(time_figure, self.frame, f"{self.run}: share of each class's "
                                                         f"|{what}| per time step")
        return out

    @classmethod
    def load(cls, run_dir: Path, head: str = files.DENSE_HEAD, rank: str = DEFAULT_RANK) -> "TimeWeights | None":
        """The saved time profile of `head` in `run_dir`, or None when it was never saved."""
        frame, summary = files.WEIGHTS_TIME.read(run_dir, head), files.WEIGHTS_TIME_SUMMARY.read(run_dir, head)
        if frame is None or summary is None:
            return None
        return cls(Path(run_dir).name, head, frame, summary, rank)


def time_weights(run_name: str, head: Head, rank: str = DEFAULT_RANK,
                 stats: CodeStats | None = None) -> TimeWeights:
    """Each class's weight mass per time step and layer of a recurrent run's head.

    Args:
        run_name: the run's name, for the figure's title.
        head: the head (`read_head`); its units must have a `step` column.
        rank: `weight` (|W|) or `importance` (|W| x the code's std; needs `stats`).
        stats: the validation codes' mean and spread (`code_stats`), for `importance`.

    Returns:
        A `TimeWeights`; `.save(run.dir)` writes weights_time.csv, weights_time_summary.csv, weights_time.png.
    """
    score = scores(head, rank, stats)
    return TimeWeights(run_name, head.name, time_frame(head, score), time_summary(head, score), rank)


def step_order(score: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The time steps by the class's mass (`score` [units] of one class), largest first."""
    return np.argsort(-step_mass(score[None, :], steps)[0], kind="stable")


def step_grid(count: int) -> list[int]:
    """The numbers of time steps `nv ablate` removes: about 6, spaced geometrically from 1 to a quarter of them."""
    return sorted({int(k) for k in np.geomspace(1, max(1, count // 4), 6).round()} | {step_k(count)})


def step_k(count: int) -> int:
    """The step ablation's summary k: a tenth of the steps (at least one)."""
    return max(1, int(np.ceil(count / 10)))


def step_summary(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    """Per class (from ablation.csv): its accuracy clean, without its top `step_k` steps and without as many random
    steps (mean of the draws)."""
    k = step_k(count)
    rows = []
    for name, part in frame.groupby("class", sort=False):
        chosen = part[part["k"] == k]
        rows.append({"class": name, "steps": k, "accuracy": part[part["policy"] == "none"]["accuracy"].iloc[0],
                     "top_steps_accuracy": chosen[chosen["policy"] == "top-steps"]["accuracy"].mean(),
                     "random_steps_accuracy": chosen[chosen["policy"] == "random-steps"]["accuracy"].mean()})
    return pd.DataFrame(rows)


def step_contributions(units: pd.DataFrame) -> pd.DataFrame:
    """`step,contribution,positive,negative`: one explained input's unit contributions (explain's table) summed over
    each time step's units, every layer."""
    c = units["contribution"]
    frame = pd.DataFrame({"step": units["step"], "contribution": c, "positive": c.clip(lower=0),
                          "negative": c.clip(upper=0)})
    return frame.groupby("step", sort=True).sum().reset_index()
