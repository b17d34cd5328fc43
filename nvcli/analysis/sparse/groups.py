"""Near-copies are one feature: units whose standardised training codes correlate with |r| >= a threshold form a
group, the sparse head's solver sees one feature per group, and the head stores the group's weight on its
representative (its lowest-numbered unit).

Groups are formed greedily in unit order: the lowest unit not yet in a group starts one, and every later unit not yet
in a group whose |correlation| with it reaches the threshold joins it. So every member is within the threshold of its
representative (no chains of "close to a close unit"), and the grouping does not depend on anything but the codes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..settings import DEFAULT_GROUP_CORR

BLOCK = 1024  # candidate units whose correlations with every unit are computed at once ([BLOCK, units] floats)


@dataclass(frozen=True)
class UnitGroups:
    """Which unit represents each unit's group (itself when it is alone) and its correlation with that unit."""

    representative: np.ndarray  # int64 [units]
    corr: np.ndarray  # float64 [units]: correlation with the representative (1 for a representative)

    @classmethod
    def single(cls, units: int) -> UnitGroups:
        """Every unit its own group."""
        return cls(np.arange(units, dtype=np.int64), np.ones(units))

    @property
    def representatives(self) -> np.ndarray:
        """The units that represent a group (ascending): the features the solver sees."""
        return np.flatnonzero(self.representative == np.arange(len(self.representative)))

    def sizes(self) -> np.ndarray:
        """[units]: how many units each unit's group holds."""
        return np.bincount(self.representative, minlength=len(self.representative))[self.representative]

    def members(self, unit: int) -> np.ndarray:
        """The units of `unit`'s group, its representative first (ascending unit numbers)."""
        return np.flatnonzero(self.representative == self.representative[unit])

    def as_record(self) -> list[list[float]]:
        """The groups of more than one unit as `[representative, member, corr, member, corr, ...]` lists
        (heads/<name>.json `groups`); units not listed are alone."""
        out = []
        for rep in self.representatives:
            others = np.flatnonzero(self.representative == rep)
            others = others[others != rep]
            if len(others):
                out.append([int(rep)] + [v for u in others for v in (int(u), round(float(self.corr[u]), 6))])
        return out

    @classmethod
    def from_record(cls, units: int, record: list[list[float]]) -> UnitGroups:
        """The groups written by `as_record` over `units` units (ValueError when they do not fit)."""
        representative, corr = np.arange(units, dtype=np.int64), np.ones(units)
        for group in record:
            if not isinstance(group, list) or len(group) < 3 or len(group) % 2 == 0:
                raise ValueError(f"a group must be [representative, member, corr, ...], got {group!r}")
            rep, pairs = int(group[0]), group[1:]
            for unit, r in zip(pairs[::2], pairs[1::2]):
                unit = int(unit)
                if not 0 <= rep < unit < units or representative[unit] != unit:
                    raise ValueError(f"group of unit {rep}: member {unit} is out of range or already grouped")
                representative[unit], corr[unit] = rep, float(r)
        return cls(representative, corr)


@torch.no_grad()
def correlation_groups(X: Tensor, threshold: float | None = DEFAULT_GROUP_CORR) -> UnitGroups:
    """Group the columns of standardised codes X [n, units] (zero mean, unit variance; constant columns all
    zero) whose |correlation| reaches `threshold`; None: every unit alone."""
    n, d = X.shape
    return greedy_groups(d, threshold, lambda start, stop: (X[:, start:stop].T @ X / n).cpu().double().numpy())


def greedy_groups(units: int, threshold: float | None,
                  correlations: Callable[[int, int], np.ndarray]) -> UnitGroups:
    """The groups of `units` units whose |correlation| reaches `threshold` (None: every unit alone), given
    `correlations(start, stop)`: the correlations [stop - start, units] of units start..stop-1 with every unit."""
    if threshold is None:
        return UnitGroups.single(units)
    representative = np.full(units, -1, dtype=np.int64)
    corr = np.ones(units)
    for start in range(0, units, BLOCK):
        stop = min(start + BLOCK, units)
        if (representative[start:stop] >= 0).all():
            continue
        block = correlations(start, stop)
        for i in range(start, stop):
            if representative[i] >= 0:
                continue
            row = block[i - start]
            joins = np.flatnonzero((np.abs(row) >= threshold) & (representative < 0))
            joins = joins[joins > i]
            representative[i] = i
            representative[joins], corr[joins] = i, row[joins]
    return UnitGroups(representative, corr)
