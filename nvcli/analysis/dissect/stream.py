"""Streaming a probe set through a model, shared by the threshold and IoU passes of Network Dissection: the
loader, each batch's unit maps (checked finite), counting on a device without reading values back, progress."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ...errors import NvError
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
    """Refuses maps with NaN: at once on the CPU, at the end of a pass where reading a flag would stall the device."""

    def __init__(self, device: torch.device) -> None:
        self.eager, self.seen = not sync_free(device), None

    def add(self, maps: list[Tensor]) -> None:
        flags = torch.stack([torch.isnan(m).any() for m in maps])
        self.seen = flags if self.seen is None else self.seen | flags
        if self.eager:
            self.check()

    def check(self) -> None:
        """Raise if any map so far held NaN, naming the first such layer."""
        if self.seen is not None and bool(self.seen.any()):
            layer = int(self.seen.nonzero()[0, 0])
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


def probe_loader(dataset: Any, batch_size: int, workers: int, collate: Callable, device: torch.device) -> DataLoader:
    if batch_size < 1:
        raise NvError(f"batch size {batch_size} must be at least 1")
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate,
                      pin_memory=device.type == "cuda")  # pinned pages copy to the GPU without blocking the host
