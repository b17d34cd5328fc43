"""Process-group plumbing under torchrun, one process per device: joining, ranks, each process's share of a
dataset, and the reductions that make sharded training and analyses equal one process's (docs/scale.md)."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def launched() -> bool:
    """Whether torchrun started this process in a world of several (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes in the environment; False when running alone.

    On CUDA the group has NCCL for GPU tensors and gloo for CPU ones (the analyses reduce small CPU counts).
    """
    if not launched():
        return False
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    log.info("joined the process group: rank %d of %d (%s, node rank %s)", dist.get_rank(), dist.get_world_size(),
             dist.get_backend(), os.environ.get("GROUP_RANK", "?"))
    return True


@contextmanager
def joined(device: torch.device) -> Iterator[bool]:
    """Inside: this process is in torchrun's group (True), or alone (False); the group is left at the end."""
    try:
        yield init_from_env(device)
    finally:
        cleanup()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes files (rank 0, or the only process)."""
    return rank() == 0


def my_share(count: int, *, world: int | None = None, me: int | None = None) -> range:
    """This process's contiguous share of `count` items (all of them when alone); shares differ by at most one."""
    world, me = world_size() if world is None else world, rank() if me is None else me
    return range(count * me // world, count * (me + 1) // world)


def my_rows(samples: int, batch_size: int) -> range:
    """This process's rows of a split: whole batches of `batch_size`, contiguous, so every batch is one a single
    process would form (its outputs are the same numbers)."""
    batches = my_share(-(-samples // batch_size))
    return range(min(batches.start * batch_size, samples), min(batches.stop * batch_size, samples))


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum numbers over all processes (identity when alone)."""
    return sum_(torch.tensor(values, dtype=torch.float64, device=device)).tolist() if is_distributed() else values


def sum_(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over all processes, in place (exact for integer counts; identity when alone)."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def min_(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor`'s elementwise minimum over all processes, in place (identity when alone)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def broadcast_(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` replaced by rank 0's, in place (identity when alone)."""
    if is_distributed():
        dist.broadcast(tensor, src=0)
    return tensor


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's `tensor` [n_rank, ...] concatenated in rank order (each n_rank may differ; identity alone)."""
    if not is_distributed():
        return tensor
    sizes = torch.tensor([len(tensor)], dtype=torch.long, device=tensor.device)
    counts = [torch.zeros_like(sizes) for _ in range(world_size())]
    dist.all_gather(counts, sizes)
    longest = int(max(c.item() for c in counts))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[:len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[:int(c.item())] for part, c in zip(parts, counts)])


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
