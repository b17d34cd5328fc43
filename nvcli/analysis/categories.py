"""Concept categories of a head's units (a dissection's labels: color, texture, object, ...): how the head spreads its
weight over them, and what removing every unit of a category costs (paper case study 2: does a stylised network
lean less on texture and colour units?).

A unit belongs to the category of its dissection concept when the dissection found it interpretable, else to `none`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import NvError
from ..runs import files
from ..runs.run import Run
from .code_cache import split_codes
from .head import Head
from .importance import CodeStats
from .settings import Compute

NONE = "none"  # units the dissection did not find interpretable
SHARE_COLUMNS = ["category", "units", "unit_share", "weight_share", "pos_share", "neg_share"]
ABLATION_COLUMNS = ["category", "units", "accuracy", "removed_accuracy", "drop"]


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


def category_ablation(run: Run, head: Head, categories: np.ndarray, *, removed: Sequence[Sequence[str]] | None = None,
                      compute: Compute = Compute(), trust_code: bool = False) -> pd.DataFrame:
    """The head's validation accuracy with every unit of a category (or of a group of categories, `removed`; default:
    each category alone) at its validation mean; columns: ABLATION_COLUMNS (`category`: the group, '+'-joined)."""
    codes = split_codes(run, "val", device=compute.device, batch_size=compute.batch_size, workers=compute.workers,
                        trust_code=trust_code)
    z, labels = np.asarray(codes.z, dtype=np.float64), codes.labels
    reference = CodeStats.of(codes).mean
    logits = z @ head.weight.T + head.bias
    accuracy = float((logits.argmax(1) == labels).mean())
    rows = []
    for group in removed or [[c] for c in sorted(set(categories))]:
        units = np.flatnonzero(np.isin(categories, list(group)))
        changed = logits - (z[:, units] - reference[units]) @ head.weight[:, units].T
        left = float((changed.argmax(1) == labels).mean())
        rows.append({"category": "+".join(group), "units": len(units), "accuracy": accuracy, "removed_accuracy": left,
                     "drop": accuracy - left})
    return pd.DataFrame(rows, columns=ABLATION_COLUMNS)


def labelled_categories(run: Run, head: str = files.DENSE_HEAD) -> np.ndarray | None:
    """The category of each of the run's units from its saved dissection (files.concept_heads), or None before
    nv dissect-map ran."""
    from .dissect.concepts import ConceptMap

    labels = ConceptMap.labels_for(run.dir, head)
    return None if labels is None else unit_categories(labels, len(run.units()))
