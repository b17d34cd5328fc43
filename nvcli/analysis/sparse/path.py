"""The regularisation path of a run's sparse head as a result: sparse_path.csv (one row per step) and sparse_path.png.

Steps run from lambda_max (no unit has weight: the head predicts the majority class) down the path; each row
says how many units each class uses (one per group of near-copies) and how accurate the head is on the training
and validation codes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ...errors import NvError
from ...runs import files
from ...runs.results import RunResult, Writer, figure, table
from .groups import DEFAULT_GROUP_CORR
from .solver import PathResult

# + one `units:<class>` column per class (class_columns)
PATH_COLUMNS = ["step", "lambda", "units_per_class_mean", "units_per_class_max", "units", "train_acc", "val_acc",
                "iterations", "converged"]


def class_columns(classes: list[str]) -> list[str]:
    """The per-class count columns of sparse_path.csv and of the printed summary: `units:<class>`."""
    return [f"units:{c}" for c in classes]


@dataclass(frozen=True)
class PathSettings:
    """How the path is fitted: the L1 share `alpha`, `steps` lambdas from lambda_max down to `ratio` * lambda_max,
    early stopping after `patience` steps without a better validation accuracy (None: the whole path), and units
    whose standardised training codes correlate with |r| >= `group_corr` made one feature (None: no grouping)."""

    alpha: float = 0.99
    steps: int = 50
    ratio: float = 0.01
    patience: int | None = 10
    group_corr: float | None = DEFAULT_GROUP_CORR

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise NvError(f"--alpha {self.alpha} is not valid; the L1 share of the penalty must be in (0, 1] "
                          "(1 = lasso, 0.99 = the papers' elastic net)")
        if self.steps < 2:
            raise NvError(f"--steps {self.steps} is not valid; the path needs at least 2 steps")
        if not 0 < self.ratio < 1:
            raise NvError(f"--lambda-ratio {self.ratio} is not valid; the last lambda as a fraction of lambda_max "
                          "must be in (0, 1)")
        if self.patience is not None and self.patience < 1:
            raise NvError(f"--patience {self.patience} is not valid; give an integer >= 1 (0 fits the whole path)")
        if self.group_corr is not None and not 0 < self.group_corr <= 1:
            raise NvError(f"group_corr {self.group_corr} is not valid; give the |correlation| at which units are one "
                          "feature, in (0, 1] (0.99 groups near-copies), or None for no grouping")

    def as_dict(self) -> dict[str, Any]:
        """The settings as recorded in results.json."""
        return {"alpha": self.alpha, "steps": self.steps, "ratio": self.ratio, "patience": self.patience,
                "group_corr": self.group_corr}


def path_frame(path: PathResult, classes: list[str]) -> pd.DataFrame:
    """One row per fitted step (PATH_COLUMNS, then each class's units)."""
    columns = class_columns(classes)
    return pd.DataFrame([{"step": i, "lambda": s.lam, "units_per_class_mean": s.nonzero_mean,
                          "units_per_class_max": s.nonzero_max, "units": s.units, "train_acc": s.train_acc,
                          "val_acc": s.val_acc, "iterations": s.iterations, "converged": s.converged,
                          **dict(zip(columns, (s.weight() != 0).sum(dim=1).tolist()))}
                         for i, s in enumerate(path.steps)], columns=PATH_COLUMNS + columns)


@dataclass
class SparsePath(RunResult):
    """The fitted path of one run: sparse_path.csv and sparse_path.png (validation accuracy against sparsity)."""

    kind = "sparse-path"
    run: str
    frame: pd.DataFrame  # PATH_COLUMNS
    dense_acc: float  # the dense head's validation accuracy, the figure's reference line
    path_settings: PathSettings

    def settings(self) -> dict[str, Any]:
        return self.path_settings.as_dict()

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ...plots.sparse import path_figure

        out = {files.SPARSE_PATH.name(): table(self.frame)}
        if figures:
            out[files.SPARSE_PATH_PNG.name()] = figure(path_figure, self.frame, self.dense_acc,
                                                       f"{self.run}: sparse head path (alpha {self.path_settings.alpha})")
        return out
