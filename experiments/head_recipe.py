"""Train one run with a head recipe and measure how learned and how concentrated its head is (evidence for
docs/head-recipe.md; not part of the package).

usage: python experiments/head_recipe.py NAME [--data shapes|imagefolder] [--data-dir D] [--epochs 24]
       [--hinit 1] [--hlr 1] [--hwd W] [--l1 L] [--warmup E]
       [--seed S] [--lr LR] [--bs B] [-D KEY=VALUE ...] [--arch alexnet] [--reduce mean] [--measure-only]
Writes the run to $RUNS (default /tmp/d2/runs) and the measurements to experiments/results/NAME.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
from nvcli.analysis.code_cache import split_codes  # noqa: E402
from nvcli.data.registry import data_options  # noqa: E402
from nvcli.models.spec import ModelChoice  # noqa: E402
from nvcli.runs.run import load_run  # noqa: E402
from nvcli.training.config import TrainConfig  # noqa: E402
from nvcli.training.recipes import train  # noqa: E402

RUNS = Path(os.environ.get("RUNS", "/tmp/d2/runs"))
RESULTS = Path(__file__).parent / "results"
DRAWS = 20  # random unit sets per class


def corr(a: np.ndarray, b: np.ndarray) -> float | None:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) if a.std() > 0 and b.std() > 0 else None


def ablation(w: np.ndarray, b: np.ndarray, z: np.ndarray, labels: np.ndarray, mean: np.ndarray,
             fraction: float, rng: np.random.Generator) -> dict:
    """Per class: own-image accuracy and mean margin lost when its top `fraction` of units by |W| (or a random
    set of that size) have their codes replaced by the validation mean. The head is linear in z."""
    k = max(1, round(fraction * w.shape[1]))
    base = z @ w.T + b

    def scores(c: int, units: np.ndarray) -> tuple[float, float]:
        own = labels == c
        logits = base[own] + (mean[units] - z[own][:, units]) @ w[:, units].T
        other = np.delete(logits, c, axis=1).max(1)
        return float((logits.argmax(1) == c).mean()), float((logits[:, c] - other).mean())

    rows = []
    for c in range(w.shape[0]):
        clean_acc, clean_margin = scores(c, np.array([], dtype=int))
        top = np.argsort(-np.abs(w[c]))[:k]
        top_acc, top_margin = scores(c, top)
        rand = [scores(c, rng.choice(w.shape[1], k, replace=False)) for _ in range(DRAWS)]
        rows.append({"acc_drop_top": clean_acc - top_acc, "acc_drop_random": clean_acc - np.mean([r[0] for r in rand]),
                     "margin_drop_top": clean_margin - top_margin,
                     "margin_drop_random": clean_margin - np.mean([r[1] for r in rand])})
    return {"k": k, "per_class": rows,
            **{key: float(np.mean([r[key] for r in rows])) for key in rows[0]}}


def measure(run) -> dict:
    state = run.state()
    w = state["head.weight"].double().numpy()
    b = state["head.bias"].double().numpy()
    w0 = run.head_init()["weight"].double().numpy()
    codes = split_codes(run, "val", device="cpu")
    z, labels = np.asarray(codes.z, dtype=np.float64), np.asarray(codes.labels)
    pred = (z @ w.T + b).argmax(1)
    per_class = {c: float((pred[labels == i] == i).mean()) for i, c in enumerate(run.classes)}
    units = run.units()
    total = np.abs(w).sum()
    layers = [{"layer": str(g["node"].iloc[0]), "unit_frac": len(g) / len(units),
               "absW_share": float(np.abs(w[:, g["unit"].to_numpy()]).sum() / total)}
              for _, g in units.groupby("layer", sort=True)]
    absw = np.sort(np.abs(w), axis=1)[:, ::-1]
    mass90 = [int(np.searchsorted(np.cumsum(r) / r.sum(), 0.9) + 1) for r in absw]
    rng = np.random.default_rng(0)
    mean = z.mean(0)
    return {
        "val_acc": float((pred == labels).mean()), "per_class": per_class, "min_class": min(per_class.values()),
        "corr_W_W0": corr(w, w0), "corr_per_class": [corr(w[c], w0[c]) for c in range(len(w))],
        "dW_over_W": float(np.linalg.norm(w - w0) / np.linalg.norm(w)),
        "nonzero_per_class": [int((r != 0).sum()) for r in w], "units_90pct_mass": mass90,
        "units": w.shape[1], "layers": layers,
        "ablate_1pct": ablation(w, b, z, labels, mean, 0.01, rng),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--data", default="shapes")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--arch", default="alexnet")
    ap.add_argument("--reduce", default="mean")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--hinit", type=float, default=1.0)
    ap.add_argument("--hlr", type=float, default=None)  # None: the default, scaled to the head's width
    ap.add_argument("--hwd", type=float, default=None)
    ap.add_argument("--l1", type=float, default=0.0)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--bs", type=int, default=TrainConfig.batch_size)
    ap.add_argument("-D", dest="options", action="append", default=[], help="a dataset option KEY=VALUE")
    ap.add_argument("--measure-only", action="store_true")
    a = ap.parse_args()
    wall = cpu = None
    if not a.measure_only:
        cfg = TrainConfig(epochs=a.epochs, seed=a.seed, lr=a.lr, batch_size=a.bs, head_init_scale=a.hinit,
                          head_lr_scale=a.hlr, head_weight_decay=a.hwd,
                          head_l1=a.l1, head_warmup=a.warmup, device="cpu", threads=1)
        values = {"data_dir": a.data_dir} if a.data_dir else {}
        values.update({k: json.loads(v) for k, v in (o.split("=", 1) for o in a.options)})
        start, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
        train(ModelChoice(arch=a.arch, reduce=a.reduce), a.data, data_options(a.data, {**values, "seed": a.seed}), cfg,
              name=a.name, runs_dir=RUNS, force=True)
        wall, cpu = time.time() - start, resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
    res = {"name": a.name, "args": vars(a), "wall_s": wall, "cpu_s": cpu, **measure(load_run(RUNS / a.name))}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{a.name}.json").write_text(json.dumps(res, indent=1))
    abl = res["ablate_1pct"]
    shares = " ".join(f"{x['absW_share']:.2f}/{x['unit_frac']:.2f}" for x in res["layers"])
    print(f"{a.name}: acc {res['val_acc']:.3f} min {res['min_class']:.2f} corr {res['corr_W_W0']} "
          f"dW/W {res['dW_over_W']:.2f} nonzero/class {np.mean(res['nonzero_per_class']):.0f} "
          f"90%mass {np.mean(res['units_90pct_mass']):.0f} | ablate 1% acc top {abl['acc_drop_top']:.3f} "
          f"rand {abl['acc_drop_random']:.4f} margin top {abl['margin_drop_top']:.2f} "
          f"rand {abl['margin_drop_random']:.3f}"
          f" | {shares} | wall {wall} cpu {cpu}",
          flush=True)


if __name__ == "__main__":
    main()
