"""Does a wide NeuroView head diverge, and what keeps it stable? Per-step training loss for one recipe.

usage: OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/wide_head.py [--arch resnet50] [--data shapes|views]
       [--image-size 32] [--per-class 20] [--views 12] [--shared] [--steps 30] [--bs 32] [--lr 1e-3]
       [--hlr auto|FLOAT] [--opt adamw|sgd] [--reduce mean] [--code soft] [--width W] [--centre] [--json OUT]

`--hlr auto` is nv's default head learning-rate scale (resolved from the head's width); a number fixes it.
`--width W` replaces the architecture with `wide_probe(W)`: a stride-4 stem (32 units) and one 1x1
convolution of W units, a cheap way to vary the head's width alone. Prints one line per step: loss, the
largest move of any logit on a fixed probe batch since the previous step, and the mean soft code.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)
from nvcli.data.registry import load_data  # noqa: E402
from nvcli.models.build import build_model  # noqa: E402
from nvcli.models.multiview import MultiViewNeuroView  # noqa: E402
from nvcli.models.neuroview import NeuroView  # noqa: E402
from nvcli.models.spec import ModelChoice  # noqa: E402
from nvcli.training.config import TrainConfig  # noqa: E402
from nvcli.training.engine import _optimizer  # noqa: E402
from nvcli.training.recipes import spec_for  # noqa: E402


def wide_probe(width: int) -> nn.Module:
    """A stride-4 3x3 stem of 32 channels, then a 1x1 convolution to `width` channels: 32 + width units."""
    return nn.Sequential(nn.Conv2d(3, 32, 3, stride=4, padding=1), nn.ReLU(),
                         nn.Conv2d(32, width, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 10))


class Centred(nn.Module):
    """`head(z - centre)` for a fixed centre."""

    def __init__(self, head: nn.Linear, centre: torch.Tensor) -> None:
        super().__init__()
        self.inner = head
        self.register_buffer("centre", centre)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner(z - self.centre)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--width", type=int, default=0)
    parser.add_argument("--data", default="shapes")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--shared", action="store_true")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hlr", default="auto")
    parser.add_argument("--opt", default="adamw")
    parser.add_argument("--reduce", default="mean")
    parser.add_argument("--code", default="soft")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--centre", action="store_true", help="subtract the first batch's mean code (fixed)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    options = {"image_size": args.image_size, "train_per_class": args.per_class, "val_per_class": 2}
    if args.data == "views":
        options["views"] = args.views
    bundle = load_data(args.data, options)
    choice = ModelChoice(arch=args.arch, code=args.code, reduce=args.reduce, shared_backbone=args.shared)
    spec = spec_for(choice, bundle)
    if args.width:
        kw = dict(code=args.code, reduce=args.reduce, input_shape=spec.input_shape, mean=spec.mean, std=spec.std)
        model = (MultiViewNeuroView(lambda: wide_probe(args.width), spec.num_classes, views=spec.views,
                                    shared_backbone=args.shared, **kw) if spec.views
                 else NeuroView(wide_probe(args.width), spec.num_classes, **kw))
    else:
        model = build_model(spec)
    hlr = {} if args.hlr == "auto" else {"head_lr_scale": float(args.hlr)}
    cfg = TrainConfig(lr=args.lr, optimizer=args.opt, batch_size=args.bs, device="cpu", **hlr)
    optimizer = _optimizer(model, cfg)
    units = model.head.in_features
    head_lr = next(g["lr"] for g in optimizer.param_groups if any(p is model.head.weight for p in g["params"]))
    print(f"units {units}  head lr {head_lr:.3g}  backbone lr {optimizer.param_groups[0]['lr']:.3g}", flush=True)

    loader = torch.utils.data.DataLoader(bundle.train, batch_size=args.bs, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(args.seed))
    probe = next(iter(loader))[0]
    model.train()
    if args.centre:  # logits W (z - m) + b: the same family of functions, centred inputs to the head
        with torch.no_grad():
            centre = model.features(probe).mean(0)
        model.head = Centred(model.head, centre)
    rows, step, start = [], 0, time.perf_counter()
    with torch.no_grad():
        before = model(probe)
    while step < args.steps:
        for x, y in loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                z = model.features(probe)
                after = model.head(z)
            step += 1
            row = {"step": step, "loss": loss.item(), "acc": (logits.argmax(1) == y).float().mean().item(),
                   "logit_move": (after - before).abs().max().item(), "code_mean": z.mean().item()}
            before = after
            rows.append(row)
            print(" ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
            if step >= args.steps or not math.isfinite(row["loss"]):
                break
        if not math.isfinite(rows[-1]["loss"]):
            break
    seconds = time.perf_counter() - start
    losses = [r["loss"] for r in rows]
    summary = {"args": {k: str(v) for k, v in vars(args).items()}, "units": units, "head_lr": head_lr,
               "first": losses[0], "max": max(losses), "last5": sum(losses[-5:]) / len(losses[-5:]),
               "seconds": seconds, "rows": rows}
    print(f"SUMMARY units {units} head_lr {head_lr:.3g} first {losses[0]:.3f} max {max(losses):.3f} "
          f"last5 {summary['last5']:.3f} ({seconds:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
