"""Training-step time of NeuroView against the standard network and the cheapest head.

For each architecture, one batch, same machine, interleaved rounds (median of rounds):
  standard  - the unmodified network (its own classifier head)
  gap       - the same feature extractor + global average pool + one linear layer (the floor)
  nv-max    - NeuroView, soft codes reduced by max
  nv-mean   - NeuroView, soft codes reduced by mean
Run: python benchmarks/bench_head.py [--archs alexnet,vgg11,resnet18] [--batch 32] [--size 64]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from nvcli.models.archs import build_network
from nvcli.models.neuroview import NeuroView
from nvcli.models.units import network_trunk


class GapHead(nn.Module):
    """The cheapest head on the network's own feature extractor."""

    def __init__(self, network: nn.Module, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = network_trunk(network)
        with torch.no_grad():
            width = self.trunk.eval()(torch.zeros(2, *input_shape)).shape[1]
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trunk(x).mean(dim=(2, 3)))


def models(arch: str, classes: int, size: int) -> dict[str, nn.Module]:
    shape = (3, size, size)
    return {
        "standard": build_network(arch, classes, 3, size),
        "gap": GapHead(build_network(arch, classes, 3, size), classes, shape),
        "nv-max": NeuroView(build_network(arch, classes, 3, size), classes, reduce="max", input_shape=shape),
        "nv-mean": NeuroView(build_network(arch, classes, 3, size), classes, reduce="mean", input_shape=shape),
    }


def step_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="alexnet,vgg11,resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch} size={args.size} "
          f"torch={torch.__version__}")
    print(f"{'arch':10} {'standard':>10} {'gap':>10} {'nv-max':>10} {'nv-mean':>10}  "
          "max/gap  mean/gap  max/std  mean/std")
    for arch in args.archs.split(","):
        nets = {k: m.to(device) for k, m in models(arch, args.classes, args.size).items()}
        x = torch.rand(args.batch, 3, args.size, args.size, device=device)
        y = torch.randint(0, args.classes, (args.batch,), device=device)
        times: dict[str, list[float]] = {k: [] for k in nets}
        for name, net in nets.items():  # warm-up
            step_time(net, x, y, 2)
        for _ in range(args.rounds):
            for name, net in nets.items():
                times[name].append(step_time(net, x, y, args.steps))
                if device.type == "cuda":
                    torch.cuda.synchronize()
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"{arch:10} " + " ".join(f"{med[k]:9.1f}ms" for k in nets) +
              f"  {med['nv-max'] / med['gap']:7.3f}  {med['nv-mean'] / med['gap']:8.3f}"
              f"  {med['nv-max'] / med['standard']:7.3f}  {med['nv-mean'] / med['standard']:8.3f}")


if __name__ == "__main__":
    main()
