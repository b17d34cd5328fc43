"""Batched prediction: every sample's logits under several input transforms, in one pass over the data, or only
the counts an accuracy needs, which several processes under torchrun add up (each predicting its share)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from . import distributed as dist
from .loaders import batches, make_loader

log = logging.getLogger(__name__)
# progress(phase, done, total): phase is "train" or "val"; called after every batch.
ProgressFn = Callable[[str, int, int], None]
Transforms = dict[str, Callable[[Tensor], Tensor]]


def _outputs(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device, workers: int,
             transforms: Transforms, progress: ProgressFn | None) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
    """({name: logits of the batch}, labels) per batch, on `device`, in order."""
    model.eval()
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers, pin_memory=device.type == "cuda")
    for step, (x, y) in enumerate(batches(loader, device), 1):
        yield {name: model(fn(x)).float() for name, fn in transforms.items()}, y
        if progress:
            progress("val", step, len(loader))


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, *, batch_size: int = 128, device: torch.device | str = "cpu",
            workers: int = 0, transforms: Transforms | None = None,
            progress: ProgressFn | None = None) -> tuple[dict[str, Tensor], Tensor]:
    """Logits for every sample under each named input transform, in one pass over the data (one process).

    Returns ({name: logits [N, classes]}, labels [N]) on the CPU; with no transforms, the one name is "none".
    Outputs stay on `device` until the pass ends, so no batch waits for a copy back to the host.
    """
    device = torch.device(device)
    transforms = transforms or {"none": lambda x: x}
    outputs: dict[str, list[Tensor]] = {name: [] for name in transforms}
    labels = []
    for logits, y in _outputs(model, dataset, batch_size, device, workers, transforms, progress):
        for name, out in logits.items():
            outputs[name].append(out)
        labels.append(y)
    return {k: torch.cat(v).cpu() for k, v in outputs.items()}, torch.cat(labels).cpu()


@dataclass
class Tally:
    """What one pass counted under one transform: the confusion matrix and the summed cross-entropy."""

    confusion: Tensor  # int64 [classes, classes]: true class x predicted class
    loss_sum: float

    @property
    def samples(self) -> int:
        return int(self.confusion.sum())

    @property
    def correct(self) -> int:
        return int(self.confusion.diagonal().sum())

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else float("nan")

    @property
    def loss(self) -> float:
        """The mean cross-entropy."""
        return self.loss_sum / self.samples if self.samples else float("nan")


@torch.no_grad()
def tally(model: nn.Module, dataset: Dataset, *, classes: int | None = None, batch_size: int = 128,
          device: torch.device | str = "cpu", workers: int = 0, transforms: Transforms | None = None,
          progress: ProgressFn | None = None) -> dict[str, Tally]:
    """The confusion matrix and summed loss of `dataset` under each named transform ("none" without any).

    `classes` defaults to the model's number of outputs. Under torchrun each process predicts its share of whole
    batches and the counts are summed over processes, so every process returns what one process would (counts
    exactly; the loss to float rounding).
    """
    device = torch.device(device)
    transforms = transforms or {"none": lambda x: x}
    rows = dist.my_rows(len(dataset), batch_size)
    mine = dataset if len(rows) == len(dataset) else Subset(dataset, rows)
    if dist.is_distributed():
        log.info("process %d of %d predicts %d of %d samples", dist.rank(), dist.world_size(), len(rows), len(dataset))
    counts: Tensor | None = None
    losses = torch.zeros(len(transforms), dtype=torch.float64, device=device)
    for logits, y in _outputs(model, mine, batch_size, device, workers, transforms, progress):
        for i, out in enumerate(logits.values()):
            if counts is None:
                classes = classes or out.shape[1]
                counts = torch.zeros(len(transforms), classes * classes, dtype=torch.long, device=device)
            counts[i] += torch.bincount(y * classes + out.argmax(1), minlength=classes * classes)
            losses[i] += F.cross_entropy(out, y, reduction="sum").double()
    # A process whose share holds no batch learns the number of outputs from the others.
    classes = int(dist.gather_rows(torch.tensor([classes or 0])).max())
    total = counts.cpu() if counts is not None else torch.zeros(len(transforms), classes * classes, dtype=torch.long)
    total, losses = dist.sum_(total), dist.sum_(losses.cpu())
    return {name: Tally(total[i].view(classes, classes), float(losses[i])) for i, name in enumerate(transforms)}
