"""The elastic-net path of solver.py fitted from code stores, in memory that does not grow with the samples.

Same objective, same standardisation, same path (lambda grid, bisection of bulk entries, early stop, one feature
per set of identical columns); only the solver differs: proximal SVRG (Xiao & Zhang 2014). Each epoch computes
the full gradient at a snapshot by one pass over the store, shard by shard, then takes proximal steps on
minibatches drawn shard by shard (one shard in memory at a time) with the variance-reduced gradient
`g_B(W) - g_B(W_snapshot) + g(W_snapshot)`. glm-saga's SAGA keeps a table of per-sample gradients (samples x
classes); SVRG keeps two heads and one full gradient, whatever the number of samples.

A fit stops at the same test as FISTA's: the gradient mapping at the snapshot has max-norm <= tol. The step size
is found by backtracking on the first minibatch of each epoch (the minibatch loss's local curvature), and an epoch
that raises the full objective is undone and retried with half the step.

Memory: one shard of codes (code_store.SHARD_BYTES, 64 MiB), its standardised copy, the labels (8 bytes a
sample) and a few [classes, units] heads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..code_store import CodeStore
from .solver import STEP_SHRINK, PathResult, PathStep, Standardizer, _bregman, _prox, check_path, run_path

BATCH = 1024  # minibatch rows of the stochastic steps
CHUNK = 8192  # rows per chunk of a full pass
SKETCH_ROWS = 1024  # rows per chunk of the identical-column pass (its integer copies take 16 bytes a code)
MAX_EPOCHS = 300  # per lam, the path's default: each epoch reads the store twice
MIN_STEPS = 16  # stochastic steps per epoch at least (smaller minibatches on a small store)
STEP_RANGE = 1024  # each epoch's backtracking starts this many times above the last step (each halving is cheap)


def store_standardizer(store: CodeStore, eps: float = 1e-6) -> Standardizer:
    """`Standardizer.fit` of the store's codes, in one pass (float32 like the codes; a constant unit is centred on
    its own value, so it is exactly zero)."""
    mean, std = store.mean_std()
    constant = std < eps
    first = store.rows(np.array([0]))[0].astype(np.float64)
    mean = np.where(constant, first, mean)
    std = np.where(constant, 1.0, std)
    return Standardizer(torch.from_numpy(mean).float(), torch.from_numpy(std).float(), torch.from_numpy(constant))


@dataclass
class StreamProblem:
    """A path problem over code stores: training and validation codes, standardised with `scale`, restricted to
    the units `features` (all by default)."""

    train: CodeStore
    val: CodeStore
    scale: Standardizer
    classes: int
    features: Tensor | None = None
    batch: int = BATCH
    seed: int = 0
    dtype: torch.dtype = torch.float32  # of the codes and heads in the solver; float64 for tight tolerances
    width: int = field(init=False)
    keep: Tensor = field(init=False)

    def __post_init__(self) -> None:
        if self.features is None:
            self.features = torch.arange(self.train.units)
        if self.val.units != self.train.units:
            raise ValueError(f"validation codes have {self.val.units} units, training codes {self.train.units}")
        labels = self.train.labels()
        counts = np.bincount(labels, minlength=self.classes) if len(labels) else np.zeros(self.classes, int)
        if len(counts) > self.classes or (counts == 0).any():
            raise ValueError(f"every class needs at least one training sample and labels in [0, {self.classes}); "
                             f"got counts {counts.tolist()}")
        self.prior = torch.from_numpy(counts / counts.sum())
        self.width = len(self.features)
        self.keep = torch.arange(self.width)
        self.keep = self._first_of_identical_columns()
        self.rng = np.random.default_rng(self.seed)
        # An epoch may raise the objective by rounding alone (the logits are computed in self.dtype).
        self._noise = 16 * torch.finfo(self.dtype).eps

    def _chunks(self, store: CodeStore, rows: int = CHUNK) -> Iterator[tuple[Tensor, Tensor]]:
        """(standardised codes of the kept features, labels) over a store, chunk by chunk."""
        for _, block, labels in store.chunks(rows):
            yield self._prepare(block), torch.from_numpy(labels)

    def _prepare(self, block: np.ndarray) -> Tensor:
        """A block of raw codes (a fresh float32 copy: it is standardised in place) as the solver's features."""
        X = torch.from_numpy(block).sub_(self.scale.mean).div_(self.scale.std)
        columns = self.features[self.keep]
        if not torch.equal(columns, torch.arange(X.shape[1])):
            X = X[:, columns]
        return X.to(self.dtype)

    def _first_of_identical_columns(self, decimals: int = 4) -> Tensor:
        """solver.first_of_identical_columns in one pass: columns equal to `decimals` places have equal random
        integer projections (integer sums do not depend on their order, so a matrix product cannot round them
        apart; overflow wraps alike), and distinct ones almost surely not."""
        generator = torch.Generator().manual_seed(self.seed)
        sketch = torch.zeros(4, self.width, dtype=torch.long)
        for X, _ in self._chunks(self.train, SKETCH_ROWS):
            codes = torch.round(X.double() * 10 ** decimals).long()
            sketch += torch.randint(-(1 << 20), 1 << 20, (4, len(X)), generator=generator) @ codes
        _, inverse = torch.unique(sketch, dim=1, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), self.width, dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(self.width), reduce="amin")
        return first.sort().values

    def full(self, W: Tensor, b: Tensor) -> tuple[float, Tensor, Tensor]:
        """The mean loss and its gradient in W and b at (W, b), in one pass over the training store (float64)."""
        loss, gW, gb = 0.0, torch.zeros(W.shape, dtype=torch.float64), torch.zeros(b.shape, dtype=torch.float64)
        for X, y in self._chunks(self.train):
            z = X @ W.T + b
            loss += (torch.logsumexp(z, dim=1) - z.gather(1, y[:, None])[:, 0]).double().sum().item()
            R = _residual(z, y)
            gW += (R.T @ X).double()
            gb += R.sum(dim=0).double()
        n = self.train.samples
        return loss / n, gW / n, gb / n

    def lambda_max(self, alpha: float) -> float:
        W, b, _ = self.start()
        _, gW, _ = self.full(W, b)
        return gW.abs().max().item() / alpha

    def start(self) -> tuple[Tensor, Tensor, float]:
        W = torch.zeros(self.classes, len(self.keep), dtype=self.dtype)
        return W, self.prior.log().to(self.dtype), 1.0 / (0.5 * (len(self.keep) + 1))  # 1 / L, L from the trace

    def solve(self, lam: float, alpha: float, W: Tensor, b: Tensor, step: float, tol: float, max_iter: int,
              support: Tensor | None = None) -> tuple[Tensor, Tensor, int, bool, float]:
        """Proximal SVRG from (W, b) until the gradient mapping's max-norm at a snapshot is <= tol; with `support`
        (bool [K, len(keep)]) the weights outside it are held at zero."""
        l1, l2 = lam * alpha, lam * (1 - alpha)
        prox = _prox
        if support is not None:
            # Held from the start: the snapshot is the first accepted point, and every epoch must beat its objective.
            W = W * support
            prox = lambda V, a, c: _prox(V, a, c) * support  # noqa: E731
        loss, gW, gb = self.full(W, b)
        value = loss + _penalty(W, l1, l2)
        ceiling = math.inf
        for epoch in range(1, max_iter + 1):
            mapping = (W.double() - prox(W.double() - step * gW, step * l1, step * l2)) / step
            if max(mapping.abs().max().item(), gb.abs().max().item()) <= tol:
                return W, b, epoch - 1, True, step
            W_new, b_new, step = self._epoch(W, b, gW.to(W), gb.to(b), step, ceiling, l1, l2, prox)
            loss_new, gW_new, gb_new = self.full(W_new, b_new)
            value_new = loss_new + _penalty(W_new, l1, l2)
            if value_new > value + self._noise * abs(value):  # the step was too long for these minibatches
                step = ceiling = step * STEP_SHRINK
                continue
            W, b, value, gW, gb = W_new, b_new, value_new, gW_new, gb_new
        return W, b, max_iter, False, step

    def _epoch(self, Ws: Tensor, bs: Tensor, gW: Tensor, gb: Tensor, step: float, ceiling: float, l1: float,
               l2: float, prox: Callable[[Tensor, float, float], Tensor]) -> tuple[Tensor, Tensor, float]:
        """One pass of variance-reduced proximal steps (`prox`) from the snapshot (Ws, bs) with full gradient
        (gW, gb)."""
        W, b = Ws, bs
        labels = self.train.labels()
        # At least MIN_STEPS steps an epoch: with one minibatch an epoch would be one full-gradient step.
        batch = max(1, min(self.batch, math.ceil(self.train.samples / MIN_STEPS)))
        first = True
        for shard in self.rng.permutation(self.train.layout.shards):
            start, stop = self.train.layout.rows(int(shard))
            X_shard = self._prepare(self.train.shard(int(shard)))
            y_shard = torch.from_numpy(labels[start:stop])
            order = torch.from_numpy(self.rng.permutation(stop - start))
            for i in range(0, stop - start, batch):
                rows = order[i:i + batch]
                X, y = X_shard[rows], y_shard[rows]
                z = X @ W.T + b
                R = _residual(z, y) - _residual(X @ Ws.T + bs, y)
                vW, vb = R.T @ X / len(y) + gW, R.sum(dim=0) / len(y) + gb
                if first:  # the local curvature of this minibatch's loss sets the step for the epoch
                    step = _backtrack(X, z, W, vW, vb, min(STEP_RANGE * step, ceiling), l1, l2, prox)
                    first = False
                W, b = prox(W - step * vW, step * l1, step * l2), b - step * vb
        return W, b, step

    def accuracy(self, W: Tensor, b: Tensor) -> tuple[float, float]:
        return _accuracy(self._chunks(self.train), W, b), _accuracy(self._chunks(self.val), W, b)


def correlations(store: CodeStore, scale: Standardizer) -> np.ndarray:
    """The correlations [units, units] of the standardised codes (mean of products, float64), in one pass: what
    `groups.correlation_groups` reads, in units x units x 8 bytes."""
    total = np.zeros((store.units, store.units))
    for _, block, _ in store.chunks(CHUNK):
        X = scale(torch.from_numpy(block))
        total += (X.T @ X).double().numpy()
    return total / max(store.samples, 1)


def _residual(z: Tensor, y: Tensor) -> Tensor:
    """softmax(z) - onehot(y): the gradient of the summed cross-entropy in the logits."""
    R = torch.softmax(z, dim=1)
    R[torch.arange(len(y)), y] -= 1
    return R


def _penalty(W: Tensor, l1: float, l2: float) -> float:
    W = W.double()
    return l1 * W.abs().sum().item() + l2 / 2 * W.square().sum().item()


def _backtrack(X: Tensor, z: Tensor, W: Tensor, vW: Tensor, vb: Tensor, step: float, l1: float, l2: float,
               prox: Callable[[Tensor, float, float], Tensor]) -> float:
    """The largest step (from `step`, halving) whose proximal move keeps the minibatch loss under its quadratic
    model at the current head (logits z): the step FISTA's backtracking would take on this minibatch."""
    p = torch.softmax(z, dim=1)
    for _ in range(60):
        dW, db = prox(W - step * vW, step * l1, step * l2) - W, -step * vb
        quad = (dW.double().square().sum() + db.double().square().sum()).item() / (2 * step)
        if _bregman(p, X @ dW.T + db) <= quad:
            break
        step *= STEP_SHRINK
    return step


def _accuracy(chunks: Iterator[tuple[Tensor, Tensor]], W: Tensor, b: Tensor) -> float:
    hits = total = 0
    for X, y in chunks:
        hits += int((torch.argmax(X @ W.T + b, dim=1) == y).sum())
        total += len(y)
    return hits / max(total, 1)


@torch.no_grad()
def stream_path(train: CodeStore, val: CodeStore, classes: int, *, scale: Standardizer | None = None,
                features: Tensor | None = None, alpha: float = 0.99, steps: int = 50, ratio: float = 1e-2,
                rtol: float = 1e-2, max_iter: int = MAX_EPOCHS, patience: int | None = 5, batch: int = BATCH,
                seed: int = 0, dtype: torch.dtype = torch.float32,
                progress: Callable[[int, PathStep], None] | None = None) -> PathResult:
    """`solver.elastic_net_path` over the codes of two stores (standardised with `scale`, default the training
    store's statistics; restricted to the units `features`), by proximal SVRG in `dtype`; iterations count epochs."""
    check_path(alpha, steps, ratio, rtol, max_iter, patience)
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    problem = StreamProblem(train, val, scale if scale is not None else store_standardizer(train), classes,
                            features, batch, seed, dtype)
    return run_path(problem, alpha=alpha, steps=steps, ratio=ratio, rtol=rtol, max_iter=max_iter, patience=patience,
                    progress=progress)
