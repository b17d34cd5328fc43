"""The streaming sparse path (proximal SVRG over a code store) against the in-memory FISTA path: same lambdas, the
same objective to 1e-4 relative, the same support, the planted units found, one shard in memory at a time."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nvcli.analysis.code_store import CodeStore, Layout, write_store
from nvcli.analysis.settings import Compute, HeadSettings, PathSettings
from nvcli.analysis.sparse.selection import Selection
from nvcli.analysis.sparse.solver import Standardizer, elastic_net_path, first_of_identical_columns, fit
from nvcli.analysis.sparse.sparsify import REFIT_MAX_EPOCHS, REFIT_MAX_ITER, choose_solver, fit_path, sparse_head
from nvcli.analysis.sparse.streaming import MAX_EPOCHS, StreamProblem, store_standardizer, stream_path
from nvcli.errors import NvError
from nvcli.runs.run import load_run

CLASSES = 4
PLANTED = {k: [3 * k, 3 * k + 1] for k in range(CLASSES)}  # class k raises units 3k and 3k+1


def planted(n: int, d: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft codes in (0, 1) [n, d]; a copy of unit 0 as the last unit, and one dead unit."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    pre = torch.randn(n, d, generator=g)
    for k, units in PLANTED.items():
        pre[y == k, units[0]:units[-1] + 1] += 1.2
    X = torch.sigmoid(pre)
    X[:, d - 2] = 0.5
    X[:, d - 1] = X[:, 0]
    return X, y


def _store(folder: Path, name: str, X: torch.Tensor, y: torch.Tensor, rows: int) -> CodeStore:
    def shard(start: int, stop: int):
        for i in range(start, stop, 64):
            yield X[i:min(i + 64, stop)].numpy(), y[i:min(i + 64, stop)].numpy()
    layout = Layout(len(X), X.shape[1], rows_per_shard=rows)
    return write_store(folder, name, HeadSettings("test"), layout, shard).close()


def _objective(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor, lam: float, alpha: float) -> float:
    z = X.double() @ W.double().T + b.double()
    loss = (torch.logsumexp(z, dim=1) - z.gather(1, y[:, None])[:, 0]).mean().item()
    return loss + lam * (alpha * W.double().abs().sum().item() + (1 - alpha) / 2 * W.double().square().sum().item())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    X, y = planted(2400)
    folder = tmp_path_factory.mktemp("stores")
    train, val = _store(folder, "train", X[:2000], y[:2000], 300), _store(folder, "val", X[2000:], y[2000:], 1000)
    return X[:2000], y[:2000], X[2000:], y[2000:], train, val


def test_the_store_standardizer_is_the_in_memory_one(data: tuple) -> None:
    X, _, _, _, train, _ = data
    memory, stream = Standardizer.fit(X), store_standardizer(train)
    torch.testing.assert_close(stream.mean, memory.mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(stream.std, memory.std, rtol=1e-5, atol=1e-6)
    assert torch.equal(stream.constant, memory.constant) and int(stream.constant.sum()) == 1
    problem = StreamProblem(train, train, stream, CLASSES)
    assert torch.equal(problem.keep, first_of_identical_columns(memory(X)))  # the copy of unit 0 is dropped
    assert problem.width - len(problem.keep) == 1


@pytest.mark.parametrize("alpha", [0.99, 0.8])
def test_the_streaming_path_equals_the_in_memory_path(data: tuple, alpha: float,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    X, y, Xv, yv, train, val = data
    scale = Standardizer.fit(X)
    memory = elastic_net_path(scale(X), y, scale(Xv), yv, alpha=alpha, steps=12, ratio=0.05, rtol=1e-4,
                              patience=None)
    shards = []
    original = CodeStore.shard
    monkeypatch.setattr(CodeStore, "array", lambda self: pytest.fail("the streaming path read every code at once"))
    monkeypatch.setattr(CodeStore, "shard", lambda self, i: shards.append(i) or original(self, i))
    stream = stream_path(train, val, CLASSES, scale=scale, alpha=alpha, steps=12, ratio=0.05, rtol=1e-4,
                         patience=None)
    assert set(shards) == set(range(train.layout.shards)) and train.layout.shards == 7
    assert stream.lambda_max == pytest.approx(memory.lambda_max, rel=1e-5)
    assert [s.lam for s in stream.steps] == pytest.approx([s.lam for s in memory.steps], rel=1e-5)
    for fast, slow in zip(memory.steps, stream.steps):
        assert slow.converged
        reference = _objective(scale(X), y, fast.weight(), fast.bias, fast.lam, alpha)
        assert abs(_objective(scale(X), y, slow.weight(), slow.bias, fast.lam, alpha) - reference) <= 1e-4 * reference
        assert torch.equal(slow.weight() != 0, fast.weight() != 0), fast.lam
        assert slow.val_acc == pytest.approx(fast.val_acc, abs=1 / len(yv))
    early = next(s for s in stream.steps if s.units > 0)
    found = {k: set(torch.nonzero(early.weight()[k]).flatten().tolist()) for k in range(CLASSES)}
    assert all(found[k] and found[k] <= set(PLANTED[k]) for k in range(CLASSES) if found[k]), found
    assert any(found.values())


def test_a_subset_of_units_is_the_in_memory_path_over_those_columns(data: tuple) -> None:
    X, y, Xv, yv, train, val = data
    scale = Standardizer.fit(X)
    features = torch.tensor([0, 1, 3, 4, 6, 7, 9, 10, 20])
    memory = elastic_net_path(scale(X)[:, features], y, scale(Xv)[:, features], yv, steps=6, ratio=0.1, rtol=1e-4,
                              patience=None)
    stream = stream_path(train, val, CLASSES, scale=scale, features=features, steps=6, ratio=0.1, rtol=1e-4,
                         patience=None, dtype=torch.float64)
    for fast, slow in zip(memory.steps, stream.steps):
        assert slow.weight().shape == (CLASSES, len(features))
        assert torch.equal(slow.weight() != 0, fast.weight() != 0)
        torch.testing.assert_close(slow.weight().float(), fast.weight(), atol=2e-3, rtol=0)


def test_a_refit_from_weights_outside_its_support_keeps_only_the_support(data: tuple) -> None:
    """A budget head's refit starts from a path step that uses more units than the budget: the streaming refit must
    hold the others at zero from its first iterate, as FISTA's does, and reach the same head."""
    X, y, _, _, train, val = data
    scale = Standardizer.fit(X)
    problem = StreamProblem(train, val, scale, CLASSES, dtype=torch.float64)
    X_keep = scale(X)[:, problem.keep].double()
    W0, b0, _ = fit(X_keep, y, 1e-3, 0.99, classes=CLASSES, tol=1e-6)  # a dense start: most units in every row
    support = torch.zeros_like(W0, dtype=torch.bool)
    for k, units in PLANTED.items():
        support[k, units] = True
    assert int((W0 != 0).sum(dim=1).min()) > len(PLANTED[0])
    W, b, epochs, converged, _ = problem.solve(0.0, 1.0, W0, b0, 1.0, 1e-4, 5000, support=support)
    assert converged and epochs < MAX_EPOCHS
    assert not W[~support].any()
    W_memory, b_memory, _ = fit(X_keep, y, 0.0, 1.0, W0, b0, classes=CLASSES, tol=1e-8, support=support)
    torch.testing.assert_close(W, W_memory, atol=1e-3, rtol=0)
    torch.testing.assert_close(b, b_memory, atol=1e-3, rtol=0)


def test_bad_settings_and_labels_are_refused(data: tuple, tmp_path: Path) -> None:
    _, _, _, _, train, val = data
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        stream_path(train, val, CLASSES, batch=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        stream_path(train, val, CLASSES, steps=1)
    X, y = planted(50)
    lonely = _store(tmp_path, "t", X, torch.where(y == 3, 0, y), 50)  # class 3 has no sample
    with pytest.raises(ValueError, match=r"every class needs at least one training sample.*\[\d+, \d+, \d+, 0\]"):
        stream_path(lonely, val, CLASSES)
    assert np.bincount(lonely.labels(), minlength=CLASSES)[3] == 0


def test_choose_solver_by_size() -> None:
    assert choose_solver("auto", 10, budget=10) == "memory" and choose_solver("auto", 11, budget=10) == "stream"
    assert choose_solver("stream", 1) == "stream" and choose_solver("memory", 1 << 60) == "memory"
    with pytest.raises(NvError, match="unknown path solver \\(solver\\) 'streaming'.*Did you mean 'stream'"):
        choose_solver("streaming", 1)  # type: ignore[arg-type]


def test_sparsify_streams_to_the_heads_it_fits_in_memory(shapes_runs: dict, tmp_path: Path) -> None:
    run = load_run(shutil.copytree(shapes_runs["nv"].dir, tmp_path / "nv"))
    settings = PathSettings(steps=8, patience=None)
    memory = fit_path(run, settings, compute=Compute(device="cpu"), solver="memory")
    stream = fit_path(run, settings, compute=Compute(device="cpu"), solver="stream")
    assert (memory.solver, stream.solver) == ("memory", "stream")
    np.testing.assert_array_equal(stream.groups.representative, memory.groups.representative)
    assert stream.path.lambda_max == pytest.approx(memory.path.lambda_max, rel=1e-4)
    assert stream.dense == memory.dense  # the dense head's accuracies, counted chunk by chunk
    heads = [sparse_head(fitted, "s3", Selection(units_per_class=3)) for fitted in (memory, stream)]
    kept = [head.head.weight != 0 for head in heads]
    # The last step the budget reads gives some class more than 3 units: each refit starts outside its supports,
    # and both keep to them (the stored heads, and the table's counts).
    assert stream.path.steps[heads[1].record.step].nonzero_max > 3
    for head in heads:
        assert int((head.head.weight != 0).sum(axis=1).max()) <= 3 and head.record.units_per_class_max <= 3
        assert head.record.finetune.converged, head.record.finetune
    assert [head.record.finetune.max_iterations for head in heads] == [REFIT_MAX_ITER, REFIT_MAX_EPOCHS]
    # Both stop at the default tolerance (rtol 1e-2), so a unit on the edge of a class's budget may differ.
    assert (kept[0] & kept[1]).sum() >= 0.9 * kept[0].sum() and kept[1].sum() == kept[0].sum()
    assert heads[1].record.val_acc == pytest.approx(heads[0].record.val_acc, abs=0.03)
    assert heads[1].record.solver == "stream"
