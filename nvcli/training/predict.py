"""Batched prediction: every sample's logits under several input transforms, in one pass over the data."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .loaders import batches, make_loader

# progress(phase, done, total): phase is "train" or "val"; called after every batch.
ProgressFn = Callable[[str, int, int], None]


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, *, batch_size: int = 128, device: torch.device | str = "cpu",
            workers: int = 0, transforms: dict[str, Callable[[Tensor], Tensor]] | None = None,
            progress: ProgressFn | None = None) -> tuple[dict[str, Tensor], Tensor]:
    """Logits for every sample under each named input transform, in one pass over the data.

    Returns ({name: logits [N, classes]}, labels [N]) on the CPU; with no transforms, the one name is "none".
    Outputs stay on `device` until the pass ends, so no batch waits for a copy back to the host.
    """
    device = torch.device(device)
    transforms = transforms or {"none": lambda x: x}
    model.eval()
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers, pin_memory=device.type == "cuda")
    outputs: dict[str, list[Tensor]] = {name: [] for name in transforms}
    labels = []
    for step, (x, y) in enumerate(batches(loader, device), 1):
        for name, fn in transforms.items():
            outputs[name].append(model(fn(x)).float())
        labels.append(y)
        if progress:
            progress("val", step, len(loader))
    return {k: torch.cat(v).cpu() for k, v in outputs.items()}, torch.cat(labels).cpu()
