"""How much a unit matters to a class: the head's raw weight (the paper's reading) or its importance.

A weight multiplies a code; a code that hardly varies (a soft `max` code that sits at 0.99 on every
input) adds a near-constant to the logit whatever its weight, and a code that varies a lot moves the
logit by its weight times that variation. Importance puts the code's scale in:

    importance[c, u] = W[c, u] * std(z_u)         (std over the validation split)

and one input's contribution is read relative to the mean code, the mean's part folded into the bias,
so the logit still reconstructs exactly:

    logit_c(x) = sum_u W[c, u] * (z_u(x) - mean z_u) + (b_c + sum_u W[c, u] * mean z_u)

Which ranking tells a class's causal units better is measured by `nv ablate` (docs/explanations.md).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..runs.run import Run
from ..training.predict import ProgressFn
from .code_cache import Codes, split_codes
from .head import Head
from .settings import DEFAULT_RANK, RANKS, check_rank  # noqa: F401  (RANKS, DEFAULT_RANK: re-exported)


@dataclass(frozen=True)
class CodeStats:
    """Each unit's mean and standard deviation of its code over one split (float64 [units])."""

    mean: np.ndarray
    std: np.ndarray
    split: str
    samples: int

    @classmethod
    def of(cls, codes: Codes) -> "CodeStats":
        """The statistics of one split's codes."""
        mean, std = codes.mean_std()
        return cls(mean, std, codes.split, len(codes.labels))


def code_stats(run: Run, *, device: str = "auto", batch_size: int = 128, workers: int = 0, trust_code: bool = False,
               progress: ProgressFn | None = None) -> CodeStats:
    """The mean and std of every unit's code over the run's validation split (codes cached in the run)."""
    return CodeStats.of(split_codes(run, "val", device=device, batch_size=batch_size, workers=workers,
                                    trust_code=trust_code, progress=progress))


def scores(head: Head, rank: str, stats: CodeStats | None = None) -> np.ndarray:
    """[classes, units]: the head's weight (`weight`) or weight times the code's std (`importance`)."""
    if check_rank(rank) == "weight":
        return head.weight
    if stats is None or stats.std.shape != (head.weight.shape[1],):
        raise ValueError("importance needs the codes' std over the validation split, one value per unit")
    return head.weight * stats.std


def ranked_head(head: Head, rank: str, stats: CodeStats | None = None) -> Head:
    """`head` with its weights replaced by the ranking's scores, for the summaries that read weights."""
    return head if rank == "weight" else replace(head, weight=scores(head, rank, stats))


def needs_codes(rank: str) -> bool:
    """Whether the ranking reads the codes of the validation split."""
    return check_rank(rank) != "weight"
