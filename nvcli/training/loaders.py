"""DataLoaders whose order depends only on (seed, epoch), so a resumed run sees the same batches."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..errors import NvError

MAX_WORKERS = 256  # worker processes per loader: more would exhaust the machine's processes, not speed it up


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, workers: int = 0, seed: int = 0,
                epoch: int = 0, distributed: bool = False, pin_memory: bool = False) -> DataLoader:
    """A DataLoader whose order depends only on (seed, epoch), so a resumed run sees the same batches.

    `pin_memory` (for a CUDA device) lets `batches` copy each batch without blocking the host.
    """
    _check_workers(workers)
    if batch_size < 1:
        raise NvError(f"batch_size {batch_size} is out of range; use an integer >= 1", param="batch_size")
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    sampler = None
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed)
        sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, generator=generator, persistent_workers=False,
                      pin_memory=pin_memory, drop_last=False)


def batch_loader(dataset: Dataset, groups: Sequence[Sequence[int]], *, workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """A DataLoader giving the samples of each of `groups` as one batch, in order (its workers start once)."""
    _check_workers(workers)
    return DataLoader(dataset, batch_sampler=groups, num_workers=workers, pin_memory=pin_memory)


def _check_workers(workers: int) -> None:
    if not 0 <= workers <= MAX_WORKERS:
        raise NvError(f"workers {workers} is out of range; use 0 (load in the main process) to {MAX_WORKERS}",
                      param="workers")


def batches(loader: DataLoader, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
