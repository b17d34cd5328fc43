"""Streaming a probe set through a model, shared by the threshold and IoU passes of Network Dissection: the
loader (this process's share under torchrun), each batch's unit maps (checked finite in every process), counting
on a device without reading values back, progress."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from ...errors import NvError
from ...training.distributed import gather_rows, is_distributed, min_, my_rows, sum_
from ...training.predict import ProgressFn

MapsFn = Callable[[Tensor], Sequence[Tensor]]


class PassCounter:
    """Counts batches over passes whose number is known only as the passes go."""

    def __init__(self, fn: ProgressFn | None, batches: int, passes: int) -> None:
        self.fn, self.batches, self.done, self.total = fn, batches, 0, batches * passes

    def step(self) -> None:
        self.done += 1
        if self.fn is not None:
            self.fn("probe", self.done, self.total)

    def add_pass(self) -> None:
        self.total += self.batches


# Devices that run asynchronously from the host: there a data-dependent shape (nonzero, a boolean mask,
# bincount's output length) or a Python value read from a tensor stops the host until the device catches
# up, so the hot loops use fixed shapes and scatter-adds. On the CPU the shorter data-dependent forms win.
SYNC_FREE = {"cuda", "mps"}


def sync_free(device: torch.device) -> bool:
    """Whether the hot loops on `device` must avoid reading values back to the host."""
    return device.type in SYNC_FREE


def count(index: Tensor, size: int) -> Tensor:
    """How often each of 0..size-1 occurs in `index` (int64 [size]); every index must be in range."""
    if sync_free(index.device):  # CUDA's bincount reads the maximum back to size its output
        return torch.zeros(size, dtype=torch.long, device=index.device).index_add_(0, index, torch.ones_like(index))
    return torch.bincount(index, minlength=size)


class FiniteCheck:
    """Refuses maps with NaN: at once on the CPU, at the end of a pass where reading a flag would stall the device
    or where every process of a group must raise together (one raising alone leaves the others in a collective)."""

    def __init__(self, device: torch.device) -> None:
        self.eager, self.seen = not sync_free(device) and not is_distributed(), None

    def add(self, maps: list[Tensor]) -> None:
        flags = torch.stack([torch.isnan(m).any() for m in maps])
        self.seen = flags if self.seen is None else self.seen | flags
        if self.eager:
            self.check()

    def check(self) -> None:
        """Raise if any map so far, in any process, held NaN, naming the first such layer."""
        clean = torch.iinfo(torch.long).max
        flags = self.seen if self.seen is not None else torch.zeros(0, dtype=torch.bool)
        layer = int(min_(torch.tensor([int(flags.nonzero()[0, 0]) if bool(flags.any()) else clean])))
        if layer != clean:
            raise NvError(f"the model's activations in layer {layer} contain NaN; dissection needs finite maps")


def unit_maps(maps_fn: MapsFn, images: Tensor, channels: list[int] | None, finite: FiniteCheck) -> list[Tensor]:
    with torch.inference_mode():
        maps = list(maps_fn(images))
    if not maps or any(m.dim() != 4 or m.shape[0] != images.shape[0] for m in maps):
        shapes = [tuple(m.shape) for m in maps]
        raise ValueError(f"maps_fn must return a list of [B, C, h, w] tensors for B={images.shape[0]}; got {shapes}")
    if channels is not None and [m.shape[1] for m in maps] != channels:
        raise ValueError(f"maps_fn returned {[m.shape[1] for m in maps]} channels per layer, before {channels}")
    finite.add(maps)
    return [m.to(torch.float32) for m in maps]


def agree_channels(channels: list[int] | None) -> list[int]:
    """The units per layer of maps_fn, known in every process: one given no batches learns them from the others."""
    if not is_distributed():
        return channels
    every = gather_rows(torch.tensor(channels or [], dtype=torch.long))  # the lists of the processes that streamed
    streamed = int(sum_(torch.tensor([int(channels is not None)])))
    return every[:len(every) // streamed].tolist()


def probe_share(dataset: Dataset, batch_size: int) -> Dataset:
    """This process's rows of the probe set: whole batches, contiguous, so its batches are one process's (all
    rows when alone)."""
    return Subset(dataset, my_rows(len(dataset), batch_size))


def probe_loader(dataset: Any, batch_size: int, workers: int, collate: Callable, device: torch.device) -> DataLoader:
    """Batches of this process's share of `dataset`, in order."""
    if batch_size < 1:
        raise NvError(f"batch size {batch_size} must be at least 1")
    # Pinned pages copy to the GPU without blocking the host.
    return DataLoader(probe_share(dataset, batch_size), batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=collate, pin_memory=device.type == "cuda")
