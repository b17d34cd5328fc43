"""GPU readiness: training throughput of NeuroView, its baseline and the cheapest head, as the paper trains them.

For each architecture (default VGG11 and ResNet18) three models train on synthetic images (default 224 px)
for a fixed number of steps through a tuned GPU input and step path: a DataLoader with pinned memory and
persistent workers, non-blocking copies, channels_last, `--amp` (bfloat16 where supported, else float16 with
loss scaling: nv's `amp_dtype`) and optionally `torch.compile`. `nv train` shares the models, AMP and the
non-blocking copies, but not persistent workers, channels_last or compile: this measures what the models
can reach on a GPU, the ceiling for the trainer:

  neuroview  - NeuroView (soft codes, max), nv's model as `nv train` builds it
  baseline   - the standard network (Table 1's baseline)
  gap        - the same trunk + global average pool + one linear layer: the cheapest head

It prints images/s and peak GPU memory per model, NeuroView against its baseline, and the NeuroView
head's overhead: its step time over the cheapest head's on the same trunk, checked against
`--max-overhead` (1.03). Timing: after `--warmup` steps, `--rounds` interleaved rounds of `--steps`
steps per model, median round. Exit status 1 if a check fails. Runs on the CPU too (small sizes):

    python benchmarks/gpu_check.py                                 # CUDA, 224 px, VGG11 + ResNet18
    python benchmarks/gpu_check.py --amp --compile --batch 128
    python benchmarks/gpu_check.py --device cpu --size 32 --batch 8 --steps 2 --archs smallcnn
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from typing import Iterator

import torch
import torch.nn.functional as F
from bench_head import GapHead  # benchmarks/ is the script's folder
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from nvcli.data.registry import IMAGENET_MEAN, IMAGENET_STD
from nvcli.models.build import build_model
from nvcli.models.neuroview import Normalize
from nvcli.models.spec import ModelChoice, ModelSpec
from nvcli.training.devices import amp_dtype, precision_name, resolve_device


class SyntheticImages(Dataset):
    """`length` random uint8 images (a bank of 64, reused) decoded to float like an image folder's."""

    def __init__(self, length: int, size: int, classes: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.bank = torch.randint(0, 256, (64, 3, size, size), dtype=torch.uint8, generator=g)
        self.labels = torch.randint(0, classes, (length,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.bank[i % len(self.bank)].float().div_(255), self.labels[i]


def batches(args: argparse.Namespace, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless batches on `device` (channels_last), copied from pinned memory without blocking the host."""
    loader = DataLoader(SyntheticImages(args.batch * 8, args.size, args.classes), batch_size=args.batch,
                        shuffle=True, num_workers=args.workers, pin_memory=device.type == "cuda",
                        persistent_workers=args.workers > 0, drop_last=True)
    for x, y in itertools.chain.from_iterable(itertools.repeat(loader)):
        yield (x.to(device, non_blocking=True, memory_format=torch.channels_last), y.to(device, non_blocking=True))


def models(arch: str, classes: int, size: int) -> dict[str, nn.Module]:
    spec = ModelSpec.of(ModelChoice(arch=arch), num_classes=classes, input_shape=(3, size, size),
                        mean=IMAGENET_MEAN, std=IMAGENET_STD)
    base = ModelSpec.of(ModelChoice(arch=arch, baseline=True), num_classes=classes, input_shape=(3, size, size),
                        mean=IMAGENET_MEAN, std=IMAGENET_STD)
    trunk = build_model(base).network  # a fresh standard network, without the normalisation
    return {"neuroview": build_model(spec), "baseline": build_model(base),
            "gap": nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD), GapHead(trunk, classes, (3, size, size)))}


class Stepper:
    """One model's training step with the precision, memory format and compilation asked for."""

    def __init__(self, model: nn.Module, device: torch.device, dtype: torch.dtype, compile_: bool) -> None:
        self.model = model.to(device, memory_format=torch.channels_last).train()
        self.net = torch.compile(self.model) if compile_ else self.model
        self.device, self.dtype = device, dtype
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def step(self, x: Tensor, y: Tensor) -> None:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            loss = F.cross_entropy(self.net(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def run(self, data: Iterator[tuple[Tensor, Tensor]], steps: int) -> float:
        """Seconds for `steps` steps, the device drained before and after."""
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step(*next(data))
        synchronize(self.device)
        return time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device, stepper: Stepper, data: Iterator[tuple[Tensor, Tensor]]) -> float | None:
    """Peak GPU memory of one more step of this model alone (None off CUDA)."""
    if device.type != "cuda":
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    stepper.run(data, 1)
    return torch.cuda.max_memory_allocated(device) / 2**30


def check(args: argparse.Namespace) -> bool:
    """Print the table; True when every head-overhead check passes."""
    device = resolve_device(args.device)
    dtype = amp_dtype(device, args.amp)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"device={device} ({name}) torch={torch.__version__} precision={precision_name(dtype)} "
          f"compile={'on' if args.compile else 'off'} channels_last batch={args.batch} size={args.size} "
          f"workers={args.workers} steps={args.rounds}x{args.steps} (median round)")
    print(f"{'arch':10} {'model':10} {'images/s':>9} {'step ms':>8} {'peak GiB':>8}")
    data = batches(args, device)
    ok = True
    summary = []
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        built = models(arch, args.classes, args.size)
        steppers = {k: Stepper(m, device, dtype, args.compile) for k, m in built.items()}
        for stepper in steppers.values():
            stepper.run(data, args.warmup)
        rounds: dict[str, list[float]] = {k: [] for k in steppers}
        for _ in range(args.rounds):
            for k, stepper in steppers.items():
                rounds[k].append(stepper.run(data, args.steps) / args.steps)
        step = {k: statistics.median(v) for k, v in rounds.items()}
        for k, stepper in steppers.items():
            peak = peak_gib(device, stepper, data)
            print(f"{arch:10} {k:10} {args.batch / step[k]:9.1f} {step[k] * 1000:8.1f} "
                  f"{'n/a' if peak is None else f'{peak:.2f}':>8}")
        overhead = step["neuroview"] / step["gap"]
        passed = overhead <= args.max_overhead
        ok &= passed
        summary.append(f"{arch:10} {step['baseline'] / step['neuroview']:14.3f} {overhead:13.3f}  "
                       f"{'ok' if passed else 'FAIL'} (<= {args.max_overhead})")
        del steppers
    print(f"{'arch':10} {'nv/baseline':>14} {'head overhead':>13}  check")
    print("\n".join(summary))
    print("(nv/baseline: NeuroView's images/s over the baseline's; head overhead: NeuroView's step time over the "
          "cheapest head's on the same trunk)")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cpu, mps or auto")
    parser.add_argument("--archs", default="vgg11,resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--classes", type=int, default=365, help="365: Places365, as in the paper")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, cuDNN autotuning)")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers (persistent)")
    parser.add_argument("--amp", action="store_true", help="mixed precision as nv train --amp does it")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--max-overhead", type=float, default=1.03,
                        help="largest allowed NeuroView step time over the cheapest head's")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    return 0 if check(args) else 1


if __name__ == "__main__":
    sys.exit(main())
