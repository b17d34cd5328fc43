"""Markdown rows of docs/head-recipe.md from experiments/results/*.json.

usage: python experiments/table.py NAME...
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def recipe(a: dict) -> str:
    """The run's flags beyond the table's common setting."""
    parts = [f"--epochs {a['epochs']}"] if a["epochs"] != 24 else []
    for flag, key, default in (("--head-init-scale", "hinit", 1.0), ("--head-lr-scale", "hlr", 1.0),
                               ("--head-wd", "hwd", None), ("--head-l1", "l1", 0.0), ("--head-warmup", "warmup", 0),
                               ("--seed", "seed", 0)):
        if a.get(key, default) != default:
            parts.append(f"{flag} {a[key]:g}")
    return "`" + " ".join(parts) + "`" if parts else "(defaults)"


def learning(name: str) -> str:
    r = json.loads((RESULTS / f"{name}.json").read_text())
    corrs = [c for c in r["corr_per_class"] if c is not None]
    return " | ".join([name, recipe(r["args"]), f"**{r['val_acc']:.3f}**", fmt(r["min_class"]), fmt(r["corr_W_W0"]),
                       "n/a" if not corrs else f"{max(corrs):.2f}", fmt(r["dW_over_W"]),
                       "–" if r["cpu_s"] is None else f"{r['cpu_s']:.0f}"])


def structure(name: str) -> str:
    r = json.loads((RESULTS / f"{name}.json").read_text())
    abl = r["ablate_1pct"]
    shares = " ".join(f"{x['absW_share']:.2f}" for x in r["layers"])
    classes = sum(1 for x in abl["per_class"] if x["acc_drop_top"] >= 0.05)
    nonzero = r["nonzero_per_class"]
    return " | ".join([
        name, f"{np.mean(nonzero):.0f} ({min(nonzero)}–{max(nonzero)})", f"{np.mean(r['units_90pct_mass']):.0f}",
        shares, f"{abl['acc_drop_top']:.3f} / {abl['acc_drop_random']:.4f}", str(classes),
        f"{abl['margin_drop_top']:.2f} / {abl['margin_drop_random']:.3f} "
        f"({abl['margin_drop_top'] / abl['margin_drop_random']:.0f}×)"])


if __name__ == "__main__":
    names = sys.argv[1:]
    print("| run | flags | val acc | min class | corr(W, W0) | max class corr | ‖ΔW‖/‖W‖ | CPU s |")
    print("|" + "---|" * 8)
    for name in names:
        print("| " + learning(name) + " |")
    print()
    print("| run | units ≠ 0 per class (min–max) | units holding 90 % of a class's Σ\\|W\\| "
          "| Σ\\|W\\| share per layer | "
          "1 % ablation: accuracy drop, top / random | classes losing ≥ 0.05 | margin drop, top / random |")
    print("|" + "---|" * 7)
    for name in names:
        print("| " + structure(name) + " |")
