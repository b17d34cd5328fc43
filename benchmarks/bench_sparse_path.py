"""Time of the elastic-net path (nv sparsify's numerical core) on synthetic NeuroView soft codes or a run's codes.

Synthetic codes look like a NeuroView head's inputs: sigmoid of correlated pre-activations (a few shared factors),
values in (0, 1), a few informative units per class, dead (constant) units too. With --codes RUN, the run's code
stores (codes/train.json and codes/val.json with their shards, written by nv sparsify) are used instead, and each
size is that many training samples drawn from them (a fixed random subset). Each size fits the full `--steps` path
(no early stop) on `--threads` CPU threads, in a fresh process per size, and reports wall and CPU time, solver
iterations, resident memory before the path and at peak, the step nearest 10 units per class, and the time and
length of the default early-stopped path.
Run: python benchmarks/bench_sparse_path.py [--sizes 1350,2700,5400] [--units 1152] [--classes 9]
     python benchmarks/bench_sparse_path.py --codes runs/demo --sizes 675,1350,2700
"""
from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch

from nvcli.analysis.code_store import CodeStore
from nvcli.analysis.sparse.solver import Standardizer, elastic_net_path


def soft_codes(n: int, units: int, classes: int, informative: int = 6, factors: int = 16, dead: int = 32,
               shift: float = 2.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n codes in (0, 1) [n, units] and balanced labels; class k raises units k*informative .. (k+1)*informative-1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=g)]
    loadings = torch.randn(units, factors, generator=g) * 0.6
    offset = torch.randn(units, generator=g) - 1.0
    pre = torch.randn(n, factors, generator=g) @ loadings.T + 0.8 * torch.randn(n, units, generator=g) + offset
    for k in range(classes):
        pre[y == k, k * informative:(k + 1) * informative] += shift
    codes = torch.sigmoid(pre)
    codes[:, units - dead:] = 0.0
    return codes, y


def rss_mib() -> tuple[float, float]:
    """Current and peak resident memory of this process, MiB (Linux)."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def codes(n: int, args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training codes and labels (n samples), then validation codes and labels: synthetic or a run's cached codes."""
    if args.codes is None:
        X, y = soft_codes(n + args.val, args.units, args.classes, seed=n)
        return X[:n], y[:n], X[n:], y[n:]
    train, val = (CodeStore.open(Path(args.codes) / "codes", split) for split in ("train", "val"))
    X, y = torch.from_numpy(np.asarray(train.view())), torch.from_numpy(train.labels())
    if n > len(X):
        raise SystemExit(f"--sizes {n} exceeds the run's {len(X)} training samples")
    pick = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:n]
    return X[pick], y[pick], torch.from_numpy(np.asarray(val.view())), torch.from_numpy(val.labels())


def run_size(n: int, args: argparse.Namespace) -> dict[str, float]:
    """Fit the full path and the early-stopped path at n training samples; runs in a fresh process."""
    torch.set_num_threads(args.threads)
    X, y, Xv, yv = codes(n, args)
    scale = Standardizer.fit(X)
    X_train, X_val = scale(X), scale(Xv)
    before, _ = rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    path = elastic_net_path(X_train, y, X_val, yv, alpha=args.alpha, steps=args.steps, ratio=args.ratio,
                            rtol=args.rtol, patience=None)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    early_wall = time.perf_counter()
    early = elastic_net_path(X_train, y, X_val, yv, alpha=args.alpha, steps=args.steps, ratio=args.ratio,
                             rtol=args.rtol, patience=args.patience)
    early_wall = time.perf_counter() - early_wall
    ten = min(path.steps, key=lambda s: abs(s.nonzero_mean - 10))
    return {"n": n, "wall": wall, "cpu": cpu, "iters": sum(s.iterations for s in path.steps),
            "unconverged": sum(not s.converged for s in path.steps), "before": before, "peak": rss_mib()[1],
            "ten_lam": ten.lam / path.lambda_max, "ten_units": ten.units, "ten_val": ten.val_acc,
            "best_val": path.steps[path.best].val_acc, "early_wall": early_wall, "early_steps": len(early.steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1350,2700,5400", help="training samples, comma-separated")
    parser.add_argument("--units", type=int, default=1152)
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--val", type=int, default=270)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--ratio", type=float, default=1e-2)
    parser.add_argument("--alpha", type=float, default=0.99)
    parser.add_argument("--rtol", type=float, default=1e-2)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--codes", help="a run directory whose cached codes to use instead of synthetic ones")
    args = parser.parse_args()

    source = (f"the codes of {args.codes}" if args.codes else
              f"synthetic codes, {args.units} units, {args.classes} classes, {args.val} val")
    print(f"{args.steps}-step path on {source}, alpha {args.alpha}, ratio {args.ratio}, rtol {args.rtol}, "
          f"{args.threads} threads; each size in a fresh process")
    print(f"{'train':>6} {'wall s':>7} {'cpu s':>6} {'iters':>6} {'ms/iter':>7} {'unconv':>6} {'RSS MiB':>8} "
          f"{'peak':>5} {'~10/class: lam/lmax':>19} {'units':>5} {'val':>5} {'best val':>8} "
          f"{'early stop: s':>13} {'steps':>5}")
    context = multiprocessing.get_context("spawn")
    for n in (int(s) for s in args.sizes.split(",")):
        with context.Pool(1) as pool:
            r = pool.apply(run_size, (n, args))
        print(f"{r['n']:>6} {r['wall']:>7.1f} {r['cpu']:>6.1f} {r['iters']:>6} {1000 * r['wall'] / r['iters']:>7.2f} "
              f"{r['unconverged']:>6} {r['before']:>8.0f} {r['peak']:>5.0f} {r['ten_lam']:>19.3f} "
              f"{r['ten_units']:>5} {r['ten_val']:>5.3f} {r['best_val']:>8.3f} {r['early_wall']:>13.1f} "
              f"{r['early_steps']:>5}", flush=True)


if __name__ == "__main__":
    main()
