"""Parity of NeuroView-RNN with the standard RNN classifier (issue 24): validation accuracy and time per training step.

Datasets: the built-in `sequences` world, and real UCR datasets that ship inside the `aeon` wheel (its .ts files are
converted here, into a temporary folder in the UCR layout, which `--data ucr` then reads; nv itself never converts
or downloads). Get the wheel's data without installing it into any environment:
    pip download --no-deps aeon -d /tmp/aeon_dl && mkdir -p /tmp/aeon && cd /tmp/aeon && unzip -q \\
        /tmp/aeon_dl/aeon-*.whl 'aeon/datasets/data/*'
For each dataset, architecture and seed both models train with one recipe (AdamW, cosine schedule, nv's defaults
otherwise); accuracy is the final epoch's on TEST (mean and sd over seeds). Time per step: the median over `--steps`
timed steps of forward, cross-entropy, backward and optimizer step on one batch, after warm-up, the two models'
steps alternating; one CPU thread (or --device cuda).
Run: OMP_NUM_THREADS=1 python benchmarks/bench_rnn.py --aeon /tmp/aeon/aeon/datasets/data [--seeds 3] [--out CSV]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nvcli.data.registry import data_options, load_data
from nvcli.models.build import build_model
from nvcli.models.spec import ModelChoice
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import spec_for, train

# name -> (epochs, batch size); small TRAIN splits get more epochs
UCR = {"ItalyPowerDemand": (60, 16), "GunPoint": (100, 16), "ArrowHead": (100, 16),
       "PickupGestureWiimoteZ": (100, 16)}


def ts_to_ucr(source: Path, out: Path) -> Path:
    """Convert one aeon/sktime `.ts` dataset (univariate; `v1,v2,...:label` lines after `@data`) to <Name>_*.tsv."""
    name = source.name
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("TRAIN", "TEST"):
        lines, data = [], False
        for line in (source / f"{name}_{split}.ts").read_text(encoding="utf-8", errors="replace").splitlines():
            if data and line.strip():
                *values, label = line.strip().split(":")
                if len(values) != 1:
                    raise SystemExit(f"{name}: only univariate .ts files are converted")
                series = [v if v not in ("?", "") else "NaN" for v in values[0].split(",")]
                lines.append("\t".join([label.strip(), *series]))
            data = data or line.strip().lower() == "@data"
        (folder / f"{name}_{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def step_times(choices: list[ModelChoice], bundle, batch_size: int, steps: int, device: str) -> list[float]:
    """Median seconds of one training step (forward, loss, backward, AdamW step) on one batch of the train split, per
    model; the models' steps alternate, so a machine shared with other work slows each of them alike."""
    torch.manual_seed(0)
    x = torch.stack([bundle.train[i][0] for i in range(min(batch_size, len(bundle.train)))]).to(device)
    y = torch.tensor([bundle.train[i][1] for i in range(len(x))], device=device)
    models = [build_model(spec_for(choice, bundle)).to(device).train() for choice in choices]
    optimizers = [torch.optim.AdamW(model.parameters(), lr=1e-3) for model in models]
    times: list[list[float]] = [[] for _ in models]
    for i in range(steps + 5):
        for model, optimizer, spent in zip(models, optimizers, times):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= 5:
                spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aeon", type=Path, help="aeon's datasets/data folder (UCR datasets; skipped if absent)")
    parser.add_argument("--ucr", default=",".join(UCR), help="the UCR datasets to run (comma-separated)")
    parser.add_argument("--archs", default="gru,lstm")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--time-only", action="store_true", help="time the training steps; train nothing")
    parser.add_argument("--out", type=Path, default=Path("bench_rnn.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nv-bench-rnn-") as tmp:
        datasets = [("sequences", {"length": 64}, (30, 32))]
        if args.aeon is not None and args.aeon.is_dir():
            datasets += [("ucr", {"data_dir": str(ts_to_ucr(args.aeon / name, Path(tmp) / "ucr"))}, recipe)
                         for name, recipe in UCR.items() if name in args.ucr.split(",") and (args.aeon / name).is_dir()]
        for data, settings, (epochs, batch) in datasets:
            label = Path(settings.get("data_dir", data)).name
            bundle = load_data(data, settings)
            for arch in args.archs.split(","):
                choices = [ModelChoice(arch=arch, hidden_size=args.hidden, baseline=b) for b in (False, True)]
                seconds = step_times(choices, bundle, batch, args.steps, args.device)
                for choice, spent in zip(choices, seconds):
                    accuracy = []
                    for seed in range(0 if args.time_only else args.seeds):
                        cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=3e-3, seed=seed, threads=1,
                                          device=args.device)
                        run = train(choice, data, data_options(data, {**settings, "seed": seed}), cfg,
                                    name=f"{label}-{arch}-{choice.baseline}-{seed}", runs_dir=Path(tmp) / "runs")
                        accuracy.append(float(pd.read_csv(run.dir / "metrics.csv")["val_acc"].iloc[-1]))
                    rows.append({"dataset": label, "steps": bundle.input_shape[-1], "train": len(bundle.train),
                                 "test": len(bundle.val), "arch": arch,
                                 "model": "baseline" if choice.baseline else "NeuroView-RNN", "epochs": epochs,
                                 "accuracy": np.mean(accuracy) if accuracy else np.nan,
                                 "accuracy_sd": np.std(accuracy, ddof=1)
                                 if len(accuracy) > 1 else 0.0, "ms_per_step": 1000 * spent})
                    print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out, index=False)
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
