"""Sparse paths at scale: the streaming solver, the in-memory solver and glm-saga on one synthetic code store.

The store (N x D codes in (0, 1), K classes) is written shard by shard, never held whole: pre-activations share a
few factors, and class k raises its `--planted` units, so the sparse truth is known. Each solver fits the same
path (`--steps` lambdas from lambda_max down to `--ratio` lambda_max, alpha 0.99, no early stop) in a fresh
process, and the benchmark reports its peak resident memory (VmHWM, the whole process: Python and torch
included), time per path step, the objective it reached at each lambda relative to the best of the solvers
(max and median over the path), and recovery: for each class the first `--planted` units to enter its row along
the path, against the planted ones.

glm-saga (Wong, Santurkar & Madry 2021; `pip install --target DIR --no-deps glm-saga`) runs when importable:
give its folder with --glm-saga DIR or NV_GLMSAGA_PATH. It reads the store through a loader of standardised
rows (its own SAGA, its default tolerance 1e-4 on the step, `--saga-epochs` epochs at most per lambda).

Run: python benchmarks/bench_scale.py --samples 200000 --units 2048 [--solvers stream,memory,glm-saga]
     python benchmarks/bench_scale.py --samples 20000 --units 512 --steps 8      # a quick look
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nvcli.analysis.code_store import CodeStore, Layout, write_store
from nvcli.analysis.sparse.budget import class_budget
from nvcli.analysis.sparse.solver import PathResult, PathStep, elastic_net_path
from nvcli.analysis.sparse.streaming import StreamProblem, store_standardizer, stream_path

SOLVERS = ("stream", "memory", "glm-saga")


def rss_mib() -> tuple[float, float]:
    """Current and peak resident memory of this process, MiB (Linux)."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def planted_units(args: argparse.Namespace) -> np.ndarray:
    """[classes, planted]: the units each class raises (disjoint, spread over the units)."""
    rng = np.random.default_rng(args.seed)
    return rng.choice(args.units, size=(args.classes, args.planted), replace=False)


def make_store(folder: Path, name: str, samples: int, args: argparse.Namespace, seed: int) -> CodeStore:
    """A store of `samples` synthetic codes, generated and written shard by shard."""
    world = np.random.default_rng(args.seed)
    loadings = world.normal(size=(args.units, args.factors)) * 0.5
    offset = world.normal(size=args.units) - 1.0
    planted = planted_units(args)

    def shard(start: int, stop: int):
        rng = np.random.default_rng([seed, start])
        for first in range(start, stop, 8192):
            n = min(8192, stop - first)
            y = rng.integers(0, args.classes, n)
            pre = rng.normal(size=(n, args.factors)) @ loadings.T + rng.normal(size=(n, args.units)) + offset
            pre[np.arange(n)[:, None], planted[y]] += args.shift
            yield (1 / (1 + np.exp(-pre))).astype(np.float32), y
    return write_store(folder, name, {"bench": "scale", "seed": seed, "samples": samples, "units": args.units,
                                      "classes": args.classes, "planted": args.planted, "shift": args.shift},
                       Layout(samples, args.units), shard).close()


def recovery(path: PathResult, args: argparse.Namespace) -> float:
    """The share of planted units among each class's first `planted` units to enter along the path."""
    support = class_budget(path, args.planted).support.numpy()
    planted = planted_units(args)
    return float(np.mean([support[k, planted[k]].mean() for k in range(args.classes)]))


def objective_of(problem: StreamProblem, W: torch.Tensor, b: torch.Tensor, lam: float, alpha: float) -> float:
    """The path's objective at (W, b) over the training store (float64 sums)."""
    loss, _, _ = problem.full(W[:, problem.keep].float(), b.float())
    W = W.double()
    return loss + lam * (alpha * W.abs().sum().item() + (1 - alpha) / 2 * W.square().sum().item())


def glm_saga_path(train: CodeStore, val: CodeStore, args: argparse.Namespace) -> PathResult:
    """glm-saga's path over the standardised store (imported from --glm-saga / NV_GLMSAGA_PATH)."""
    from glm_saga.elasticnet import glm_saga

    scale = store_standardizer(train)
    labels = torch.from_numpy(train.labels())

    class Rows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return train.samples

        def __getitem__(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            index = torch.tensor(rows)
            return scale(torch.from_numpy(train.rows(index.numpy()))), labels[index], index

    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(range(train.samples)), args.batch, False)
    loader = torch.utils.data.DataLoader(Rows(), batch_size=None, sampler=sampler)
    linear = torch.nn.Linear(args.units, args.classes)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    out = glm_saga(linear, loader, args.saga_lr, args.saga_epochs, args.alpha, epsilon=args.ratio, k=args.steps,
                   n_ex=train.samples, n_classes=args.classes, do_zero=False, tol=args.saga_tol, lookbehind=3)
    steps = [PathStep(float(p["lam"]), p["weight"], p["bias"], 0.0, 0, int((p["weight"] != 0).any(0).sum()),
                      p["metrics"]["acc_tr"], 0.0, 0, True) for p in out["path"]]
    return PathResult(float(out["path"][0]["lam"]), args.alpha, steps, 0, False)


def run_solver(solver: str, folder: str, args: argparse.Namespace) -> dict[str, Any]:
    """Fit one solver's path in this (fresh) process; its peak memory, times, objectives and recovery."""
    torch.set_num_threads(args.threads)
    if args.glm_saga:
        sys.path.insert(0, args.glm_saga)
    train, val = CodeStore.open(folder, "train"), CodeStore.open(folder, "val")
    before = rss_mib()[0]
    started = time.perf_counter()
    if solver == "stream":
        path = stream_path(train, val, args.classes, alpha=args.alpha, steps=args.steps, ratio=args.ratio,
                           rtol=args.rtol, patience=None, batch=args.batch)
    elif solver == "memory":
        X, y = torch.from_numpy(np.asarray(train.view())), torch.from_numpy(train.labels())
        Xv, yv = torch.from_numpy(np.asarray(val.view())), torch.from_numpy(val.labels())
        scale = store_standardizer(train)
        path = elastic_net_path(scale(X), y, scale(Xv), yv, alpha=args.alpha, steps=args.steps, ratio=args.ratio,
                                rtol=args.rtol, patience=None, classes=args.classes)
        del X, Xv
    else:
        path = glm_saga_path(train, val, args)
    seconds = time.perf_counter() - started
    peak = rss_mib()[1]
    problem = StreamProblem(train, val, store_standardizer(train), args.classes)
    grid = path.lambda_max * np.logspace(0, np.log10(args.ratio), args.steps)
    on_grid = {int(np.argmin(abs(grid - s.lam))): s for s in path.steps if np.isclose(grid, s.lam, rtol=1e-6).any()}
    # The objective at each lambda of the grid (bisection's extra lambdas left out), keyed by its index.
    objectives = {i: objective_of(problem, s.weight(), s.bias, s.lam, args.alpha) for i, s in on_grid.items()}
    return {"solver": solver, "seconds": seconds, "steps": len(path.steps), "before": before, "peak": peak,
            "lambda_max": path.lambda_max, "objectives": objectives, "recovery": recovery(path, args),
            "units": path.steps[-1].units, "epochs": sum(s.iterations for s in path.steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000, help="training samples N")
    parser.add_argument("--units", type=int, default=2048, help="units D")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--val", type=int, default=10_000)
    parser.add_argument("--planted", type=int, default=3, help="units each class raises")
    parser.add_argument("--factors", type=int, default=16)
    parser.add_argument("--shift", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ratio", type=float, default=0.1)
    parser.add_argument("--alpha", type=float, default=0.99)
    parser.add_argument("--rtol", type=float, default=1e-2)
    parser.add_argument("--batch", type=int, default=1024, help="minibatch rows (stream and glm-saga)")
    parser.add_argument("--saga-lr", type=float, default=0.1)
    parser.add_argument("--saga-epochs", type=int, default=50, help="glm-saga's epochs at most per lambda")
    parser.add_argument("--saga-tol", type=float, default=1e-4, help="glm-saga's stopping tolerance (its default: "
                        "1e-4; smaller runs it to a lower objective)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solvers", default="stream,memory,glm-saga")
    parser.add_argument("--glm-saga", default=os.environ.get("NV_GLMSAGA_PATH"),
                        help="folder holding the glm_saga package (pip install --target)")
    parser.add_argument("--dir", help="where to write the stores (default: a temporary folder, removed after)")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()
    solvers = [s for s in args.solvers.split(",") if s]
    if bad := set(solvers) - set(SOLVERS):
        raise SystemExit(f"--solvers {','.join(sorted(bad))}: use some of {','.join(SOLVERS)}")
    if "glm-saga" in solvers and args.glm_saga:
        sys.path.insert(0, args.glm_saga)
    if "glm-saga" in solvers and not _importable("glm_saga"):
        print("glm-saga is not importable (give --glm-saga DIR or NV_GLMSAGA_PATH); skipped")
        solvers.remove("glm-saga")

    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_scale."))
    started = time.perf_counter()
    make_store(folder, "train", args.samples, args, seed=1)
    make_store(folder, "val", args.val, args, seed=2)
    size = args.samples * args.units * 4 / 2 ** 30
    print(f"store: {args.samples} x {args.units} float32 ({size:.2f} GiB) + {args.val} val, {args.classes} classes, "
          f"{args.planted} planted units each; written in {time.perf_counter() - started:.0f} s to {folder}")
    print(f"path: {args.steps} lambdas to {args.ratio} lambda_max, alpha {args.alpha}, rtol {args.rtol}, "
          f"{args.threads} thread(s); each solver in a fresh process", flush=True)
    results = []
    context = multiprocessing.get_context("spawn")
    try:
        for solver in solvers:
            with context.Pool(1) as pool:
                results.append(pool.apply(run_solver, (solver, str(folder), args)))
            r = results[-1]
            print(f"  {solver}: {r['seconds']:.1f} s ({r['seconds'] / r['steps']:.1f} s/step), peak RSS "
                  f"{r['peak']:.0f} MiB ({r['before']:.0f} MiB before the path)", flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    common = sorted(set.intersection(*(set(r["objectives"]) for r in results)))
    best = np.min([[r["objectives"][i] for i in common] for r in results], axis=0)
    print(f"objective gap: (objective - the best solver's) / the best's, at the {len(common)} lambdas of the grid")
    print(f"{'solver':>9} {'wall s':>8} {'s/step':>7} {'peak MiB':>9} {'obj gap max':>11} {'median':>9} "
          f"{'recovery':>8} {'units':>5}")
    for r in results:
        gap = (np.array([r["objectives"][i] for i in common]) - best) / best
        r["gap_max"], r["gap_median"] = float(gap.max()), float(np.median(gap))
        print(f"{r['solver']:>9} {r['seconds']:>8.1f} {r['seconds'] / r['steps']:>7.2f} {r['peak']:>9.0f} "
              f"{r['gap_max']:>11.2e} {r['gap_median']:>9.2e} {r['recovery']:>8.2f} {r['units']:>5}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
