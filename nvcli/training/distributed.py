"""DistributedDataParallel plumbing for training under torchrun, one process per device (docs/scale.md)."""
from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes in the environment; False when running alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    log.info("joined the process group: rank %d of %d (%s, node rank %s)", dist.get_rank(), dist.get_world_size(),
             dist.get_backend(), os.environ.get("GROUP_RANK", "?"))
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """Whether this process writes files (rank 0, or the only process)."""
    return rank() == 0


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum numbers over all processes (identity when alone)."""
    if not is_distributed():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
