"""The regularisation path of a run's sparse head as a result: sparse_path.csv (one row per step) and sparse_path.png.

Steps run from lambda_max (no unit has weight: the head predicts the majority class) down the path; each row
says how many units each class uses (one per group of near-copies) and how accurate the head is on the training
and validation codes.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ...runs import files
from ...runs.results import RunResult, Writer, figure, table
from ..settings import PathSettings  # noqa: F401  (re-exported)
from .solver import PathResult

# + one `units:<class>` column per class (class_columns)
PATH_COLUMNS = ["step", "lambda", "units_per_class_mean", "units_per_class_max", "units", "train_acc", "val_acc",
                "iterations", "converged"]


def class_columns(classes: list[str]) -> list[str]:
    """The per-class count columns of sparse_path.csv and of the printed summary: `units:<class>`."""
    return [f"units:{c}" for c in classes]


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
    main_table = "frame"
    run: str
    frame: pd.DataFrame  # PATH_COLUMNS
    dense_acc: float  # the dense head's validation accuracy, the figure's reference line
    path_settings: PathSettings

    def settings(self) -> PathSettings:
        return self.path_settings

    def data_splits(self) -> tuple[str, ...]:
        return ("train", "val")

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ...plots.sparse import path_figure

        out = {files.SPARSE_PATH.name(): table(self.frame)}
        if figures:
            out[files.SPARSE_PATH_PNG.name()] = figure(path_figure, self.frame, self.dense_acc,
                                                       f"{self.run}: sparse head path "
                                                       f"(alpha {self.path_settings.alpha})")
        return out
