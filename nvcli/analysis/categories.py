"""Concept categories of a head's units (a dissection's labels: color, texture, object, ...): how the head spreads its
weight over them (paper case study 2: does a stylised network lean less on texture and colour units?); removing a
category's units is an ablation (AblationOptions.categories, analysis/ablation.py).

A unit belongs to the category of its dissection concept when the dissection found it interpretable, else to `none`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import NvError
from ..runs import files
from ..runs.run import Run

NONE = "none"  # units the dissection did not find interpretable
SHARE_COLUMNS = ["category", "units", "unit_share", "weight_share", "pos_share", "neg_share"]


def unit_categories(labels: pd.DataFrame, units: int) -> np.ndarray:
    """Each unit's category from a dissection's concepts_units table (`interpretable`, `category`), `none` where the
    unit is not interpretable."""
    if len(labels) != units or not {"interpretable", "category"} <= set(labels.columns):
        raise NvError(f"the dissection labels {len(labels)} units, the head has {units}; run the dissection again")
    keep = labels["interpretable"].astype(str).str.lower().isin(("true", "1"))
    return np.where(keep, labels["category"].astype(str).to_numpy(), NONE)


def category_shares(weight: np.ndarray, categories: np.ndarray) -> pd.DataFrame:
    """Per category (all classes pooled): its units, their share of the units, and their share of the head's |weight|,
    positive weight and negative weight [classes, units]; columns: SHARE_COLUMNS."""
    magnitude, positive, negative = np.abs(weight).sum(0), weight.clip(min=0).sum(0), (-weight).clip(min=0).sum(0)
    rows = []
    for name in sorted(set(categories), key=lambda c: (c == NONE, c)):
        keep = categories == name
        rows.append({"category": name, "units": int(keep.sum()), "unit_share": keep.mean(),
                     **{column: part[keep].sum() / total if (total := part.sum()) > 0 else 0.0
                        for column, part in (("weight_share", magnitude), ("pos_share", positive),
                                             ("neg_share", negative))}})
    return pd.DataFrame(rows, columns=SHARE_COLUMNS)


def labelled_categories(run: Run, head: str = files.DENSE_HEAD) -> np.ndarray | None:
    """The category of each of the run's units from its saved dissection (files.concept_heads), or None before
    nv dissect-map ran."""
    from .dissect.concepts import ConceptMap

    labels = ConceptMap.labels_for(run, head)
    return None if labels is None else unit_categories(labels, len(run.units()))
