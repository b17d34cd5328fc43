"""`nv sparsify`: a sparse head for a run, fitted on its cached codes along an elastic-net path (Wong, Santurkar
& Madry 2021), chosen by a rule, optionally refitted without penalty on the units it keeps.

Two steps, so the path is saved even when no head on it meets the rule: `fit_path`, then `sparse_head`."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import Tensor

from ...errors import NvError
from ...runs.run import Run
from ...training.devices import resolve_device
from ...training.predict import ProgressFn
from ..codes import split_codes
from ..head import Head, read_head
from .head import Selection, SparseHead, check_head_name, kept_per_layer, kept_units_per_view
from .path import PathSettings, SparsePath, path_frame
from .solver import PathResult, Standardizer, accuracy, elastic_net_path, fit, fold

SUMMARY_COLUMNS = ["head", "units_per_class_mean", "units_per_class_max", "units", "train_acc", "val_acc"]
REFIT_TOL = 1e-4  # max-norm of the gradient (standardised codes) at which the unpenalised refit stops
REFIT_MAX_ITER = 5000


@dataclass
class FittedPath:
    """A run's path, fitted on its standardised codes, with what choosing a head on it needs."""

    run: Run
    result: SparsePath  # sparse_path.csv/.png
    path: PathResult
    scale: Standardizer
    train: tuple[Tensor, Tensor]  # raw codes and labels, on the device the path was fitted on
    val: tuple[Tensor, Tensor]
    dense: dict[str, Any]  # the dense head's SUMMARY_COLUMNS row
    seconds: float  # wall time of the path fit


def _row(name: str, W: Tensor, b: Tensor, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor]) -> dict[str, Any]:
    nonzero = (W != 0).sum(dim=1)
    return {"head": name, "units_per_class_mean": nonzero.double().mean().item(),
            "units_per_class_max": int(nonzero.max()), "units": int((W != 0).any(dim=0).sum()),
            "train_acc": accuracy(*train, W, b), "val_acc": accuracy(*val, W, b)}


def fit_path(run: Run, settings: PathSettings = PathSettings(), *, device: str = "auto", batch_size: int = 128,
             workers: int = 0, trust_code: bool = False, progress: ProgressFn | None = None) -> FittedPath:
    """Fit the elastic-net path over `run`'s codes (cached in the run), standardised with training statistics."""
    dense = read_head(run, "sparsify")
    codes = {split: split_codes(run, split, device=device, batch_size=batch_size, workers=workers,
                                trust_code=trust_code, progress=progress) for split in ("train", "val")}
    dev = resolve_device(device)
    train, val = codes["train"].tensors(dev), codes["val"].tensors(dev)
    state = {k: v.to(dev) for k, v in dense.state_dict().items()}
    row = _row(dense.name, state["weight"], state["bias"], train, val)
    scale = Standardizer.fit(train[0])
    started = time.perf_counter()
    try:
        path = elastic_net_path(scale(train[0]), train[1], scale(val[0]), val[1], alpha=settings.alpha,
                                steps=settings.steps, ratio=settings.ratio, patience=settings.patience,
                                classes=len(run.classes),
                                progress=(lambda i, _: progress("path", i + 1, settings.steps)) if progress else None)
    except ValueError as exc:  # the codes themselves are unusable (a class without training samples, NaN codes)
        raise NvError(f"cannot fit a sparse head for run '{run.dir}': {exc}") from exc
    seconds = time.perf_counter() - started
    return FittedPath(run, SparsePath(run.name, path_frame(path), row["val_acc"], settings), path, scale, train, val,
                      row, seconds)


def sparse_head(fitted: FittedPath, name: str, selection: Selection = Selection(), *,
                finetune: bool = False) -> SparseHead:
    """The step `selection` picks, refitted without penalty on its units with `finetune`, folded into head `name`."""
    check_head_name(name)
    run, path, scale, train, val = fitted.run, fitted.path, fitted.scale, fitted.train, fitted.val
    chosen = path.steps[selection.choose(path, fitted.dense["val_acc"])]
    dev = train[0].device
    W_std, b_std = chosen.weight().to(dev), chosen.bias.to(dev)
    rows, refit = [fitted.dense], None
    if finetune:
        W, b = fold(W_std, b_std, scale.mean, scale.std)
        rows.append(_row(f"{name} (penalised)", W, b, train, val))
        W_std, b_std, iterations = fit(scale(train[0]), train[1], 0.0, 1.0, W_std, b_std, classes=len(run.classes),
                                       tol=REFIT_TOL, max_iter=REFIT_MAX_ITER, support=W_std != 0)
        refit = {"iterations": iterations, "converged": iterations < REFIT_MAX_ITER,
                 "penalised_train_acc": rows[-1]["train_acc"], "penalised_val_acc": rows[-1]["val_acc"]}
    W, b = fold(W_std, b_std, scale.mean, scale.std)
    # The stored float32 head is what every later command reads: report its accuracy, not the solver's.
    head = Head.from_tensors(W.float(), b.float(), run.units(), run.classes, name)
    stored = head.state_dict()
    rows.append(_row(name, stored["weight"].to(dev), stored["bias"].to(dev), train, val))
    record = {"name": name, "run": run.name, "step": path.steps.index(chosen), "lambda": chosen.lam,
              "lambda_max": path.lambda_max, "alpha": path.alpha, "rule": selection.as_dict(),
              **{k: v for k, v in rows[-1].items() if k != "head"},
              "dense_train_acc": fitted.dense["train_acc"], "dense_val_acc": fitted.dense["val_acc"],
              "finetune": refit, "kept": kept_per_layer(head.weight, head.units)}
    if "view" in head.units.columns:
        record["units_per_view"] = kept_units_per_view(head)
    return SparseHead(head, record, fitted.result.path_settings, selection, finetune,
                      pd.DataFrame(rows, columns=SUMMARY_COLUMNS))
