"""Choosing a sparse head on the path and storing it in the run: heads/<name>.pt (an ordinary `W z + b` over the
run's codes, the standardisation folded in) and heads/<name>.json (how it was chosen and how accurate it is)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ...errors import NvError
from ...fs.atomic import save_torch, write_json
from ...fs.digest import file_sha256
from ...models.unit_table import layer_keys
from ...runs import files
from ...runs.provenance import WEIGHTS_DIGEST
from ...runs.results import RunResult, Writer
from ..head import Head
from ..settings import DEFAULT_UNITS_PER_CLASS, PathSettings
from .solver import PathResult

if TYPE_CHECKING:
    from ...runs.run import Run


@dataclass(frozen=True)
class Selection:
    """How the head is chosen: at most `units_per_class` units for every class (each class's first K groups along
    the path, refitted; budget.py), or the sparsest step whose validation accuracy is at most `max_drop` below the
    dense head's."""

    units_per_class: int | None = DEFAULT_UNITS_PER_CLASS
    max_drop: float | None = None

    def __post_init__(self) -> None:
        if (self.units_per_class is None) == (self.max_drop is None):
            raise NvError("give one rule for choosing the head, units_per_class K or max_drop X, not both",
                          param=("units_per_class", "max_drop"))
        if self.units_per_class is not None and self.units_per_class < 1:
            raise NvError(f"units_per_class {self.units_per_class} is not valid; give an integer >= 1",
                          param="units_per_class")
        if self.max_drop is not None and not 0 <= self.max_drop < 1:
            raise NvError(f"max_drop {self.max_drop} is not valid; give the accuracy a head may lose as a fraction "
                          "in [0, 1) (0.03 = 3 points)", param="max_drop")

    def as_dict(self) -> dict[str, Any]:
        """The rule as recorded in results.json and heads/<name>.json."""
        return {"units_per_class": self.units_per_class} if self.max_drop is None else {"max_drop": self.max_drop}

    def choose(self, path: PathResult, dense_acc: float) -> int:
        """The index of the step `max_drop` picks (steps are ordered from the sparsest, lambda_max, to the densest)."""
        if self.max_drop is None:
            raise ValueError("a budget of units per class is not one step of the path; see budget.class_budget")
        steps = path.steps
        floor = dense_acc - self.max_drop
        # A head without units (the first step) predicts the class prior: it explains nothing, whatever the drop.
        within = [i for i, s in enumerate(steps) if s.units > 0 and s.val_acc >= floor - 1e-12]
        if not within:
            best = steps[path.best]
            raise NvError(f"no head with units on the path is within max_drop {self.max_drop} of the dense head's "
                          f"validation accuracy {dense_acc:.4f}: the best reaches {best.val_acc:.4f} with "
                          f"{best.nonzero_mean:.1f} units per class; allow a larger drop, or fit further with a "
                          "smaller ratio or no patience", param=("max_drop", "ratio", "patience"))
        return within[0]


def check_head_name(name: str) -> str:
    """A name a sparse head can be stored and selected under (`head=NAME` of every analysis)."""
    if name == files.DENSE_HEAD:
        raise NvError(f"'{files.DENSE_HEAD}' is the head trained with the network; give the sparse head another name",
                      param="name")
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name) or files.file_stem(name) != name:  # stored as named
        raise NvError(f"head name '{name}' is not valid; use up to {files.MAX_STEM} letters, digits, '.', '-' and '_' "
                      "(not first or last '.'), e.g. sparse10")
    return name


def default_name(selection: Selection) -> str:
    """sparse<K> for units_per_class K, sparse-drop<X> for max_drop X."""
    if selection.max_drop is None:
        return f"sparse{selection.units_per_class}"
    return f"sparse-drop{selection.max_drop:g}"


def kept_per_layer(weight: np.ndarray, units: pd.DataFrame) -> list[dict[str, Any]]:
    """For each layer (per view in multi-view runs) with a kept unit: its key columns and how many units are kept."""
    kept = units.assign(kept=(weight != 0).any(axis=0))
    keys = layer_keys(units)
    counts = kept.groupby(keys, sort=False)["kept"].sum()
    return [{**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "units": int(n)}
            for key, n in counts.items() if n > 0]


def kept_units_per_view(head: Head) -> dict[str, int]:
    """How many units a multi-view head keeps (weight != 0 for some class) on each view: {view: units}."""
    kept = head.units.assign(kept=(head.weight != 0).any(axis=0)).groupby("view")["kept"].sum()
    return {str(view): int(n) for view, n in kept.items()}


@dataclass
class SparseHead(RunResult):
    """A chosen sparse head: heads/<name>.pt (float32 `weight`, `bias`) and heads/<name>.json (its record)."""

    kind = "head"
    main_table = "summary"
    head: Head
    record: dict[str, Any]  # lambda, alpha, rule, units per class, accuracies, kept units per layer/view
    path_settings: PathSettings
    selection: Selection
    finetune: bool
    summary: pd.DataFrame  # the dense head, [the penalised head,] this head: units and accuracies

    def key(self) -> str:
        return f"{self.kind}/{self.head.name}"

    def head_name(self) -> str:
        return files.DENSE_HEAD  # fitted on the codes of the network (model.pt), not on another head

    def data_splits(self) -> tuple[str, ...]:
        return ("train", "val")

    def settings(self) -> dict[str, Any]:
        return {**self.path_settings.as_dict(), "rule": self.selection.as_dict(), "finetune": self.finetune}

    def check(self) -> None:
        """A head of the run's shape, finite, and within its rule's budget of units per class."""
        head, budget = self.head, self.selection.units_per_class
        weight, bias = head.weight, head.bias
        if weight.shape != (len(head.classes), len(head.units)) or bias.shape != (len(head.classes),):
            raise NvError(f"sparse head '{head.name}' has weight {list(weight.shape)} and bias {list(bias.shape)}, not "
                          f"[{len(head.classes)}, {len(head.units)}] and [{len(head.classes)}]; nothing was saved")
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise NvError(f"sparse head '{head.name}' holds NaN or infinite weights; nothing was saved")
        counts = (weight != 0).sum(axis=1)
        over = [f"{c} ({n})" for c, n in zip(head.classes, counts.tolist()) if budget is not None and n > budget]
        if over:
            raise NvError(f"sparse head '{head.name}' breaks its rule of at most {budget} units per class: "
                          f"{', '.join(over)}; nothing was saved (a solver fault: try solver 'memory')")

    def made_from(self, run: "Run") -> dict[str, str]:
        """What the head was fitted on, also kept in its record (read_head checks it against the run)."""
        self.record["made_from"] = super().made_from(run)
        return self.record["made_from"]

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        state, record = self.head.state_dict(), json.loads(json.dumps(self.record))
        weights = files.SPARSE_HEAD.name(name=self.head.name)

        def write_record(path: Path) -> None:  # written after the weights (in this order), whose digest it records
            write_json(path, {**record, WEIGHTS_DIGEST: file_sha256(path.parent / Path(weights).name)})

        return {weights: lambda path: save_torch(path, state), files.SPARSE_HEAD_INFO.name(name=self.head.name):
                write_record}
