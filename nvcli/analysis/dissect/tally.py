"""The IoU tally of Network Dissection: binarise every unit's upsampled maps at its threshold and count, per
probe label, the overlap with the label's masks; each unit's concept is its best label.

Maps are resized to each image's mask size with bilinear interpolation; when a map is larger than the
mask the filter is widened (antialiasing), which matches the Pillow resize NetDissect uses. A unit is
active where its map exceeds its threshold (strict `>`); per label,
IoU = |active ∩ label| / (|active in images having any label of the label's category| + |label| - |active ∩ label|).
Under torchrun each process counts its share of the probe set and the counts are summed over the group.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ...data.broden import BrodenProbe, collate_probe
from ...training.distributed import my_rows, sum_
from ...training.predict import ProgressFn
from ..settings import DEFAULT_IOU_THRESHOLD, DEFAULT_QUANTILE
from .quantile import DEFAULT_COLLECT_BUDGET, unit_thresholds
from .stream import FiniteCheck, MapsFn, PassCounter, agree_channels, count, probe_loader, sync_free, unit_maps

log = logging.getLogger(__name__)

_ELEMENTS = 1 << 24  # upsampled map elements processed at once (64 MiB of float32)
UNIT_COLUMNS = ["unit", "layer", "channel", "concept", "category", "iou", "threshold", "interpretable"]


@dataclass
class Tally:
    """Pass-2 counts for every unit × label (labels = the probe's, in number order)."""

    channels: list[int]  # units per layer, in maps_fn's order
    thresholds: Tensor  # float32 [U]
    labels: list[int]  # global label numbers: the columns below
    names: list[str]
    categories: list[str]  # each label's primary category
    intersection: Tensor  # int64 [U, L]: active pixels on the label
    union: Tensor  # int64 [U, L]
    active: Tensor  # int64 [U]: active pixels over the whole probe set

    def iou(self) -> Tensor:
        """IoU per unit and label, float64 [U, L] (0 where the union is empty)."""
        union = self.union.double()
        return torch.where(union > 0, self.intersection.double() / union.clamp_min(1), 0.0)

    def table(self, iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> pd.DataFrame:
        """One row per unit: its best label over all categories (columns: UNIT_COLUMNS)."""
        iou = torch.cat([self.iou().cpu(), torch.zeros(len(self.active), 1, dtype=torch.double)], 1)
        best, arg = iou.max(1)
        arg = torch.where(best > 0, arg, len(self.names)).numpy()  # the extra column: no label matched at all
        best = best.numpy()
        return pd.DataFrame({
            "unit": np.arange(len(best)),
            "layer": np.repeat(np.arange(len(self.channels)), self.channels),
            "channel": np.concatenate([np.arange(c) for c in self.channels]),
            "concept": np.array(self.names + [""], dtype=object)[arg],
            "category": np.array(self.categories + [""], dtype=object)[arg],
            "iou": best, "threshold": self.thresholds.cpu().double().numpy(), "interpretable": best >= iou_threshold,
        }, columns=UNIT_COLUMNS)


class _Counts:
    """Pass-2 accumulators: intersections, per-category active pixels and label pixels."""

    def __init__(self, probe: BrodenProbe, thresholds: Tensor, channels: list[int], device: torch.device) -> None:
        numbers = list(probe.labels)
        cats = probe.categories
        self.n_labels, self.device, self.thresholds, self.channels = len(numbers), device, thresholds, channels
        self.sync_free = sync_free(device)
        self.lut = torch.full((max(numbers, default=0) + 1,), len(numbers), dtype=torch.long)  # on the host
        self.lut[numbers] = torch.arange(len(numbers))
        self.label_cat = torch.tensor([cats.index(probe.labels[n].category) for n in numbers], dtype=torch.long)
        self.cat_onehot = torch.zeros(len(numbers) + 1, len(cats), device=device)
        self.cat_onehot[torch.arange(len(numbers)), self.label_cat] = 1
        units = sum(channels)
        self.inter = torch.zeros(units, len(numbers), dtype=torch.long, device=device)
        self.active_in_cat = torch.zeros(units, len(cats), dtype=torch.long, device=device)
        self.label_pixels = torch.zeros(len(numbers), dtype=torch.long, device=device)
        self.active = torch.zeros(units, dtype=torch.long, device=device)

    def _dense(self, layers: dict[str, Tensor]) -> Tensor:
        stack = torch.cat(list(layers.values())).long()
        return self.lut[stack.clamp_max(len(self.lut) - 1)].where(stack < len(self.lut), self.n_labels)

    def add(self, maps: list[Tensor], masks: list[dict[str, Tensor]]) -> None:
        """Count one batch: maps per layer [B, C, h, w], masks per image."""
        sizes = [tuple(next(iter(m.values())).shape[-2:]) for m in masks]
        none = self.n_labels  # the padding index: "no label"
        for size in dict.fromkeys(sizes):
            rows = [i for i, s in enumerate(sizes) if s == size]
            dense = [self._dense(masks[i]) for i in rows]
            depth = max(d.shape[0] for d in dense)
            # Built on the host and sent once: one copy per batch and mask size, not one per image.
            labels = torch.full((len(rows), depth, size[0] * size[1]), none, dtype=torch.long)
            for j, d in enumerate(dense):
                labels[j, :d.shape[0]] = d.flatten(1)
            labels = labels.transpose(1, 2).contiguous()  # [n, P, K]: the labels at each pixel
            index = torch.tensor(rows)
            if self.device.type == "cuda":
                labels, index = labels.pin_memory(), index.pin_memory()
            labels = labels.to(self.device, non_blocking=True)
            index = index.to(self.device, non_blocking=True)
            self.label_pixels += count(labels.flatten(), none + 1)[:none]
            image = torch.arange(len(rows), device=self.device)[:, None, None]
            present = count((image * (none + 1) + labels).flatten(), len(rows) * (none + 1)) > 0
            has_cat = (present.view(len(rows), none + 1).float() @ self.cat_onehot > 0).long()  # [n, categories]
            offset = 0
            for m in maps:
                self._add_layer(m[index], offset, labels, has_cat, size)
                offset += m.shape[1]

    def _pairs(self, maps: Tensor, thr: Tensor) -> tuple[Tensor, Tensor]:
        """The (image, unit) maps to upsample: those that exceed their threshold somewhere, or all of them
        where choosing would read a count back from the device."""
        if self.sync_free:
            n, channels = maps.shape[:2]
            return (torch.arange(n, device=maps.device).repeat_interleave(channels),
                    torch.arange(channels, device=maps.device).repeat(n))
        # Bilinear interpolation never exceeds its inputs' maximum: maps below threshold everywhere are skipped.
        return (maps.amax((2, 3)) > thr).nonzero(as_tuple=True)

    def _add_layer(self, maps: Tensor, offset: int, labels: Tensor, has_cat: Tensor, size: tuple[int, int]) -> None:
        channels = maps.shape[1]
        thr = self.thresholds[offset:offset + channels]
        none = self.n_labels
        image, unit = self._pairs(maps, thr)
        pixels = size[0] * size[1]
        step = max(1, _ELEMENTS // (pixels * (max(labels.shape[2], 1) if self.sync_free else 1)))
        for start in range(0, len(image), step):
            img, u = image[start:start + step], unit[start:start + step]
            up = F.interpolate(maps[img, u][:, None], size=size, mode="bilinear", align_corners=False, antialias=True)
            active = up.flatten(1) > thr[u, None]
            hits = active.sum(1)
            self.active.index_add_(0, offset + u, hits)
            self.active_in_cat.index_add_(0, offset + u, hits[:, None] * has_cat[img])
            if self.sync_free:  # every pixel, inactive ones counted as "no label"
                hit = torch.where(active[:, :, None], labels[img], none)  # [m, P, K]
                flat = (u[:, None, None] * (none + 1) + hit).flatten()
            else:  # only the active pixels
                which, pixel = active.nonzero(as_tuple=True)
                hit = labels[img[which], pixel]  # [A, K]
                flat = (u[which, None] * (none + 1) + hit).flatten()
            self.inter[offset:offset + channels] += count(flat, channels * (none + 1)).view(channels, -1)[:, :none]

    def tally(self, probe: BrodenProbe) -> Tally:
        """The table of the whole probe set: the counts summed over the processes, each of which counted its share."""
        for total in (self.inter, self.active_in_cat, self.label_pixels, self.active):
            sum_(total)
        numbers = list(probe.labels)
        union = self.active_in_cat[:, self.label_cat.to(self.device)] + self.label_pixels - self.inter
        return Tally(
            channels=self.channels, thresholds=self.thresholds, labels=numbers,
            names=[probe.labels[n].name for n in numbers], categories=[probe.labels[n].category for n in numbers],
            intersection=self.inter, union=union, active=self.active,
        )


def tally_units(
    maps_fn: MapsFn,
    probe: BrodenProbe,
    thresholds: Tensor,
    batch_size: int = 16,
    workers: int = 0,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    counter: PassCounter | None = None,
) -> Tally:
    """Pass 2: binarise every unit's upsampled maps at its threshold and count overlaps with every label."""
    device = torch.device(device)
    loader = probe_loader(probe, batch_size, workers, collate_probe, device)
    counter = counter or PassCounter(progress, len(loader), 1)
    counts, channels = None, None
    thresholds = thresholds.to(device)
    finite = FiniteCheck(device)
    log.info("IoU pass over %d images", len(probe))
    for batch in loader:
        maps = unit_maps(maps_fn, batch["images"].to(device, non_blocking=True), channels, finite)
        if counts is None:
            channels = [m.shape[1] for m in maps]
            if sum(channels) != len(thresholds):
                raise ValueError(f"maps_fn gives {sum(channels)} units but {len(thresholds)} thresholds were given")
            counts = _Counts(probe, thresholds, channels, device)
        counts.add(maps, batch["masks"])
        counter.step()
    finite.check()
    channels = agree_channels(channels)  # a process given no batches learns the units from the group
    counts = counts or _Counts(probe, thresholds, channels, device)
    result = counts.tally(probe)
    silent = int((result.active == 0).sum())
    if silent:
        log.warning("%d of %d units never exceed their threshold (ties at the top, e.g. saturated codes); "
                       "their IoU is 0", silent, len(thresholds))
    return result


def dissect(
    maps_fn: MapsFn,
    probe: BrodenProbe,
    quantile: float = DEFAULT_QUANTILE,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    batch_size: int = 16,
    workers: int = 0,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    collect_budget: int = DEFAULT_COLLECT_BUDGET,
) -> pd.DataFrame:
    """Label every unit with its best-matching probe concept (columns: UNIT_COLUMNS)."""
    size = max(batch_size, 1)  # probe_loader refuses a smaller one
    counter = PassCounter(progress, -(-len(my_rows(len(probe), size)) // size), 3)  # this process's batches
    thresholds = unit_thresholds(maps_fn, probe, quantile, batch_size, workers, device,
                                 collect_budget=collect_budget, counter=counter)
    return tally_units(maps_fn, probe, thresholds, batch_size, workers, device, counter=counter).table(iou_threshold)
