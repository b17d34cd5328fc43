"""Elastic-net multinomial linear heads over standardised unit codes, fitted along a regularisation path.

Objective (the glmnet / glm-saga convention, bias unpenalised), for codes X [n, d], labels y in {0..K-1}:

    mean_i CE(X W^T + b, y)_i + lam * (alpha * |W|_1 + (1 - alpha) / 2 * |W|_F^2)

scikit-learn's LogisticRegression(C, l1_ratio, solver="saga") minimises the same problem with
lam = 1 / (n * C) and alpha = l1_ratio. Solver: full-batch FISTA (accelerated proximal gradient) with
backtracking, adaptive momentum restart and warm starts along the path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import Tensor

STEP_GROWTH = 1.1
STEP_SHRINK = 0.5
REFRESH_EVERY = 50


@dataclass(frozen=True)
class Standardizer:
    """Per-unit mean and std of training codes; constant units get std 1 (and are exactly 0 once centred)."""

    mean: Tensor
    std: Tensor
    constant: Tensor

    @classmethod
    def fit(cls, X: Tensor, eps: float = 1e-6) -> Standardizer:
        """Mean and population std of each column of X [n, d]; a column with std < eps is constant."""
        _check_codes(X, "X")
        std, mean = torch.std_mean(X, dim=0, correction=0)
        constant = std < eps
        # A constant column's own value (not its rounded mean) makes it exactly zero after centring.
        mean = torch.where(constant, X[0], mean)
        return cls(mean, torch.where(constant, torch.ones_like(std), std), constant)

    def __call__(self, X: Tensor) -> Tensor:
        """(X - mean) / std."""
        if X.dim() != 2 or X.shape[1] != self.mean.numel():
            raise ValueError(f"codes must have shape [n, {self.mean.numel()}], got {list(X.shape)}")
        return (X - self.mean.to(X)) / self.std.to(X)


@dataclass(frozen=True)
class PathStep:
    """One point of the path: the head over standardised codes and how sparse and accurate it is."""

    lam: float
    weight_stored: Tensor
    bias: Tensor
    nonzero_mean: float
    nonzero_max: int
    units: int
    train_acc: float
    val_acc: float
    iterations: int
    converged: bool

    def weight(self) -> Tensor:
        """The dense [K, d] weight on the CPU."""
        return self.weight_stored.to_dense()


@dataclass(frozen=True)
class PathResult:
    """The fitted path, from lam_max (all-zero weights) downwards, and the step with the best val accuracy."""

    lambda_max: float
    alpha: float
    steps: list[PathStep]
    best: int
    stopped_early: bool


def fold(W_std: Tensor, b_std: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """The head (W, b) over raw codes with W z + b == W_std ((z - mean) / std) + b_std."""
    shapes_fit = b_std.shape == (W_std.shape[0],) and mean.shape == (W_std.shape[1],) and std.shape == mean.shape
    if W_std.dim() != 2 or not shapes_fit:
        raise ValueError(f"fold needs W [K, d], b [K], mean [d], std [d]; got {list(W_std.shape)}, "
                         f"{list(b_std.shape)}, {list(mean.shape)}, {list(std.shape)}")
    W = W_std / std.to(W_std)
    return W, b_std - W @ mean.to(W_std)


@torch.no_grad()
def lambda_max(X: Tensor, y: Tensor, alpha: float, classes: int | None = None) -> float:
    """Smallest lam at which the optimal W is all zero: max |X^T (Y - prior)| / (n * alpha), bias fitted."""
    _check_alpha(alpha)
    K = _check_data(X, y, classes)
    # At W = 0 the optimal bias puts softmax at the class prior, so the gradient in W is X^T (prior - Y) / n.
    Y = _one_hot(y, K, X.dtype)
    grad = (Y - Y.mean(dim=0)).T @ X
    return grad.abs().max().item() / (X.shape[0] * alpha)


@torch.no_grad()
def fit(X: Tensor, y: Tensor, lam: float, alpha: float, W0: Tensor | None = None, b0: Tensor | None = None, *,
        classes: int | None = None, tol: float = 1e-4, max_iter: int = 5000,
        support: Tensor | None = None) -> tuple[Tensor, Tensor, int]:
    """Minimise the objective at one lam from (W0, b0) (default zero) until the gradient mapping's max-norm <= tol.

    With `support` (bool [K, d]) the weights outside it are held at zero (the refit of a sparse head's units).
    Returns W [K, d], b [K] and the iterations used; iterations == max_iter means tol was (probably) not met.
    """
    _check_alpha(alpha)
    _check_lam(lam)
    _check_solver(tol, max_iter)
    K = _check_data(X, y, classes)
    W0, b0 = _start(X, K, W0, b0)
    if support is not None:
        if support.shape != W0.shape or support.dtype != torch.bool or support.device != X.device:
            raise ValueError(f"support must be a bool tensor {list(W0.shape)} on {X.device}, got "
                             f"{support.dtype} {list(support.shape)} on {support.device}")
        W0 = W0 * support
    W, b, iterations, _, _ = _fista(X, _one_hot(y, K, X.dtype), lam, alpha, W0, b0, _initial_step(X), tol, max_iter,
                                    support)
    return W, b, iterations


@torch.no_grad()
def elastic_net_path(X_train: Tensor, y_train: Tensor, X_val: Tensor, y_val: Tensor, *, alpha: float = 0.99,
                     steps: int = 50, ratio: float = 1e-2, rtol: float = 1e-2, max_iter: int = 5000,
                     patience: int | None = 5, classes: int | None = None,
                     progress: Callable[[int, PathStep], None] | None = None) -> PathResult:
    """Fit `steps` lams from lambda_max down to ratio * lambda_max (log-spaced), each warm-started from the last.

    Each fit stops when the gradient mapping's max-norm is <= rtol * lam * alpha (a fraction of the L1 threshold).

    Where units enter in bulk between two grid lams (mean units per class more than doubles, by more than 2),
    the gap is bisected (geometric mean of the lams) until they enter gradually or the lams are within 0.1 %
    of each other, at most `steps` extra fits in all: strongly correlated codes can otherwise jump from no unit
    to dozens per class in one grid step, leaving no head of a few units to choose.

    Columns identical over the training codes (units saturated into the same class indicator, say) are one
    feature: the penalty cannot choose between copies and would spread the weight over all of them, so only the
    first of each set (lowest index) gets weights.

    With patience set, stop once val accuracy has not improved for `patience` consecutive steps, counting only
    after the first step that beats the all-zero head (which predicts the majority class): the first units to
    enter are often too weak to change any prediction, and that flat start is no sign of saturation.
    """
    check_path(alpha, steps, ratio, rtol, max_iter, patience)
    K = _check_data(X_train, y_train, classes)
    _check_codes(X_val, "X_val")
    _check_labels(X_val, y_val, K, "X_val", "y_val")
    if X_val.shape[1] != X_train.shape[1] or X_val.device != X_train.device or X_val.dtype != X_train.dtype:
        raise ValueError(f"X_val must match X_train in width, device and dtype: got {list(X_val.shape)} "
                         f"{X_val.dtype} on {X_val.device}, X_train {list(X_train.shape)} {X_train.dtype} "
                         f"on {X_train.device}")

    keep = first_of_identical_columns(X_train)
    problem = InMemoryProblem(X_train[:, keep], _one_hot(y_train, K, X_train.dtype), y_train, X_val[:, keep], y_val,
                              X_train.shape[1], keep)
    return run_path(problem, alpha=alpha, steps=steps, ratio=ratio, rtol=rtol, max_iter=max_iter, patience=patience,
                    progress=progress)


class PathProblem(Protocol):
    """What fitting a path needs of its data: the fit at one lam and the accuracies of a head, over the features
    `keep` of `width` (the others get no weight)."""

    width: int
    keep: Tensor

    def lambda_max(self, alpha: float) -> float:
        """The smallest lam at which the optimal weights are all zero."""

    def start(self) -> tuple[Tensor, Tensor, float]:
        """The solution at lambda_max (zero weights [K, len(keep)], the bias at the log class prior) and a first
        step size."""

    def solve(self, lam: float, alpha: float, W: Tensor, b: Tensor, step: float, tol: float,
              max_iter: int) -> tuple[Tensor, Tensor, int, bool, float]:
        """The solution at lam from (W, b), its iterations, whether tol was met, and the step size to go on with."""

    def accuracy(self, W: Tensor, b: Tensor) -> tuple[float, float]:
        """The training and validation accuracy of the head (W, b)."""


@dataclass(frozen=True)
class InMemoryProblem:
    """Codes held in memory (on any device): FISTA over the training codes."""

    X: Tensor  # [n, len(keep)]
    Y: Tensor  # one-hot labels [n, K]
    y: Tensor
    X_val: Tensor
    y_val: Tensor
    width: int
    keep: Tensor

    def lambda_max(self, alpha: float) -> float:
        return lambda_max(self.X, self.y, alpha, self.Y.shape[1])

    def start(self) -> tuple[Tensor, Tensor, float]:
        W = torch.zeros(self.Y.shape[1], self.X.shape[1], dtype=self.X.dtype, device=self.X.device)
        return W, self.Y.mean(dim=0).log(), _initial_step(self.X)

    def solve(self, lam: float, alpha: float, W: Tensor, b: Tensor, step: float, tol: float,
              max_iter: int) -> tuple[Tensor, Tensor, int, bool, float]:
        return _fista(self.X, self.Y, lam, alpha, W, b, step, tol, max_iter)

    def accuracy(self, W: Tensor, b: Tensor) -> tuple[float, float]:
        return accuracy(self.X, self.y, W, b), accuracy(self.X_val, self.y_val, W, b)


def run_path(problem: PathProblem, *, alpha: float, steps: int, ratio: float, rtol: float, max_iter: int,
             patience: int | None, progress: Callable[[int, PathStep], None] | None = None) -> PathResult:
    """The path of `elastic_net_path` over any problem (arguments as there, already checked)."""
    top = problem.lambda_max(alpha)
    lams = torch.logspace(0, math.log10(ratio), steps, dtype=torch.float64).mul(top).tolist()
    # At lambda_max the solution is known exactly (rounding in a solver could leave a 1e-17 weight): no weights,
    # and the bias at the log class prior.
    W, b, t = problem.start()
    K = W.shape[0]
    iterations, converged = 0, True
    path: list[PathStep] = []
    best, since_best, refinements = 0, 0, 0
    pending = lams[::-1]  # a stack: the next lam on top
    while pending:
        lam = pending.pop()
        W_lam, b_lam, t_lam = W, b, t
        if path:
            W_lam, b_lam, iterations, converged, t_lam = problem.solve(lam, alpha, W, b, t, rtol * lam * alpha,
                                                                       max_iter)
        nonzero = (W_lam != 0).sum(dim=1)
        mean_units = nonzero.double().mean().item()
        if path and refinements < steps and lam < path[-1].lam * (1 - 1e-3) and \
                mean_units > path[-1].nonzero_mean + max(2.0, path[-1].nonzero_mean):
            pending += [lam, math.sqrt(lam * path[-1].lam)]  # fit the midpoint first, then lam again
            refinements += 1
            continue
        W, b, t = W_lam, b_lam, t_lam
        full = W.new_zeros(K, problem.width)
        full[:, problem.keep] = W
        train_acc, val_acc = problem.accuracy(W, b)
        step = PathStep(
            lam=lam, weight_stored=_compact(full), bias=b.cpu(), nonzero_mean=mean_units,
            nonzero_max=int(nonzero.max().item()), units=int((W != 0).any(dim=0).sum().item()),
            train_acc=train_acc, val_acc=val_acc, iterations=iterations, converged=converged)
        path.append(step)
        i = len(path) - 1
        if progress is not None:
            progress(i, step)
        if step.val_acc > path[best].val_acc:
            best, since_best = i, 0
        elif best > 0:
            since_best += 1
        if patience is not None and since_best >= patience:
            return PathResult(top, alpha, path, best, stopped_early=bool(pending))
    return PathResult(top, alpha, path, best, stopped_early=False)


def first_of_identical_columns(X: Tensor, decimals: int = 4) -> Tensor:
    """The index of the first column of every set of columns of X equal to `decimals` places (float32 codes agree to
    about 1e-7; standardised, a few units), ascending."""
    _, inverse = torch.unique(X.round(decimals=decimals), dim=1, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), X.shape[1], dtype=torch.long, device=X.device)
    first.scatter_reduce_(0, inverse, torch.arange(X.shape[1], device=X.device), reduce="amin")
    return first.sort().values


def _fista(X: Tensor, Y: Tensor, lam: float, alpha: float, W: Tensor, b: Tensor, t: float, tol: float,
           max_iter: int, support: Tensor | None = None) -> tuple[Tensor, Tensor, int, bool, float]:
    """FISTA from (W, b) with step t; returns the solution, iterations, whether tol was met, and the last step.

    `support` (bool [K, d]) keeps the weights outside it at zero: the prox of the penalty plus that constraint.
    """
    n = X.shape[0]
    l1, l2 = lam * alpha, lam * (1 - alpha)
    z = X @ W.T + b
    Wy, by, zy, momentum = W, b, z, 1.0
    for it in range(1, max_iter + 1):
        p = torch.softmax(zy, dim=1)
        R = (p - Y) / n
        gW, gb = R.T @ X, R.sum(dim=0)
        t *= STEP_GROWTH
        while True:
            W_new = _prox(Wy - t * gW, t * l1, t * l2)
            if support is not None:
                W_new = W_new * support
            b_new = by - t * gb
            dW, db = W_new - Wy, b_new - by
            dz = _logit_change(X, dW, db)
            quad = (dW.double().square().sum() + db.double().square().sum()).item() / (2 * t)
            if _bregman(p, dz) <= quad:
                break
            t *= STEP_SHRINK
        if max(dW.abs().max().item(), db.abs().max().item()) <= tol * t:
            return W_new, b_new, it, True, t
        z_new = zy + dz
        if it % REFRESH_EVERY == 0:
            # The logits are carried by linear updates; recompute them now and then so rounding cannot drift. Both
            # ends of the momentum step: a stale previous z would turn its error into a velocity that momentum near 1
            # amplifies ~1/(1 - beta)-fold per refresh (the iterates then diverge after a few hundred steps).
            z_new = X @ W_new.T + b_new
            z = X @ W.T + b
        # Restart momentum when the gradient mapping points against the last move (O'Donoghue & Candes 2015).
        if (dW * (W_new - W)).sum() + (db * (b_new - b)).sum() < 0:
            momentum, Wy, by, zy = 1.0, W_new, b_new, z_new
        else:
            following = (1 + math.sqrt(1 + 4 * momentum * momentum)) / 2
            beta = (momentum - 1) / following
            momentum = following
            Wy, by, zy = W_new + beta * (W_new - W), b_new + beta * (b_new - b), z_new + beta * (z_new - z)
        W, b, z = W_new, b_new, z_new
    return W, b, max_iter, False, t


def _logit_change(X: Tensor, dW: Tensor, db: Tensor) -> Tensor:
    """X dW^T + db, reading only the columns of X whose weights changed (few, once the head is sparse)."""
    cols = torch.nonzero((dW != 0).any(dim=0)).flatten()
    if 2 * cols.numel() > dW.shape[1]:
        return X @ dW.T + db
    return X.index_select(1, cols) @ dW.index_select(1, cols).T + db


def _compact(W: Tensor) -> Tensor:
    """A CPU copy of W: sparse COO (20 bytes a nonzero) when that is smaller than dense (4 or 8 bytes an entry)."""
    W = W.cpu()
    nonzero = int((W != 0).sum())
    return W.to_sparse() if nonzero * (16 + W.element_size()) < W.numel() * W.element_size() else W.clone()


def _prox(V: Tensor, l1: float, l2: float) -> Tensor:
    """Proximal map of l1 * |W|_1 + l2 / 2 * |W|_F^2: soft-threshold, then shrink."""
    return torch.sign(V) * torch.clamp(V.abs() - l1, min=0) / (1 + l2)


def _bregman(p: Tensor, dz: Tensor) -> float:
    """mean_i [lse(z_i + dz_i) - lse(z_i) - p_i . dz_i] with p = softmax(z), free of cancellation (float64)."""
    p, dz = p.double(), dz.double()
    # lse is shift-invariant, so centre dz under p; then lse(z + dz) - lse(z) = log(1 + sum p (expm1(dz) - dz)).
    dz = dz - (p * dz).sum(dim=1, keepdim=True)
    return torch.log1p((p * (torch.expm1(dz) - dz)).sum(dim=1)).mean().item()


def _initial_step(X: Tensor) -> float:
    """A safe first step, 1 / L with L = |[X, 1]|_F^2 / (2 n) >= the loss's curvature; backtracking grows it."""
    n = X.shape[0]
    return 2 * n / (torch.linalg.vector_norm(X).item() ** 2 + n)


def _start(X: Tensor, K: int, W0: Tensor | None, b0: Tensor | None) -> tuple[Tensor, Tensor]:
    """The starting point: zeros unless given, checked against X's width, device and dtype."""
    d = X.shape[1]
    W0 = torch.zeros(K, d, dtype=X.dtype, device=X.device) if W0 is None else W0
    b0 = torch.zeros(K, dtype=X.dtype, device=X.device) if b0 is None else b0
    for name, value, shape in (("W0", W0, (K, d)), ("b0", b0, (K,))):
        if tuple(value.shape) != shape or value.device != X.device or value.dtype != X.dtype:
            raise ValueError(f"{name} must be {list(shape)} {X.dtype} on {X.device}, "
                             f"got {list(value.shape)} {value.dtype} on {value.device}")
    return W0, b0


def accuracy(X: Tensor, y: Tensor, W: Tensor, b: Tensor) -> float:
    """Fraction of rows whose argmax logit is the label."""
    return (torch.argmax(X @ W.T + b, dim=1) == y).double().mean().item()


def _one_hot(y: Tensor, K: int, dtype: torch.dtype) -> Tensor:
    """[n, K] indicator of the labels."""
    return torch.nn.functional.one_hot(y, K).to(dtype)


def _check_codes(X: Tensor, name: str) -> None:
    """X must be a non-empty, finite float32/float64 matrix."""
    if not isinstance(X, Tensor) or X.dim() != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        shape = list(X.shape) if isinstance(X, Tensor) else type(X).__name__
        raise ValueError(f"{name} must be a non-empty 2-D tensor [samples, units], got {shape}")
    if X.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64, got {X.dtype}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_labels(X: Tensor, y: Tensor, K: int | None, x_name: str, y_name: str) -> None:
    """y must be integer labels >= 0 (and < K when given), one per row of X, on X's device."""
    if not isinstance(y, Tensor) or y.dim() != 1 or y.shape[0] != X.shape[0]:
        shape = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"{y_name} must be a 1-D tensor with one label per row of {x_name} "
                         f"({X.shape[0]}), got {shape}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"{y_name} must hold integer class indices, got {y.dtype}")
    if y.device != X.device:
        raise ValueError(f"{y_name} is on {y.device} but {x_name} is on {X.device}")
    low, high = int(y.min()), int(y.max())
    if low < 0 or (K is not None and high >= K):
        raise ValueError(f"{y_name} must be class indices in [0, {K if K is not None else 'classes'}), "
                         f"got range [{low}, {high}]")


def _check_data(X: Tensor, y: Tensor, classes: int | None) -> int:
    """Check training codes and labels; return the number of classes (each must have a training sample)."""
    _check_codes(X, "X")
    if classes is not None and (not isinstance(classes, int) or classes < 2):
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    _check_labels(X, y, classes, "X", "y")
    K = classes if classes is not None else int(y.max()) + 1
    missing = torch.nonzero(torch.bincount(y, minlength=K) == 0).flatten().tolist()
    if K < 2:
        raise ValueError("the labels need at least 2 classes")
    if missing:
        raise ValueError(f"every class needs at least one training sample; none for class(es) {missing} of {K}")
    return K


def check_path(alpha: float, steps: int, ratio: float, rtol: float, max_iter: int, patience: int | None) -> None:
    """The path's settings (as `elastic_net_path` takes them) must be valid; ValueError naming the first that is not."""
    _check_alpha(alpha)
    _check_solver(rtol, max_iter)
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not 0 < ratio < 1:
        raise ValueError(f"ratio (lambda_min / lambda_max) must be in (0, 1), got {ratio!r}")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be None or an integer >= 1, got {patience!r}")


def _check_alpha(alpha: float) -> None:
    """alpha (the L1 share) must be in (0, 1]."""
    if not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise ValueError(f"alpha (L1 share of the penalty) must be in (0, 1], got {alpha!r}")


def _check_lam(lam: float) -> None:
    """lam must be a finite number >= 0."""
    if not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")


def _check_solver(tol: float, max_iter: int) -> None:
    """tol > 0 and max_iter >= 1."""
    if not isinstance(tol, (int, float)) or not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
