"""The unit table (units.csv): one row per unit, `unit,[view,]layer,node,channel`, grouped by layer.

Pandas and numpy only, so readers of a run (figures, the report) need no torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .units import Layer

UNIT_COLUMNS = ["unit", "view", "layer", "node", "channel"]  # `view` only in multi-view runs
Groups = list[tuple[dict[str, object], np.ndarray]]


def units_frame(layers: "list[Layer]", view: int | None = None) -> pd.DataFrame:
    """One row per unit: `unit,layer,node,channel` (plus `view` for multi-view models)."""
    rows = [
        {"unit": layer.offset + c, "layer": layer.index, "node": layer.node, "channel": c}
        for layer in layers
        for c in range(layer.channels)
    ]
    frame = pd.DataFrame(rows, columns=["unit", "layer", "node", "channel"])
    if view is not None:
        frame.insert(1, "view", view)
    return frame


def unit_columns(units: pd.DataFrame) -> list[str]:
    """The unit-table columns present in this table."""
    return [c for c in UNIT_COLUMNS if c in units.columns]


def layer_keys(units: pd.DataFrame) -> list[str]:
    """The columns that identify a layer: (view, layer, node) or (layer, node)."""
    return [c for c in ("view", "layer", "node") if c in units.columns]


def layer_groups(units: pd.DataFrame) -> Groups:
    """Each layer (per view in multi-view runs) in unit order: its key columns and its unit positions."""
    keys = layer_keys(units)
    return [({k: (v.item() if hasattr(v, "item") else v) for k, v in zip(keys, key)}, part.index.to_numpy())
            for key, part in units.groupby(keys, sort=False)]
