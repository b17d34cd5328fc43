"""The elastic-net path solver behind `nv sparsify`: agreement with scikit-learn, lambda_max, support recovery,
folding the standardisation into the head, early stopping and argument checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from nvcli.analysis.sparse.budget import class_budget
from nvcli.analysis.sparse.groups import UnitGroups, correlation_groups
from nvcli.analysis.sparse.solver import Standardizer, elastic_net_path, fit, fold, lambda_max


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """Tests share the machine: one thread each."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n: int, d: int, K: int, relevant: int, shift: float, seed: int,
          labels: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal features; class k raises features k*relevant .. (k+1)*relevant-1 by `shift`.

    Labels cycle through 0..K-1, or through `labels` (to make some classes more frequent).
    """
    g = torch.Generator().manual_seed(seed)
    cycle = torch.tensor(labels if labels is not None else list(range(K)))
    y = cycle[torch.arange(n) % len(cycle)]
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    for k in range(K):
        X[y == k, k * relevant:(k + 1) * relevant] += shift
    return X, y


@pytest.fixture(scope="module")
def small() -> tuple[torch.Tensor, torch.Tensor]:
    """300 x 20 standardised, 3 classes, two relevant features per class."""
    X, y = blobs(300, 20, 3, relevant=2, shift=1.0, seed=0)
    return Standardizer.fit(X)(X), y


@pytest.mark.parametrize("alpha", [0.5, 0.9])
@pytest.mark.parametrize("fraction", [0.5, 0.2, 0.05])
def test_agrees_with_sklearn_saga(small: tuple[torch.Tensor, torch.Tensor], alpha: float, fraction: float) -> None:
    X, y = small
    n = X.shape[0]
    lam = fraction * lambda_max(X, y, alpha)
    W, b, _ = fit(X, y, lam, alpha, tol=1e-10, max_iter=100_000)
    # sklearn minimises sum_i CE + (1/C) (l1_ratio |W|_1 + (1 - l1_ratio)/2 |W|^2); divide by n: lam = 1/(n C).
    ref = LogisticRegression(C=1 / (n * lam), l1_ratio=alpha, solver="saga", tol=1e-12, max_iter=200_000)
    ref.fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(W.numpy(), ref.coef_, atol=1e-7)
    np.testing.assert_array_equal(W.numpy() != 0, ref.coef_ != 0)
    # The softmax is blind to a common shift of the bias, so compare centred biases.
    np.testing.assert_allclose(b.numpy() - b.numpy().mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-7)


def test_lambda_max_is_the_first_zero(small: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = small
    alpha = 0.9
    top = lambda_max(X, y, alpha)
    W, b, _ = fit(X, y, top * (1 + 1e-6), alpha, tol=1e-10)
    assert bool((W == 0).all())
    # With no weights the bias alone matches the class prior.
    prior = torch.bincount(y).double() / len(y)
    torch.testing.assert_close(torch.softmax(b, dim=0), prior, atol=1e-9, rtol=0)
    # Just below, exactly the unit with the largest gradient at W = 0 enters.
    first = ((torch.nn.functional.one_hot(y).double() - prior).T @ X).abs().amax(dim=0).argmax().item()
    W, _, _ = fit(X, y, top * 0.999, alpha, tol=1e-10)
    assert torch.nonzero((W != 0).any(dim=0)).flatten().tolist() == [first]


def test_warm_start_resumes_at_the_solution(small: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = small
    lam = 0.1 * lambda_max(X, y, 0.9)
    W, b, cold = fit(X, y, lam, 0.9, tol=1e-9)
    W2, b2, warm = fit(X, y, lam, 0.9, W, b, tol=1e-9)
    assert warm <= 2 < cold
    torch.testing.assert_close(W2, W, atol=1e-8, rtol=0)


def test_sparse_end_recovers_each_class_units() -> None:
    K, relevant = 3, 3
    X, y = blobs(600, 30, K, relevant=relevant, shift=1.5, seed=1)
    Xv, yv = blobs(150, 30, K, relevant=relevant, shift=1.5, seed=2)
    scale = Standardizer.fit(X)
    path = elastic_net_path(scale(X), y, scale(Xv), yv, alpha=0.99, steps=40, ratio=0.05, patience=None)
    assert path.steps[0].units == 0 and path.steps[0].iterations == 0
    relevant_units = set(range(K * relevant))
    # Until every relevant unit is in, no other unit enters; and each class's positive weights are its own units.
    first_full = next(i for i, s in enumerate(path.steps) if s.units == K * relevant)
    for step in path.steps[:first_full + 1]:
        W = step.weight()
        assert set(torch.nonzero((W != 0).any(dim=0)).flatten().tolist()) <= relevant_units
        for k in range(K):
            assert set(torch.nonzero(W[k] > 0).flatten().tolist()) <= set(range(k * relevant, (k + 1) * relevant))
    W = path.steps[first_full].weight()
    for k in range(K):
        assert set(torch.nonzero(W[k] > 0).flatten().tolist()) == set(range(k * relevant, (k + 1) * relevant))
    assert path.steps[first_full].val_acc > 0.8


def test_path_records_and_memory_layout(small: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = small
    seen: list[int] = []
    path = elastic_net_path(X[:240], y[:240], X[240:], y[240:], alpha=0.9, steps=8, ratio=0.05, patience=None,
                            progress=lambda i, step: seen.append(i))
    assert seen == list(range(8)) and len(path.steps) == 8 and not path.stopped_early
    lams = [s.lam for s in path.steps]
    assert lams[0] == pytest.approx(path.lambda_max) and lams[-1] == pytest.approx(0.05 * path.lambda_max)
    assert all(a > b for a, b in zip(lams, lams[1:]))
    for step in path.steps:
        W = step.weight()
        assert step.weight_stored.device.type == "cpu" and W.shape == (3, 20)
        assert step.weight_stored.is_sparse == (int((W != 0).sum()) * 24 < W.numel() * 8)
        nonzero = (W != 0).sum(dim=1)
        assert step.nonzero_mean == pytest.approx(nonzero.double().mean().item())
        assert step.nonzero_max == int(nonzero.max()) and step.units == int((W != 0).any(dim=0).sum())
        assert step.converged and 0 <= step.train_acc <= 1 and 0 <= step.val_acc <= 1
    assert path.steps[-1].units > path.steps[1].units
    assert {s.weight_stored.is_sparse for s in path.steps} == {True, False}
    assert path.best == max(range(8), key=lambda i: (path.steps[i].val_acc, -i))


def test_early_stop_after_patience_steps_without_improvement() -> None:
    # Few samples, many noise features: val accuracy peaks early, then the path overfits.
    X, y = blobs(90, 60, 3, relevant=2, shift=1.2, seed=3)
    Xv, yv = blobs(300, 60, 3, relevant=2, shift=1.2, seed=4)
    scale = Standardizer.fit(X)
    full = elastic_net_path(scale(X), y, scale(Xv), yv, steps=30, ratio=1e-3, patience=None)
    stopped = elastic_net_path(scale(X), y, scale(Xv), yv, steps=30, ratio=1e-3, patience=3)
    assert stopped.stopped_early and len(stopped.steps) < len(full.steps) == 30
    assert stopped.best == full.best
    assert len(stopped.steps) - 1 == stopped.best + 3
    for a, b in zip(stopped.steps, full.steps):
        assert a.lam == b.lam and a.val_acc == b.val_acc


def test_patience_counts_only_after_beating_the_zero_head() -> None:
    # Class 0 is 60% of the data, so the first units to enter are too weak to change any prediction.
    X, y = blobs(300, 20, 3, relevant=2, shift=1.0, seed=5, labels=[0, 0, 0, 1, 2])
    Xv, yv = blobs(150, 20, 3, relevant=2, shift=1.0, seed=6, labels=[0, 0, 0, 1, 2])
    scale = Standardizer.fit(X)
    path = elastic_net_path(scale(X), y, scale(Xv), yv, steps=40, ratio=0.05, patience=1)
    flat = [s.val_acc == path.steps[0].val_acc and s.units > 0 for s in path.steps[1:4]]
    assert all(flat) and path.steps[3].nonzero_max > 0
    assert path.stopped_early and path.best > 3 and len(path.steps) - 1 == path.best + 1


def test_fold_gives_the_same_logits_on_raw_codes() -> None:
    g = torch.Generator().manual_seed(7)
    Z = torch.rand(50, 12, generator=g, dtype=torch.float64)
    Z[:, 4] = 0.25
    scale = Standardizer.fit(Z)
    assert scale.constant.tolist() == [i == 4 for i in range(12)] and scale.std[4] == 1
    assert bool((scale(Z)[:, 4] == 0).all())
    W_std = torch.randn(3, 12, generator=g, dtype=torch.float64) * (torch.rand(3, 12, generator=g) < 0.5)
    b_std = torch.randn(3, generator=g, dtype=torch.float64)
    W, b = fold(W_std, b_std, scale.mean, scale.std)
    torch.testing.assert_close(Z @ W.T + b, scale(Z) @ W_std.T + b_std, atol=1e-12, rtol=1e-12)
    assert torch.equal(W == 0, W_std == 0)


def test_float32_agrees_with_float64(small: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = small
    lam = 0.1 * lambda_max(X, y, 0.9)
    W64, _, _ = fit(X, y, lam, 0.9, tol=1e-10)
    W32, b32, _ = fit(X.float(), y, lam, 0.9, tol=1e-5)
    assert W32.dtype == b32.dtype == torch.float32
    torch.testing.assert_close(W32.double(), W64, atol=1e-4, rtol=0)


def test_long_float32_runs_stay_at_the_optimum() -> None:
    # Separable classes, each carried by ten near-identical units: momentum climbs towards 1, and an unreachable
    # float32 tolerance keeps FISTA iterating. The logits it carries must not drift from X W^T + b (they once did,
    # amplified by momentum at every refresh, and the iterates diverged after a few hundred steps).
    g = torch.Generator().manual_seed(9)
    y = torch.arange(300) % 3
    X = torch.randn(300, 60, generator=g, dtype=torch.float64)
    for k in range(3):
        X[:, 10 * k:10 * (k + 1)] = (y == k).double()[:, None] + 1e-3 * torch.randn(300, 10, generator=g)
    X = Standardizer.fit(X)(X)
    lam = 0.3 * lambda_max(X, y, 0.99)

    def objective(W: torch.Tensor, b: torch.Tensor) -> float:
        loss = torch.nn.functional.cross_entropy(X @ W.double().T + b.double(), y).item()
        return loss + lam * (0.99 * W.double().abs().sum() + 0.005 * W.double().square().sum()).item()

    W64, b64, _ = fit(X, y, lam, 0.99, tol=1e-9)
    W32, b32, iterations = fit(X.float(), y, lam, 0.99, tol=1e-9, max_iter=3000)
    assert iterations == 3000  # it never met the tolerance, so it ran every iteration
    assert objective(W32, b32) == pytest.approx(objective(W64, b64), rel=1e-5)
    torch.testing.assert_close(W32.double(), W64, atol=1e-4, rtol=0)


def test_support_holds_the_other_weights_at_zero(small: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = small
    support = torch.zeros(3, 20, dtype=torch.bool)
    support[0, :2] = support[1, 2:4] = support[2, 4:6] = True
    W, b, _ = fit(X, y, 0.0, 1.0, classes=3, support=support, tol=1e-9, max_iter=20_000)
    assert bool((W[~support] == 0).all()) and bool((W[support] != 0).all())
    # The optimum of the unpenalised loss over that support: the loss's gradient vanishes on the support and in the
    # bias, and not elsewhere (the constraint binds).
    R = (torch.softmax(X @ W.T + b, dim=1) - torch.nn.functional.one_hot(y, 3).double()) / len(y)
    grad = R.T @ X
    assert grad[support].abs().max() < 1e-8 and R.sum(dim=0).abs().max() < 1e-8
    assert grad[~support].abs().max() > 1e-3
    with pytest.raises(ValueError, match="support must be a bool tensor"):
        fit(X, y, 0.1, 0.9, support=support.float())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_the_inputs_device(small: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = small
    cpu = elastic_net_path(X[:240], y[:240], X[240:], y[240:], steps=6, ratio=0.1, patience=None)
    gpu = elastic_net_path(X[:240].cuda(), y[:240].cuda(), X[240:].cuda(), y[240:].cuda(), steps=6, ratio=0.1,
                           patience=None)
    for a, b in zip(cpu.steps, gpu.steps):
        torch.testing.assert_close(b.weight(), a.weight(), atol=1e-6, rtol=0)
        assert b.bias.device.type == "cpu"


def _bad(message: str, call) -> tuple[str, object]:
    return pytest.param(message, call, id=message[:30])


X_OK, Y_OK = blobs(30, 4, 3, relevant=1, shift=1.0, seed=8)


@pytest.mark.parametrize("message, call", [
    _bad("alpha (L1 share of the penalty) must be in (0, 1], got 0", lambda: lambda_max(X_OK, Y_OK, 0)),
    _bad("alpha (L1 share of the penalty) must be in (0, 1], got 1.5", lambda: fit(X_OK, Y_OK, 0.1, 1.5)),
    _bad("lam must be a finite number >= 0, got -1", lambda: fit(X_OK, Y_OK, -1, 0.5)),
    _bad("tol must be > 0, got 0", lambda: fit(X_OK, Y_OK, 0.1, 0.5, tol=0)),
    _bad("max_iter must be an integer >= 1, got 0", lambda: fit(X_OK, Y_OK, 0.1, 0.5, max_iter=0)),
    _bad("X must be a non-empty 2-D tensor [samples, units], got [30]", lambda: fit(X_OK[:, 0], Y_OK, 0.1, 0.5)),
    _bad("X must be float32 or float64, got torch.int64", lambda: lambda_max(X_OK.long(), Y_OK, 0.5)),
    _bad("X contains NaN or infinite values",
         lambda: lambda_max(torch.where(X_OK > 2, float("nan"), X_OK), Y_OK, 0.5)),
    _bad("y must be a 1-D tensor with one label per row of X (30), got [29]",
         lambda: lambda_max(X_OK, Y_OK[:29], 0.5)),
    _bad("y must hold integer class indices, got torch.float32", lambda: lambda_max(X_OK, Y_OK.float(), 0.5)),
    _bad("y must be class indices in [0, classes), got range [-1, 2]",
         lambda: lambda_max(X_OK, torch.where(Y_OK == 0, -1, Y_OK), 0.5)),
    _bad("every class needs at least one training sample; none for class(es) [1] of 3",
         lambda: lambda_max(X_OK, torch.where(Y_OK == 1, 2, Y_OK), 0.5)),
    _bad("y must be class indices in [0, 2), got range [0, 2]", lambda: lambda_max(X_OK, Y_OK, 0.5, classes=2)),
    _bad("W0 must be [3, 4] torch.float64 on cpu, got [3, 5] torch.float64 on cpu",
         lambda: fit(X_OK, Y_OK, 0.1, 0.5, torch.zeros(3, 5, dtype=torch.float64))),
    _bad("steps must be an integer >= 2, got 1",
         lambda: elastic_net_path(X_OK, Y_OK, X_OK, Y_OK, steps=1)),
    _bad("ratio (lambda_min / lambda_max) must be in (0, 1), got 1",
         lambda: elastic_net_path(X_OK, Y_OK, X_OK, Y_OK, ratio=1)),
    _bad("patience must be None or an integer >= 1, got 0",
         lambda: elastic_net_path(X_OK, Y_OK, X_OK, Y_OK, patience=0)),
    _bad("X_val must match X_train in width, device and dtype",
         lambda: elastic_net_path(X_OK, Y_OK, X_OK[:, :3], Y_OK)),
    _bad("y_val must be class indices in [0, 3), got range [1, 3]",
         lambda: elastic_net_path(X_OK, Y_OK, X_OK, Y_OK + 1)),
    _bad("codes must have shape [n, 4], got [30, 3]", lambda: Standardizer.fit(X_OK)(X_OK[:, :3])),
    _bad("fold needs W [K, d], b [K], mean [d], std [d]",
         lambda: fold(torch.zeros(3, 4), torch.zeros(3), torch.zeros(5), torch.ones(5))),
])
def test_bad_arguments_raise_value_error(message: str, call) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(message)


def test_copies_of_a_unit_are_one_feature() -> None:
    """Identical columns (units saturated into the same detector): only the first of each set gets weight."""
    X, y = blobs(300, 6, 3, relevant=2, shift=1.5, seed=3)
    X = Standardizer.fit(X)(X)
    copies = torch.cat([X, X[:, [0, 0, 2]]], dim=1)  # columns 6, 7 copy 0; column 8 copies 2
    path = elastic_net_path(copies[:240], y[:240], copies[240:], y[240:], alpha=0.9, steps=12, ratio=0.01,
                            patience=None)
    plain = elastic_net_path(X[:240], y[:240], X[240:], y[240:], alpha=0.9, steps=12, ratio=0.01, patience=None)
    assert len(path.steps) == len(plain.steps)
    for step, reference in zip(path.steps, plain.steps):
        W = step.weight()
        assert (W[:, 6:] == 0).all()  # the copies never get weight: the reading names one unit per detector
        torch.testing.assert_close(W[:, :6], reference.weight(), rtol=1e-9, atol=1e-12)


def test_units_entering_in_bulk_are_bisected_into_small_heads() -> None:
    """Thirty near-copies of one class detector enter the path within a hair of lambda: the grid gap is bisected
    until a head of a few units exists (without it, the first non-empty step holds all thirty)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(600) % 3
    detector = (y == 0).double()[:, None] + 0.02 * torch.randn(600, 30, generator=g, dtype=torch.float64)
    X = torch.cat([detector, torch.randn(600, 10, generator=g, dtype=torch.float64)], dim=1)
    X[y == 1, 30:35] += 1.0
    X = Standardizer.fit(X)(X)
    path = elastic_net_path(X[:480], y[:480], X[480:], y[480:], alpha=0.99, steps=10, ratio=0.05, patience=None)
    lams = [s.lam for s in path.steps]
    assert all(a > b for a, b in zip(lams, lams[1:])) and len(path.steps) > 10  # grid values plus midpoints
    grid = torch.logspace(0, np.log10(0.05), 10, dtype=torch.float64).mul(path.lambda_max).tolist()
    assert all(any(abs(lam - x) <= 1e-12 * x for lam in lams) for x in grid)  # every grid value is still fitted
    first = next(s for s in path.steps if s.nonzero_max > 0)
    assert first.weight()[0, :30].ne(0).sum() <= 3, first.weight()[0, :30]


def test_near_copies_are_grouped_with_their_representative() -> None:
    """Planted copies: exact and near (|r| ~ 0.999, one negated) copies join the unit they copy; a unit correlated
    at ~0.9 and the independent ones stay alone; constant units too."""
    g = torch.Generator().manual_seed(4)
    base = torch.randn(2000, 5, generator=g, dtype=torch.float64)
    noise = torch.randn(2000, 4, generator=g, dtype=torch.float64)
    planted = torch.stack([base[:, 1],  # 5: exact copy of 1
                           base[:, 1] + 0.04 * noise[:, 0],  # 6: near copy of 1 (r ~ 0.999)
                           -base[:, 3] + 0.04 * noise[:, 1],  # 7: negated near copy of 3 (r ~ -0.999)
                           base[:, 0] + 0.5 * noise[:, 2],  # 8: related to 0 at r ~ 0.89: a unit of its own
                           torch.full((2000,), 3.0, dtype=torch.float64)], dim=1)  # 9: constant
    X = torch.cat([base, planted], dim=1)
    groups = correlation_groups(Standardizer.fit(X)(X), 0.99)
    assert groups.representative.tolist() == [0, 1, 2, 3, 4, 1, 1, 3, 8, 9]
    assert groups.representatives.tolist() == [0, 1, 2, 3, 4, 8, 9]
    assert groups.sizes().tolist() == [1, 3, 1, 2, 1, 3, 3, 2, 1, 1]
    assert groups.corr[5] == pytest.approx(1.0) and 0.99 < groups.corr[6] < 1 and -1 < groups.corr[7] < -0.99
    assert groups.members(6).tolist() == [1, 5, 6]
    record = groups.as_record()
    assert [[row[0], *row[1::2]] for row in record] == [[1, 5, 6], [3, 7]]  # representative, then (member, corr)
    again = UnitGroups.from_record(10, record)
    assert again.representative.tolist() == groups.representative.tolist()
    np.testing.assert_allclose(again.corr, groups.corr, atol=1e-6)
    # A lower threshold takes the related unit in too; None leaves every unit alone.
    assert correlation_groups(Standardizer.fit(X)(X), 0.85).representative[8] == 0
    assert correlation_groups(Standardizer.fit(X)(X), None).representatives.tolist() == list(range(10))
    with pytest.raises(ValueError, match="out of range or already grouped"):
        UnitGroups.from_record(10, [[1, 5, 1.0], [3, 5, 1.0]])


def test_the_budget_keeps_each_class_s_first_units_to_enter() -> None:
    """Class 0 has twelve informative units, the others two: the shared penalty gives class 0 many more units than
    the rest, the budget caps every class at K and keeps the units that entered its row first."""
    K, per = 3, [12, 2, 2]
    g = torch.Generator().manual_seed(5)
    y = torch.arange(900) % 3
    X = torch.randn(900, 30, generator=g, dtype=torch.float64)
    start = 0
    for k, count in enumerate(per):
        X[y == k, start:start + count] += torch.linspace(1.2, 0.6, count, dtype=torch.float64)
        start += count
    X = Standardizer.fit(X)(X)
    path = elastic_net_path(X[:720], y[:720], X[720:], y[720:], alpha=0.99, steps=30, ratio=0.02, patience=None)
    assert max(s.nonzero_max for s in path.steps) > K + 3  # without a budget some class goes far past K
    budget = class_budget(path, K)
    assert budget.support.sum(dim=1).tolist() == [K, K, K]
    for c in range(3):
        rows = [s.weight()[c] != 0 for s in path.steps]
        entry = [next((i for i, r in enumerate(rows) if r[f]), len(rows)) for f in range(30)]
        kept = torch.nonzero(budget.support[c]).flatten().tolist()
        # Every kept unit entered no later than any unit left out (ties broken by weight).
        assert max(entry[f] for f in kept) <= min(entry[f] for f in range(30) if f not in kept)
        assert budget.entered[c] == max(entry[f] for f in kept)
    assert set(torch.nonzero(budget.support[0]).flatten().tolist()) <= set(range(12))  # its own informative units
