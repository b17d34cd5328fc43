"""The unit table (units.csv): one row per unit, `unit,[view,]layer,node,label,[step,]channel`, grouped by layer.

`node` is the graph's name of the layer's nonlinearity (`features.4`), `label` the name a reader knows
(`conv2`, `layer2.1 conv1`); runs written before labels existed get their node name as label.
Pandas and numpy only, so readers of a run (figures, the report) need no torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import NvError

if TYPE_CHECKING:
    from .units import Layer

UNIT_COLUMNS = ["unit", "view", "layer", "node", "label", "step", "channel"]  # `view`: multi-view; `step`: recurrent
INTEGER_COLUMNS = ("unit", "view", "layer", "step", "channel")
TEXT_COLUMNS = ("node", "label")
Groups = list[tuple[dict[str, object], np.ndarray]]


def units_frame(layers: "list[Layer]", view: int | None = None) -> pd.DataFrame:
    """One row per unit: `unit,layer,node,label,channel` (plus `view` for multi-view models)."""
    rows = [
        {"unit": layer.offset + c, "layer": layer.index, "node": layer.node, "label": layer.label or layer.node,
         "channel": c}
        for layer in layers
        for c in range(layer.channels)
    ]
    frame = pd.DataFrame(rows, columns=["unit", "layer", "node", "label", "channel"])
    if view is not None:
        frame.insert(1, "view", view)
    return frame


def with_labels(units: pd.DataFrame) -> pd.DataFrame:
    """`units` with a `label` column after `node` (the node name where a run predates labels)."""
    if "label" in units.columns or "node" not in units.columns:
        return units
    out = units.copy()
    out.insert(out.columns.get_loc("node") + 1, "label", out["node"])
    return out


def checked_units(units: pd.DataFrame, source: str) -> pd.DataFrame:
    """`units` as read from `source` with its integer columns as integers >= 0, its text columns not blank and its
    units numbered 0..N-1 in order; a cell that breaks this is an NvError naming `source`, the line and the column."""
    out = units.copy()
    for column in [c for c in INTEGER_COLUMNS if c in out.columns]:
        values = pd.to_numeric(out[column], errors="coerce").to_numpy(np.float64)
        expected = np.arange(len(out)) if column == "unit" else None
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(values) & (values == np.round(values)) & (values >= 0))
            if expected is not None:
                bad |= values != expected
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            valid = f"units numbered 0..{len(out) - 1} in order" if expected is not None else "an integer >= 0"
            raise NvError(f"{source} line {row + 2} column '{column}' is {str(units[column].iloc[row])!r}; expected "
                          f"{valid}")
        out[column] = values.astype(np.int64)
    for column in [c for c in TEXT_COLUMNS if c in out.columns]:
        out[column] = out[column].astype(str)
        blank = out[column].str.strip() == ""
        if blank.any():
            raise NvError(f"{source} line {int(np.flatnonzero(blank)[0]) + 2} column '{column}' is blank; expected "
                          "a layer's name")
    return out


def unit_columns(units: pd.DataFrame) -> list[str]:
    """The unit-table columns present in this table."""
    return [c for c in UNIT_COLUMNS if c in units.columns]


def layer_keys(units: pd.DataFrame) -> list[str]:
    """The columns that identify a layer: [view,] layer, node [, label]."""
    return [c for c in ("view", "layer", "node", "label") if c in units.columns]


def layer_groups(units: pd.DataFrame) -> Groups:
    """Each layer (per view in multi-view runs) in unit order: its key columns and its unit positions."""
    keys = layer_keys(units)
    return [({k: (v.item() if hasattr(v, "item") else v) for k, v in zip(keys, key)}, part.index.to_numpy())
            for key, part in units.groupby(keys, sort=False)]
