"""Choosing a sparse head on the path and storing it in the run: heads/<name>.pt (an ordinary `W z + b` over the
run's codes, the standardisation folded in) and heads/<name>.json (how it was chosen and how accurate it is)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...errors import NvError
from ...fs.atomic import save_torch, write_json
from ...fs.digest import file_sha256
from ...models.unit_table import layer_keys
from ...runs import files
from ...runs.results import RunResult, Writer
from ..head import Head
from ..settings import PathSettings
from .record import LayerKept, Selection, SparseHeadRecord, SparseHeadSettings

if TYPE_CHECKING:
    from ...runs.run import Run


def check_head_name(name: str) -> str:
    """A name a sparse head can be stored and selected under (`head=NAME` of every analysis)."""
    if files.is_dense(name):
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


def kept_per_layer(weight: np.ndarray, units: pd.DataFrame) -> tuple[LayerKept, ...]:
    """For each layer (per view in multi-view runs) with a kept unit: its key columns and how many units are kept."""
    kept = units.assign(kept=(weight != 0).any(axis=0))
    keys = layer_keys(units)
    counts = kept.groupby(keys, sort=False)["kept"].sum()
    return tuple(LayerKept(units=int(n), **{k: str(v) if k in ("node", "label") else int(v)
                                             for k, v in zip(keys, key if isinstance(key, tuple) else (key,))})
                 for key, n in counts.items() if n > 0)


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
    record: SparseHeadRecord
    path_settings: PathSettings
    selection: Selection
    finetune: bool
    summary: pd.DataFrame  # the dense head, [the penalised head,] this head: units and accuracies

    def key(self) -> files.ResultKey:
        return files.ResultKey(self.kind, self.head.name)

    def head_name(self) -> str:
        return files.DENSE_HEAD  # fitted on the codes of the network (model.pt), not on another head

    def data_splits(self) -> tuple[str, ...]:
        return ("train", "val")

    def settings(self) -> SparseHeadSettings:
        return SparseHeadSettings(self.path_settings, self.selection, self.finetune)

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
        self.record = replace(self.record, made_from=super().made_from(run))
        return self.record.made_from or {}

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        state, record = self.head.state_dict(), self.record
        weights = files.SPARSE_HEAD.name(name=self.head.name)

        def write_record(path: Path) -> None:  # written after the weights (in this order), whose digest it records
            write_json(path, replace(record, weights_sha256=file_sha256(path.parent / Path(weights).name)).to_json())

        return {weights: lambda path: save_torch(path, state), files.SPARSE_HEAD_INFO.name(name=self.head.name):
                write_record}
