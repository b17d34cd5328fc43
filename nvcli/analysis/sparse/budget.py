"""A budget per class: each class keeps the first K features (unit groups) to enter its row along the path.

The path's penalty is shared by every class, so one λ gives some classes two units and others forty; reading the
path row by row instead gives each class its own support, within its own budget. The supports are then refitted
together (sparsify.py), since rows taken at different λ were shrunk by different amounts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...errors import NvError
from .solver import PathResult


@dataclass(frozen=True)
class Budget:
    """Each class's support (bool [classes, features]) and the step at which its last kept feature entered."""

    support: Tensor
    entered: list[int]  # per class; 0 when the class kept nothing

    @property
    def step(self) -> int:
        """The last step the supports were read from."""
        return max(self.entered)


def class_budget(path: PathResult, units_per_class: int) -> Budget:
    """Per class, the first `units_per_class` features to get a nonzero weight in its row along the path; features
    entering at the same step are taken in the order of their |weight| there (larger first)."""
    first = path.steps[0].weight()
    classes, features = first.shape
    entry = torch.full((classes, features), len(path.steps), dtype=torch.long)
    size = torch.zeros(classes, features, dtype=torch.float64)
    for i, step in enumerate(path.steps):
        W = step.weight()
        new = (W != 0) & (entry == len(path.steps))
        entry[new] = i
        size[new] = W[new].abs().double()
    if bool((entry == len(path.steps)).all()):
        raise NvError("no unit entered the sparse head's path (every step is the empty head); fit further along it "
                      "with a smaller lambda_ratio, or patience None")
    support = torch.zeros(classes, features, dtype=torch.bool)
    entered = []
    for c in range(classes):
        candidates = torch.nonzero(entry[c] < len(path.steps)).flatten()
        # Entry step first, then the larger weight: one sort over a key that orders both.
        order = sorted(candidates.tolist(), key=lambda g: (int(entry[c, g]), -float(size[c, g])))[:units_per_class]
        support[c, order] = True
        entered.append(max((int(entry[c, g]) for g in order), default=0))
    return Budget(support, entered)
