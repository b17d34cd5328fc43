"""Cost of one batch's maps (issue 32, item 4): one plain forward pass against NeuroView's exact maps (`where`: one
forward pass with the pre-activation maps kept, no gradients) and Captum's Integrated Gradients at its default 50
steps, Grad-CAM and Occlusion, as `nv attribute` computes them (maps of each input's own class); untrained
weights (the cost does not depend on them).

Run: python benchmarks/bench_attribute.py [--archs smallcnn resnet18] [--batch 32] [--size 32] [--rounds 3]
"""
from __future__ import annotations

import argparse

import torch
from bench_where import CLASSES, median_time, model_and_head  # benchmarks/ is the script's folder, first on sys.path

from nvcli.analysis.attribution import attribution_maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["smallcnn", "resnet18"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--methods", nargs="+", default=["neuroview", "gradcam", "ig", "occlusion"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, device=args.device)
    target = torch.arange(args.batch, device=args.device) % CLASSES
    print(f"batch {args.batch} x 3 x {args.size} x {args.size}, {args.device}, {torch.get_num_threads()} thread(s); "
          f"median of {args.rounds}, ms and x one forward pass:")
    for arch in args.archs:
        model, head = model_and_head(arch, "max", args.size, args.device)

        def forward() -> None:
            with torch.no_grad():
                model(x)

        plain = median_time(forward, args.rounds)
        cells = [f"forward {plain * 1000:.1f}"]
        for method in args.methods:
            took = median_time(lambda: attribution_maps(method, model, head, x, target, args.batch), args.rounds)
            cells.append(f"{method} {took * 1000:.1f} = {took / plain:.1f}x")
        print(f"  {arch:10s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
