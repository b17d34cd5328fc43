"""`nv sparsify`: a sparse head for a run, fitted on its cached codes along an elastic-net path (Wong, Santurkar
& Madry 2021) over groups of near-copy units, chosen by a rule (a budget of units per class, or an accuracy
drop), refitted without penalty on the units it keeps.

Two steps, so the path is saved even when no head on it meets the rule: `fit_path`, then `sparse_head`."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ...errors import NvError, choice_error
from ...runs import files
from ...runs.run import Run
from ...training.devices import resolve_device
from ...training.predict import ProgressFn
from ..code_cache import ArrayStore, Codes, split_codes
from ..head import Head, read_head
from ..settings import DEFAULT_PATH_SOLVER, MEMORY_BUDGET, PATH_SOLVERS, Compute, PathSolver
from ..weights import kept_units
from .budget import class_budget
from .groups import UnitGroups, correlation_groups, greedy_groups
from .path import PathSettings, SparsePath, class_columns, path_frame
from .record import ClassRecord, KeptUnit, Refit, Selection, SparseHeadRecord
from .selection import SparseHead, check_head_name, kept_per_layer, kept_units_per_view
from .solver import PathResult, PathStep, Standardizer, elastic_net_path, fit, fold, run_path
from .streaming import MAX_EPOCHS, StreamProblem, correlations, store_standardizer

# + one `units:<class>` column per class (class_columns)
SUMMARY_COLUMNS = ["head", "units_per_class_mean", "units_per_class_max", "units", "train_acc", "val_acc",
                   "val_acc_min"]
REFIT_TOL = 1e-4  # max-norm of the gradient (standardised codes) at which the unpenalised refit stops
REFIT_MAX_ITER = 5000  # FISTA iterations of a refit in memory
REFIT_MAX_EPOCHS = MAX_EPOCHS  # proximal SVRG epochs of a streaming refit (each reads the training store twice)


class MemoryCodes:
    """The raw codes and labels of both splits as tensors on the device the path is fitted on."""

    def __init__(self, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor]) -> None:
        self.train, self.val = train, val
        self.device = train[0].device

    def chunks(self, split: str) -> Iterator[tuple[Tensor, Tensor]]:
        """The split's codes and labels, in one piece."""
        yield self.train if split == "train" else self.val


class StoreCodes:
    """The codes of both splits in their stores (read a chunk at a time, on the CPU), with the streaming problem
    over the path's features that refits heads."""

    device = torch.device("cpu")

    def __init__(self, train: Codes, val: Codes, problem: StreamProblem) -> None:
        self.stores, self.problem = {"train": train, "val": val}, problem

    def chunks(self, split: str) -> Iterator[tuple[Tensor, Tensor]]:
        """The split's raw codes and labels, chunk by chunk."""
        for _, z, labels in self.stores[split].chunks():
            yield torch.from_numpy(z), torch.from_numpy(labels)


@dataclass(frozen=True)
class HeadRow:
    """A head's row of the summary table (SUMMARY_COLUMNS and its units per class), with each class's validation
    accuracy (NaN for a class without samples)."""

    head: str
    units_per_class_mean: float
    units_per_class_max: int
    units: int
    train_acc: float
    val_acc: float
    val_acc_min: float
    per_class_units: tuple[int, ...]
    per_class_val_acc: tuple[float, ...]

    def summary(self, classes: list[str]) -> list[object]:
        """The row under SUMMARY_COLUMNS + class_columns(classes)."""
        return [self.head, self.units_per_class_mean, self.units_per_class_max, self.units, self.train_acc,
                self.val_acc, self.val_acc_min, *self.per_class_units]


@dataclass
class FittedPath:
    """A path fitted on the standardised codes of a dense head's units, with what choosing a head on it needs."""

    name: str  # what it is the path of (the run's name), for titles and the heads' records
    head: Head  # the dense head: its units and classes are the sparse heads'
    result: SparsePath  # sparse_path.csv/.png
    path: PathResult  # over the groups' representatives (features = groups.representatives)
    groups: UnitGroups
    scale: Standardizer
    codes: MemoryCodes | StoreCodes  # the raw codes the path was fitted on, in memory or in their stores
    dense: HeadRow  # the dense head's row of the summary
    seconds: float  # wall time of the path fit
    solver: str  # memory or stream


def _class_hits(codes: MemoryCodes | StoreCodes, split: str, W: Tensor, b: Tensor,
                classes: int) -> tuple[Tensor, Tensor]:
    """Per class: how many of the split's samples the head (W, b) classifies right, and how many there are."""
    hits = torch.zeros(classes, dtype=torch.float64, device=W.device)
    total = torch.zeros(classes, dtype=torch.float64, device=W.device)
    for X, y in codes.chunks(split):
        X, y = X.to(W), y.to(W.device)
        hits.index_add_(0, y, (torch.argmax(X @ W.T + b, dim=1) == y).double())
        total += torch.bincount(y, minlength=classes).double()
    return hits, total


def _row(name: str, W: Tensor, b: Tensor, codes: MemoryCodes | StoreCodes, classes: list[str]) -> HeadRow:
    nonzero = (W != 0).sum(dim=1)
    train_hits, train_total = _class_hits(codes, "train", W, b, len(classes))
    val_hits, val_total = _class_hits(codes, "val", W, b, len(classes))
    per_class = (val_hits / val_total).tolist()  # NaN for a class without samples
    return HeadRow(name, nonzero.double().mean().item(), int(nonzero.max()), int((W != 0).any(dim=0).sum()),
                   (train_hits.sum() / train_total.sum()).item(), (val_hits.sum() / val_total.sum()).item(),
                   float(np.nanmin(per_class)), tuple(nonzero.tolist()), tuple(per_class))


def choose_solver(solver: PathSolver, nbytes: int, budget: int = MEMORY_BUDGET) -> str:
    """`memory` or `stream`: as given, or for `auto`, memory when the codes (float32 bytes) fit the budget."""
    if solver not in PATH_SOLVERS:
        raise choice_error("path solver (solver)", solver, PATH_SOLVERS, param="solver")
    if solver == "auto":
        return "memory" if nbytes <= budget else "stream"
    return solver


def _stream_codes(train: Codes, val: Codes, settings: PathSettings,
                  classes: int) -> tuple[StoreCodes, Standardizer, UnitGroups]:
    """The stores' codes standardised and grouped, each statistic in one pass over the training store."""
    scale = store_standardizer(train.store)
    matrix = correlations(train.store, scale) if settings.group_corr is not None else None
    groups = greedy_groups(train.store.units, settings.group_corr, lambda start, stop: matrix[start:stop])
    problem = StreamProblem(train.store, val.store, scale, classes, torch.from_numpy(groups.representatives))
    return StoreCodes(train, val, problem), scale, groups


def check_destinations(run: Run, name: str, figures: bool = True) -> None:
    """Refuse, in one line naming it, a link, FIFO or device where fitting a path and storing head `name` would read
    or write (codes/, the path's files, heads/, results.json): before anything is computed or written."""
    path = [files.SPARSE_PATH.name(), *([files.SPARSE_PATH_PNG.name()] if figures else [])]
    head = [files.SPARSE_HEAD.name(name=name), files.SPARSE_HEAD_INFO.name(name=name)]
    for leaf in [*(f"{files.CODES_DIR}/{split}.json" for split in ("train", "val")), *path, *head, files.RESULTS]:
        run.path(leaf)


def fit_path(run: Run, settings: PathSettings = PathSettings(), *, compute: Compute = Compute(),
             solver: PathSolver = DEFAULT_PATH_SOLVER, trust_code: bool = False,
             progress: ProgressFn | None = None) -> FittedPath:
    """Fit the elastic-net path over a run's unit codes (stored in the run).

    The codes are standardised with training statistics, with one feature per group of near-copy units.

    Args:
        run: a NeuroView run.
        settings: alpha, the lambda grid, patience and the near-copy threshold.
        compute: where and how: device (auto: cuda > mps > cpu), inference batch size, loader workers.
        solver: `memory` (FISTA over the codes held on the device), `stream` (proximal SVRG over the code
            stores on the CPU, in memory independent of the number of samples) or `auto` (memory when the
            training and validation codes take at most MEMORY_BUDGET bytes as float32).
        trust_code: allow importing the run's `package.module:function` architecture.
        progress: called as `progress(phase, done, total)`.

    Returns:
        A `FittedPath`: every step's head and accuracy (`path`), the near-copy `groups`, and `result`
        (sparse_path.csv/.png) to save.
    """
    stores = {split: split_codes(run, split, device=compute.device, batch_size=compute.batch_size,
                                 workers=compute.workers,
                                 trust_code=trust_code, progress=progress) for split in ("train", "val")}
    return fit_codes(stores["train"], stores["val"], read_head(run), settings, solver=solver, device=compute.device,
                     name=run.name, progress=progress)


def fit_codes(train: Codes, val: Codes, dense: Head, settings: PathSettings = PathSettings(), *,
              solver: PathSolver = DEFAULT_PATH_SOLVER, device: str = "auto", name: str = "model",
              progress: ProgressFn | None = None) -> FittedPath:
    """The path over the codes of a training and a validation split, beside `dense` (the head they were computed
    with); codes held in memory are fitted in memory whatever `solver` says."""
    chosen = choose_solver(solver, train.store.nbytes + val.store.nbytes)
    if isinstance(train.store, ArrayStore) or isinstance(val.store, ArrayStore):
        chosen = "memory"  # already held in memory: streaming them would save nothing
    classes = len(dense.classes)
    report = (lambda i, _: progress("path", i + 1, settings.steps)) if progress else None
    try:
        if chosen == "memory":
            dev = resolve_device(device)
            codes: MemoryCodes | StoreCodes = MemoryCodes(train.tensors(dev), val.tensors(dev))
            scale = Standardizer.fit(codes.train[0])
            started = time.perf_counter()
            X_train = scale(codes.train[0])
            groups = correlation_groups(X_train, settings.group_corr)
            features = torch.from_numpy(groups.representatives).to(dev)
            path = elastic_net_path(X_train[:, features], codes.train[1], scale(codes.val[0])[:, features],
                                    codes.val[1], alpha=settings.alpha, steps=settings.steps, ratio=settings.ratio,
                                    patience=settings.patience, classes=classes, progress=report)
        else:
            started = time.perf_counter()
            codes, scale, groups = _stream_codes(train, val, settings, classes)
            path = run_path(codes.problem, alpha=settings.alpha, steps=settings.steps, ratio=settings.ratio,
                            rtol=1e-2, max_iter=MAX_EPOCHS, patience=settings.patience, progress=report)
    except ValueError as exc:  # the codes themselves are unusable (a class without training samples, NaN codes)
        raise NvError(f"cannot fit a sparse head for '{name}': {exc}") from exc
    seconds = time.perf_counter() - started
    state = {k: v.to(codes.device) for k, v in dense.state_dict().items()}
    row = _row(dense.name, state["weight"], state["bias"], codes, dense.classes)
    frame = path_frame(path, dense.classes)
    return FittedPath(name, dense, SparsePath(name, frame, row.val_acc, settings), path, groups, scale, codes,
                      row, seconds, chosen)


def _refit(fitted: FittedPath, W: Tensor, b: Tensor, lam: float,
           support: Tensor) -> tuple[Tensor, Tensor, int, bool]:
    """The head over the groups' features from (W, b) with each class's weights held to its `support`, at `lam`
    (0: no penalty); with the iterations (epochs when streaming) and whether the tolerance was met."""
    alpha = fitted.path.alpha if lam > 0 else 1.0
    codes, limit = fitted.codes, _refit_limit(fitted)
    if isinstance(codes, StoreCodes):
        keep = codes.problem.keep
        W_keep, b, iterations, converged, _ = codes.problem.solve(lam, alpha, W[:, keep].float(), b.float(), 1.0,
                                                                  REFIT_TOL, limit, support=support[:, keep])
        W = W.new_zeros(W.shape)
        W[:, keep] = W_keep.to(W)
        return W, b.to(W), iterations, converged
    features = torch.from_numpy(fitted.groups.representatives).to(W.device)
    X = fitted.scale(codes.train[0])[:, features]
    W, b, iterations = fit(X, codes.train[1], lam, alpha, W, b, classes=len(fitted.head.classes), tol=REFIT_TOL,
                           max_iter=limit, support=support)
    return W, b, iterations, iterations < limit


def _refit_limit(fitted: FittedPath) -> int:
    """The most iterations a refit takes: FISTA iterations in memory, epochs when streaming."""
    return REFIT_MAX_EPOCHS if isinstance(fitted.codes, StoreCodes) else REFIT_MAX_ITER


def _unit_head(fitted: FittedPath, W_group: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The head over raw unit codes: each group's weight on its representative, the standardisation folded in."""
    W_std = W_group.new_zeros(W_group.shape[0], len(fitted.groups.representative))
    W_std[:, torch.from_numpy(fitted.groups.representatives).to(W_std.device)] = W_group
    return fold(W_std, b, fitted.scale.mean, fitted.scale.std)


def _kept_record(head: Head, cls: str) -> tuple[KeptUnit, ...]:
    """Class `cls`'s units as listed in heads/<name>.json: unit, layer label, weight, group size."""
    kept = kept_units(head, cls)
    labels = kept["label"] if "label" in kept.columns else kept["node"]
    return tuple(KeptUnit(int(u), str(lay), float(w), int(s))
                 for u, lay, w, s in zip(kept["unit"], labels, kept["weight"], kept["group_size"]))


def _head_record(fitted: FittedPath, head: Head, selection: Selection, index: int, entered: list[int] | None,
                 row: HeadRow, refit: Refit | None) -> SparseHeadRecord:
    """heads/<name>.json of `head`, chosen at path step `index` (with each class's step of entry under a budget)."""
    path, dense, classes = fitted.path, fitted.dense, fitted.head.classes
    per_class = tuple(ClassRecord(c, n, None if entered is None else entered[i], acc, dense_acc, _kept_record(head, c))
                      for i, (c, n, acc, dense_acc) in enumerate(zip(classes, row.per_class_units,
                                                                     row.per_class_val_acc, dense.per_class_val_acc)))
    return SparseHeadRecord(
        head.name, fitted.name, index, path.steps[index].lam, path.lambda_max, path.alpha, selection,
        row.units_per_class_mean, row.units_per_class_max, row.units, row.train_acc, row.val_acc, row.val_acc_min,
        dense.train_acc, dense.val_acc, per_class, refit, kept_per_layer(head.weight, head.units),
        fitted.result.path_settings.group_corr, len(fitted.groups.representatives),
        tuple(tuple(group) for group in fitted.groups.as_record()), fitted.solver,
        kept_units_per_view(head) if "view" in head.units.columns else None)


class _Pick(NamedTuple):
    """The step a rule picks on the path and the head it starts from (standardised weights, bias, support)."""

    index: int
    entered: list[int] | None  # units_per_class: per class, the step at which its last kept unit entered
    step: PathStep
    weight: Tensor
    bias: Tensor
    support: Tensor


def _pick(fitted: FittedPath, selection: Selection) -> _Pick:
    """With `units_per_class` K: the last step read by the class budgets (budget.py), refitted at its λ with each
    class held to its support; with `max_drop`: the sparsest step with units within the drop, as fitted."""
    path, dev = fitted.path, fitted.codes.device
    if selection.units_per_class is not None:
        budget = class_budget(path, selection.units_per_class)
        chosen, support = path.steps[budget.step], budget.support.to(dev)
        W, b, _, _ = _refit(fitted, chosen.weight().to(dev), chosen.bias.to(dev), chosen.lam, support)
        return _Pick(budget.step, budget.entered, chosen, W, b, support)
    index = selection.choose(path, fitted.dense.val_acc)
    chosen = path.steps[index]
    W = chosen.weight().to(dev)
    return _Pick(index, None, chosen, W, chosen.bias.to(dev), W != 0)


def sparse_head(fitted: FittedPath, name: str, selection: Selection = Selection(), *,
                finetune: bool = False) -> SparseHead:
    """The sparse head a rule picks on a fitted path, as an ordinary `W z + b` over the run's codes.

    With `units_per_class` K: each class's first K groups along the path (budget.py), fitted together at the λ of
    the last step read with each class held to its support, then refitted without penalty (always: the supports
    come from different λ). With `max_drop`: the sparsest step with units within the drop, refitted without
    penalty on its units with `finetune`.

    Args:
        fitted: the path (`fit_path`).
        name: the head's name (heads/<name>.pt; read it with `read_head(run, name)`).
        selection: the rule: `units_per_class` K or `max_drop` X.
        finetune: with `max_drop`, refit the kept units without penalty.

    Returns:
        A `SparseHead` result (`summary` table, `record` for heads/<name>.json); `.save(run.dir)` writes it.
    """
    check_head_name(name)
    codes, classes = fitted.codes, fitted.head.classes
    dev = codes.device
    index, entered, chosen, W_std, b_std, support = _pick(fitted, selection)
    finetune = finetune or selection.units_per_class is not None  # class budgets come from different steps' λ
    rows, refit = [fitted.dense], None
    if finetune:
        rows.append(_row(f"{name} (penalised)", *_unit_head(fitted, W_std, b_std), codes, classes))
        W_std, b_std, iterations, converged = _refit(fitted, W_std, b_std, 0.0, support)
        refit = Refit(iterations, _refit_limit(fitted), REFIT_TOL, converged, rows[-1].train_acc, rows[-1].val_acc)
    W, b = _unit_head(fitted, W_std, b_std)
    # The stored float32 head is what every later command reads: report its accuracy, not the solver's.
    head = Head.from_tensors(W.float(), b.float(), fitted.head.units, classes, name, groups=fitted.groups)
    stored = head.state_dict()
    rows.append(_row(name, stored["weight"].to(dev), stored["bias"].to(dev), codes, classes))
    summary = pd.DataFrame([row.summary(classes) for row in rows], columns=SUMMARY_COLUMNS + class_columns(classes))
    return SparseHead(head, _head_record(fitted, head, selection, index, entered, rows[-1], refit),
                      fitted.result.path_settings, selection, finetune, summary)
