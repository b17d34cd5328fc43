"""Time of `where` (exact maps of every input's predicted class, one forward pass with the pre-activation maps kept)
against one plain forward pass of the same model on the same batch; untrained weights (the cost does not depend
on them). Also for 4 classes per input (one pass, more maps), and, with Captum installed, Integrated Gradients at
Captum's default 50 steps (one call, in batches of --batch images).

Run: python benchmarks/bench_where.py [--archs alexnet resnet18] [--batch 32] [--size 64] [--rounds 5] [--no-ig]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from nvcli.analysis.head import Head
from nvcli.analysis.where import where
from nvcli.models.build import build_model
from nvcli.models.spec import ModelSpec

CLASSES = 10


def median_time(call: Callable[[], object], rounds: int) -> float:
    """Median wall time of `call()` in seconds over `rounds` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_and_head(arch: str, reduce: str, size: int, device: str) -> tuple[torch.nn.Module, Head]:
    """An untrained NeuroView `arch` for `size` px RGB inputs and CLASSES classes, and its dense head."""
    spec = ModelSpec(arch=arch, reduce=reduce, num_classes=CLASSES, input_shape=(3, size, size))
    model = build_model(spec).to(device).eval()
    return model, Head.from_tensors(model.head.weight, model.head.bias, model.units(), [str(c) for c in range(CLASSES)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["smallcnn", "alexnet", "resnet18"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--reduce", default="max", choices=["max", "mean"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-ig", dest="ig", action="store_false", help="skip Integrated Gradients")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, device=args.device)
    print(f"batch {args.batch} x 3 x {args.size} x {args.size}, {args.reduce} reduce, {args.device}, "
          f"{torch.get_num_threads()} thread(s); median of {args.rounds}:")
    for arch in args.archs:
        model, head = model_and_head(arch, args.reduce, args.size, args.device)

        def forward() -> None:
            with torch.no_grad():
                model(x)

        plain = median_time(forward, args.rounds)
        one = median_time(lambda: where(model, head, x), args.rounds)
        four = median_time(lambda: where(model, head, x, classes=range(4)), args.rounds)
        line = (f"  {arch:10s} forward {plain * 1000:8.1f} ms   where (predicted class) {one * 1000:8.1f} ms "
                f"= {one / plain:5.1f}x   where (4 classes) {four * 1000:8.1f} ms = {four / plain:5.1f}x")
        if args.ig:
            from captum.attr import IntegratedGradients

            with torch.no_grad():
                target = model(x).argmax(dim=1)
            ig = IntegratedGradients(model)
            start = time.perf_counter()
            ig.attribute(x, target=target, internal_batch_size=args.batch)
            seconds = time.perf_counter() - start
            line += f"   IG (50 steps) {seconds * 1000:8.1f} ms = {seconds / plain:5.1f}x"
        print(line)


if __name__ == "__main__":
    main()
