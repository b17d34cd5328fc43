"""`nv sparsify`: a sparse head for a run, fitted on its cached codes along an elastic-net path (Wong, Santurkar
& Madry 2021) over groups of near-copy units, chosen by a rule (a budget of units per class, or an accuracy
drop), refitted without penalty on the units it keeps.

Two steps, so the path is saved even when no head on it meets the rule: `fit_path`, then `sparse_head`."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ...errors import NvError
from ...runs.run import Run
from ...training.devices import resolve_device
from ...training.predict import ProgressFn
from ..code_cache import split_codes
from ..head import Head, read_head
from ..settings import Compute
from ..weights import kept_units
from .budget import class_budget
from .groups import UnitGroups, correlation_groups
from .path import PathSettings, SparsePath, class_columns, path_frame
from .selection import Selection, SparseHead, check_head_name, kept_per_layer, kept_units_per_view
from .solver import PathResult, Standardizer, accuracy, elastic_net_path, fit, fold

# + one `units:<class>` column per class (class_columns)
SUMMARY_COLUMNS = ["head", "units_per_class_mean", "units_per_class_max", "units", "train_acc", "val_acc",
                   "val_acc_min"]
REFIT_TOL = 1e-4  # max-norm of the gradient (standardised codes) at which the unpenalised refit stops
REFIT_MAX_ITER = 5000


@dataclass
class FittedPath:
    """A run's path, fitted on its standardised codes, with what choosing a head on it needs."""

    run: Run
    result: SparsePath  # sparse_path.csv/.png
    path: PathResult  # over the groups' representatives (features = groups.representatives)
    groups: UnitGroups
    scale: Standardizer
    train: tuple[Tensor, Tensor]  # raw codes and labels, on the device the path was fitted on
    val: tuple[Tensor, Tensor]
    dense: dict[str, Any]  # the dense head's SUMMARY_COLUMNS row
    seconds: float  # wall time of the path fit


def class_accuracy(X: Tensor, y: Tensor, W: Tensor, b: Tensor, classes: int) -> list[float]:
    """Each class's accuracy (recall) on codes X with labels y (NaN for a class without samples)."""
    hit = (torch.argmax(X @ W.T + b, dim=1) == y).double()
    total = torch.bincount(y, minlength=classes).double()
    return (torch.zeros(classes, dtype=torch.float64, device=y.device).index_add_(0, y, hit) / total).tolist()


def _row(name: str, W: Tensor, b: Tensor, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor],
         classes: list[str]) -> dict[str, Any]:
    nonzero = (W != 0).sum(dim=1)
    per_class = class_accuracy(*val, W, b, len(classes))
    return {"head": name, "units_per_class_mean": nonzero.double().mean().item(),
            "units_per_class_max": int(nonzero.max()), "units": int((W != 0).any(dim=0).sum()),
            "train_acc": accuracy(*train, W, b), "val_acc": accuracy(*val, W, b),
            "val_acc_min": float(np.nanmin(per_class)),
            **dict(zip(class_columns(classes), nonzero.tolist())), "per_class_val_acc": per_class}


def fit_path(run: Run, settings: PathSettings = PathSettings(), *, compute: Compute = Compute(),
             trust_code: bool = False, progress: ProgressFn | None = None) -> FittedPath:
    """Fit the elastic-net path over a run's unit codes (cached in the run).

    The codes are standardised with training statistics, with one feature per group of near-copy units.

    Args:
        run: a NeuroView run.
        settings: alpha, the lambda grid, patience and the near-copy threshold.
        compute: where and how: device (auto: cuda > mps > cpu), inference batch size, loader workers.
        trust_code: allow importing the run's `package.module:function` architecture.
        progress: called as `progress(phase, done, total)`.

    Returns:
        A `FittedPath`: every step's head and accuracy (`path`), the near-copy `groups`, and `result`
        (sparse_path.csv/.png) to save.
    """
    dense = read_head(run)
    codes = {split: split_codes(run, split, device=compute.device, batch_size=compute.batch_size,
                                workers=compute.workers,
                                trust_code=trust_code, progress=progress) for split in ("train", "val")}
    dev = resolve_device(compute.device)
    train, val = codes["train"].tensors(dev), codes["val"].tensors(dev)
    state = {k: v.to(dev) for k, v in dense.state_dict().items()}
    row = _row(dense.name, state["weight"], state["bias"], train, val, run.classes)
    scale = Standardizer.fit(train[0])
    started = time.perf_counter()
    X_train = scale(train[0])
    groups = correlation_groups(X_train, settings.group_corr)
    features = torch.from_numpy(groups.representatives).to(dev)
    try:
        path = elastic_net_path(X_train[:, features], train[1], scale(val[0])[:, features], val[1],
                                alpha=settings.alpha, steps=settings.steps, ratio=settings.ratio,
                                patience=settings.patience, classes=len(run.classes),
                                progress=(lambda i, _: progress("path", i + 1, settings.steps)) if progress else None)
    except ValueError as exc:  # the codes themselves are unusable (a class without training samples, NaN codes)
        raise NvError(f"cannot fit a sparse head for run '{run.dir}': {exc}") from exc
    seconds = time.perf_counter() - started
    frame = path_frame(path, run.classes)
    return FittedPath(run, SparsePath(run.name, frame, row["val_acc"], settings), path, groups, scale, train, val,
                      row, seconds)


def _refit(fitted: FittedPath, W: Tensor, b: Tensor, lam: float, support: Tensor) -> tuple[Tensor, Tensor, int]:
    """The head over the groups' features from (W, b) with each class's weights held to its `support`, at `lam`
    (0: no penalty)."""
    features = torch.from_numpy(fitted.groups.representatives).to(W.device)
    X = fitted.scale(fitted.train[0])[:, features]
    return fit(X, fitted.train[1], lam, fitted.path.alpha if lam > 0 else 1.0, W, b, classes=len(fitted.run.classes),
               tol=REFIT_TOL, max_iter=REFIT_MAX_ITER, support=support)


def _unit_head(fitted: FittedPath, W_group: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The head over raw unit codes: each group's weight on its representative, the standardisation folded in."""
    W_std = W_group.new_zeros(W_group.shape[0], len(fitted.groups.representative))
    W_std[:, torch.from_numpy(fitted.groups.representatives).to(W_std.device)] = W_group
    return fold(W_std, b, fitted.scale.mean, fitted.scale.std)


def _kept_record(head: Head, cls: str) -> list[dict[str, Any]]:
    """Class `cls`'s units as listed in heads/<name>.json: unit, layer label, weight, group size."""
    kept = kept_units(head, cls)
    labels = kept["label"] if "label" in kept.columns else kept["node"]
    return [{"unit": int(u), "layer": str(lay), "weight": float(w), "group_size": int(s)}
            for u, lay, w, s in zip(kept["unit"], labels, kept["weight"], kept["group_size"])]


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
    run, path, train, val = fitted.run, fitted.path, fitted.train, fitted.val
    dev = train[0].device
    if selection.units_per_class is not None:
        budget = class_budget(path, selection.units_per_class)
        index, entered = budget.step, budget.entered
        chosen = path.steps[index]
        support = budget.support.to(dev)
        W_std, b_std, _ = _refit(fitted, chosen.weight().to(dev), chosen.bias.to(dev), chosen.lam, support)
        finetune = True
    else:
        index, entered = selection.choose(path, fitted.dense["val_acc"]), None
        chosen = path.steps[index]
        W_std, b_std = chosen.weight().to(dev), chosen.bias.to(dev)
        support = W_std != 0
    rows, refit = [fitted.dense], None
    if finetune:
        rows.append(_row(f"{name} (penalised)", *_unit_head(fitted, W_std, b_std), train, val, run.classes))
        W_std, b_std, iterations = _refit(fitted, W_std, b_std, 0.0, support)
        refit = {"iterations": iterations, "converged": iterations < REFIT_MAX_ITER,
                 "penalised_train_acc": rows[-1]["train_acc"], "penalised_val_acc": rows[-1]["val_acc"]}
    W, b = _unit_head(fitted, W_std, b_std)
    # The stored float32 head is what every later command reads: report its accuracy, not the solver's.
    head = Head.from_tensors(W.float(), b.float(), run.units(), run.classes, name, groups=fitted.groups)
    stored = head.state_dict()
    rows.append(_row(name, stored["weight"].to(dev), stored["bias"].to(dev), train, val, run.classes))
    record = {"name": name, "run": run.name, "step": index, "lambda": chosen.lam,
              "lambda_max": path.lambda_max, "alpha": path.alpha, "rule": selection.as_dict(),
              **{k: v for k, v in rows[-1].items() if k not in ("head", "per_class_val_acc")
                 and k not in class_columns(run.classes)},
              "dense_train_acc": fitted.dense["train_acc"], "dense_val_acc": fitted.dense["val_acc"],
              "per_class": [{"class": c, "units": int(n), "entered": None if entered is None else entered[i],
                             "val_acc": acc, "dense_val_acc": dense_acc, "kept": _kept_record(head, c)}
                            for i, (c, n, acc, dense_acc) in enumerate(zip(
                                run.classes, (W != 0).sum(dim=1).tolist(), rows[-1]["per_class_val_acc"],
                                fitted.dense["per_class_val_acc"]))],
              "finetune": refit, "kept": kept_per_layer(head.weight, head.units),
              "group_corr": fitted.result.path_settings.group_corr, "groups": len(fitted.groups.representatives),
              "group_members": fitted.groups.as_record()}
    if "view" in head.units.columns:
        record["units_per_view"] = kept_units_per_view(head)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS + class_columns(run.classes))
    return SparseHead(head, record, fitted.result.path_settings, selection, finetune, summary)
