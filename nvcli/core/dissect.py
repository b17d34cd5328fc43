"""Network Dissection (Bau et al. 2017) of every unit, and the concept–class map built on it (Fig. 4).

A unit's threshold is the (1 - quantile) quantile of all its activations over the probe set (exact,
torch.quantile's linear interpolation), found by radix selection in bounded memory. Its maps are then
upsampled bilinearly to each image's mask size and binarised with a strict `>`; per label,
IoU = |active ∩ label| / (|active in images having any label of the label's category| + |label| - |active ∩ label|).
The unit's concept is its best label over all selected categories. See docs/dissect.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from .broden import BrodenProbe, collate_probe, stack_images
from .errors import NvError, choice_error

logger = logging.getLogger(__name__)

MapsFn = Callable[[Tensor], Sequence[Tensor]]
Progress = Callable[[int, int], None]

DEFAULT_QUANTILE = 0.005
DEFAULT_IOU_THRESHOLD = 0.04
DEFAULT_COLLECT_BUDGET = 1 << 24  # candidate values kept for the final exact sort: 128 MiB of int64
_BINS = 1024  # histogram buckets per unit and refinement round
_HALF = 1 << 31
_ELEMENTS = 1 << 24  # upsampled map elements processed at once in pass 2 (64 MiB of float32)
UNIT_COLUMNS = ["unit", "layer", "channel", "concept", "category", "iou", "threshold", "interpretable"]
CLASS_COLUMNS = ["class", "concept", "category", "sign", "weight", "percent", "rank", "units"]


def float_keys(x: Tensor) -> Tensor:
    """Order-preserving int64 keys in [0, 2**32) for float32 values."""
    bits = x.to(torch.float32).contiguous().view(torch.int32)
    # Non-negative floats order like their bit patterns; negative ones in reverse (flip all but the sign).
    return (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long() + _HALF


def key_floats(keys: Tensor) -> Tensor:
    """The float32 values of keys made by `float_keys`."""
    bits = torch.where(keys >= _HALF, keys - _HALF, -1 - keys)
    return bits.to(torch.int32).view(torch.float32)


class _Progress:
    """Counts batches over passes whose number is known only as the passes go."""

    def __init__(self, fn: Progress | None, batches: int, passes: int) -> None:
        self.fn, self.batches, self.done, self.total = fn, batches, 0, batches * passes

    def step(self) -> None:
        self.done += 1
        if self.fn is not None:
            self.fn(self.done, self.total)

    def add_pass(self) -> None:
        self.total += self.batches


def _maps(maps_fn: MapsFn, images: Tensor, channels: list[int] | None) -> list[Tensor]:
    with torch.inference_mode():
        maps = list(maps_fn(images))
    if not maps or any(m.dim() != 4 or m.shape[0] != images.shape[0] for m in maps):
        shapes = [tuple(m.shape) for m in maps]
        raise ValueError(f"maps_fn must return a list of [B, C, h, w] tensors for B={images.shape[0]}; got {shapes}")
    if channels is not None and [m.shape[1] for m in maps] != channels:
        raise ValueError(f"maps_fn returned {[m.shape[1] for m in maps]} channels per layer, before {channels}")
    for layer, m in enumerate(maps):
        if bool(torch.isnan(m).any()):
            raise NvError(f"the model's activations in layer {layer} contain NaN; dissection needs finite maps")
    return [m.to(torch.float32) for m in maps]


class _Selector:
    """Exact per-unit order statistics (ranks r and r + 1) over streamed values, by radix selection.

    Values become 32-bit order-preserving keys. Each pass over the data either histograms the next
    bits of each unit's keys that share the prefix resolved so far (counts and minimum key per
    bucket), extending the prefix by the bucket holding rank r, or, once the candidates sharing the
    prefixes fit `budget`, collects them for an exact sort. At most 4 histogram rounds (10+10+10+2
    bits); usually one round, then one collection.
    """

    ROUNDS = ((22, 10), (12, 10), (2, 10), (0, 2))  # (shift, bits) of the key bits each round resolves

    def __init__(self, units: int, quantile: float, device: torch.device, budget: int) -> None:
        self.quantile, self.budget, self.device = quantile, budget, device
        self.prefix = torch.zeros(units, dtype=torch.long, device=device)  # the key's bits resolved so far
        self.below = torch.zeros(units, dtype=torch.long, device=device)  # values with a smaller prefix
        self.lower = torch.full((units,), -1, dtype=torch.long, device=device)  # key of rank r, once found
        self.upper = torch.full((units,), -1, dtype=torch.long, device=device)  # key of rank r + 1 (-2: unused)
        self.rank: Tensor | None = None
        self.expected: Tensor | None = None  # values each unit should show in the next pass
        self.round, self.collecting, self.open_bits = 0, False, 32
        self._start()

    def _start(self) -> None:
        units = len(self.prefix)
        if self.collecting:
            # One buffer of the known size: long-lived small chunks would fragment the heap.
            self.collected = torch.empty(int(self.expected.sum()) + 1, dtype=torch.long, device=self.device)
            self.filled = 0
        else:
            self.counts = torch.zeros(units, _BINS, dtype=torch.long, device=self.device)
            self.mins = torch.full((units, _BINS), torch.iinfo(torch.long).max, dtype=torch.long, device=self.device)

    def add(self, offset: int, maps: Tensor) -> None:
        """Feed one layer's maps [B, C, h, w], for units offset..offset + C."""
        channels = maps.shape[1]
        rows = slice(offset, offset + channels)
        keys = float_keys(maps).flatten(2)  # [B, C, P]
        unit = torch.arange(channels, device=keys.device)[None, :, None]
        if self.open_bits < 32:
            inside = (keys >> self.open_bits) == self.prefix[rows, None]
        if self.collecting:
            chunk = (keys | (unit + offset) << 32)[inside]
            end = min(self.filled + len(chunk), len(self.collected) - 1)  # more only if maps_fn drifted
            self.collected[self.filled:end] = chunk[:end - self.filled]
            self.filled = end
            return
        shift, bits = self.ROUNDS[self.round]
        flat = ((keys >> shift) & ((1 << bits) - 1)) + unit * _BINS
        dump = channels * _BINS  # values outside the prefix land here
        if self.open_bits < 32:
            flat = torch.where(inside, flat, dump)
        flat, keys = flat.flatten(), keys.flatten()
        self.counts[rows] += torch.bincount(flat, minlength=dump + 1)[:dump].view(channels, _BINS)
        mins = torch.full((dump + 1,), torch.iinfo(torch.long).max, dtype=torch.long, device=keys.device)
        mins.scatter_reduce_(0, flat, keys, reduce="amin")
        self.mins[rows] = torch.minimum(self.mins[rows], mins[:dump].view(channels, _BINS))

    def _check(self, seen: Tensor) -> None:
        if self.expected is not None and not torch.equal(seen, self.expected):
            logger.warning("maps_fn gave different values on different passes over the probe set "
                           "(a non-deterministic model or kernel?); the thresholds are approximate")

    def finish_pass(self) -> bool:
        """Extend prefixes or resolve after a pass; True when another pass is needed."""
        if self.collecting:
            self._resolve_collected()
            return False
        seen = self.counts.sum(1)
        self._check(seen)
        if self.rank is None:
            pos = (1 - self.quantile) * (seen - 1).double()
            self.rank = pos.floor().long()
            self.frac = pos - self.rank
            # Rank r + 1 is needed only when it carries weight in the interpolation.
            self.upper = torch.where(self.frac > 0, self.upper, -2)
        self.expected = self._narrow()
        if self.open_bits == 0:
            return False
        self.collecting = int(self.expected.sum()) <= self.budget
        self._start()
        return True

    def _narrow(self) -> Tensor:
        shift, bits = self.ROUNDS[self.round]
        cum = self.counts.cumsum(1)
        # The clamp only matters when maps_fn drifted between passes (see _check).
        t = torch.minimum(self.rank - self.below, cum[:, -1] - 1).clamp_min(0)[:, None]
        b = torch.searchsorted(cum, t, right=True).clamp_max(_BINS - 1)  # the bucket holding rank r
        before = torch.where(b > 0, cum.gather(1, (b - 1).clamp_min(0)), 0)
        in_b = self.counts.gather(1, b)
        # Rank r + 1 leaves the bucket exactly when r is its last value: then it is the next bucket's minimum.
        b1 = torch.searchsorted(cum, t + 1, right=True).clamp_max(_BINS - 1)
        leaves = (self.upper == -1) & (t + 1 >= before + in_b).squeeze(1)
        self.upper = torch.where(leaves, self.mins.gather(1, b1).squeeze(1), self.upper)
        self.prefix = self.prefix << bits | b.squeeze(1)
        self.below = self.below + before.squeeze(1)
        self.round, self.open_bits = self.round + 1, shift
        if shift == 0:  # the prefix is the whole key
            self.lower = self.prefix
            self.upper = torch.where(self.upper == -1, self.prefix, self.upper)
        return in_b.squeeze(1)

    def _resolve_collected(self) -> None:
        values = self.collected[:self.filled + 1]
        values[self.filled] = torch.iinfo(torch.long).max  # an end mark above every unit's keys
        if values.device.type == "cpu":
            values.numpy().sort()  # in place; torch.sort would also allocate values and indices
        else:
            values = torch.sort(values).values
        units = torch.arange(len(self.prefix), device=self.device)
        start, end = torch.searchsorted(values, units << 32), torch.searchsorted(values, (units + 1) << 32)
        self._check(end - start)

        def at(rank: Tensor) -> Tensor:
            # The clamps only matter when maps_fn drifted between passes; then a unit may have no values.
            index = torch.minimum(start + rank.clamp_min(0), (end - 1).clamp_min(start))
            return torch.where(end > start, values[index] & ((1 << 32) - 1), self.prefix << self.open_bits)

        self.lower = at(self.rank - self.below)
        self.upper = torch.where(self.upper == -1, at(self.rank - self.below + 1), self.upper)

    def thresholds(self) -> Tensor:
        """The interpolated quantiles, float32 [U]."""
        low = key_floats(self.lower).double()
        high = torch.where(self.upper >= 0, key_floats(self.upper.clamp(0, (1 << 32) - 1)).double(), low)
        value = torch.where(self.frac > 0, low + self.frac * (high - low), low)
        return value.to(torch.float32)


def _loader(dataset: Any, batch_size: int, workers: int, collate: Callable) -> DataLoader:
    if batch_size < 1:
        raise NvError(f"batch size {batch_size} must be at least 1")
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)


def unit_thresholds(
    maps_fn: MapsFn,
    probe: BrodenProbe,
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 16,
    workers: int = 0,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    collect_budget: int = DEFAULT_COLLECT_BUDGET,
    _counter: _Progress | None = None,
) -> Tensor:
    """Per unit, the exact (1 - quantile) quantile of its activations over all probe images and positions."""
    if not 0 < quantile < 1:
        raise NvError(f"quantile {quantile} must be between 0 and 1 (exclusive), e.g. {DEFAULT_QUANTILE}")
    device = torch.device(device)
    loader = _loader(probe.images_only(), batch_size, workers, stack_images)
    counter = _counter or _Progress(progress, len(loader), 2)
    selector, channels, again, passes = None, None, True, 0
    while again:
        passes += 1
        if passes > 2:
            counter.add_pass()
        logger.info("threshold pass %d (%s)", passes, "collect" if selector and selector.collecting else "histogram")
        for images in loader:
            maps = _maps(maps_fn, images.to(device), channels)
            if selector is None:
                channels = [m.shape[1] for m in maps]
                selector = _Selector(sum(channels), quantile, device, collect_budget)
            offset = 0
            for m in maps:
                selector.add(offset, m)
                offset += m.shape[1]
            counter.step()
        again = selector.finish_pass()
    return selector.thresholds()


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
        self.lut = torch.full((max(numbers, default=0) + 1,), len(numbers), dtype=torch.long)
        self.lut[numbers] = torch.arange(len(numbers))
        self.lut = self.lut.to(device)
        self.label_cat = torch.tensor([cats.index(probe.labels[n].category) for n in numbers], dtype=torch.long)
        self.cat_onehot = torch.zeros(len(numbers) + 1, len(cats), device=device)
        self.cat_onehot[torch.arange(len(numbers)), self.label_cat] = 1
        units = sum(channels)
        self.inter = torch.zeros(units, len(numbers), dtype=torch.long, device=device)
        self.active_in_cat = torch.zeros(units, len(cats), dtype=torch.long, device=device)
        self.label_pixels = torch.zeros(len(numbers), dtype=torch.long, device=device)
        self.active = torch.zeros(units, dtype=torch.long, device=device)

    def _dense(self, layers: dict[str, Tensor]) -> Tensor:
        stack = torch.cat(list(layers.values())).long().to(self.device)
        return self.lut[stack.clamp_max(len(self.lut) - 1)].where(stack < len(self.lut), self.n_labels)

    def add(self, maps: list[Tensor], masks: list[dict[str, Tensor]]) -> None:
        """Count one batch: maps per layer [B, C, h, w], masks per image."""
        sizes = [tuple(next(iter(m.values())).shape[-2:]) for m in masks]
        for size in dict.fromkeys(sizes):
            rows = [i for i, s in enumerate(sizes) if s == size]
            dense = [self._dense(masks[i]) for i in rows]
            depth = max(d.shape[0] for d in dense)
            none = self.n_labels  # the padding index: "no label"
            labels = torch.full((len(rows), depth, size[0] * size[1]), none, dtype=torch.long, device=self.device)
            for j, d in enumerate(dense):
                labels[j, :d.shape[0]] = d.flatten(1)
            labels = labels.transpose(1, 2).contiguous()  # [n, P, K]: the labels at each pixel
            self.label_pixels += torch.bincount(labels.flatten(), minlength=none + 1)[:none]
            image = torch.arange(len(rows), device=self.device)[:, None, None]
            present = torch.bincount((image * (none + 1) + labels).flatten(), minlength=len(rows) * (none + 1)) > 0
            has_cat = (present.view(len(rows), none + 1).float() @ self.cat_onehot > 0).long()  # [n, categories]
            index = torch.tensor(rows, device=self.device)
            offset = 0
            for m in maps:
                self._add_layer(m[index], offset, labels, has_cat, size)
                offset += m.shape[1]

    def _add_layer(self, maps: Tensor, offset: int, labels: Tensor, has_cat: Tensor, size: tuple[int, int]) -> None:
        channels = maps.shape[1]
        thr = self.thresholds[offset:offset + channels]
        # Bilinear interpolation never exceeds its inputs' maximum: maps below threshold everywhere are skipped.
        image, unit = (maps.amax((2, 3)) > thr).nonzero(as_tuple=True)
        pixels = size[0] * size[1]
        step = max(1, _ELEMENTS // pixels)
        for start in range(0, len(image), step):
            img, u = image[start:start + step], unit[start:start + step]
            up = F.interpolate(maps[img, u][:, None], size=size, mode="bilinear", align_corners=False)
            active = up.flatten(1) > thr[u, None]
            count = active.sum(1)
            self.active.index_add_(0, offset + u, count)
            self.active_in_cat.index_add_(0, offset + u, count[:, None] * has_cat[img])
            which, pixel = active.nonzero(as_tuple=True)
            hit = labels[img[which], pixel]  # [A, K]
            flat = (u[which, None] * (self.n_labels + 1) + hit).flatten()
            counts = torch.bincount(flat, minlength=channels * (self.n_labels + 1)).view(channels, -1)
            self.inter[offset:offset + channels] += counts[:, :self.n_labels]

    def tally(self, probe: BrodenProbe) -> Tally:
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
    progress: Progress | None = None,
    _counter: _Progress | None = None,
) -> Tally:
    """Pass 2: binarise every unit's upsampled maps at its threshold and count overlaps with every label."""
    device = torch.device(device)
    loader = _loader(probe, batch_size, workers, collate_probe)
    counter = _counter or _Progress(progress, len(loader), 1)
    counts, channels = None, None
    thresholds = thresholds.to(device)
    logger.info("IoU pass over %d images", len(probe))
    for batch in loader:
        maps = _maps(maps_fn, batch["images"].to(device), channels)
        if counts is None:
            channels = [m.shape[1] for m in maps]
            if sum(channels) != len(thresholds):
                raise ValueError(f"maps_fn gives {sum(channels)} units but {len(thresholds)} thresholds were given")
            counts = _Counts(probe, thresholds, channels, device)
        counts.add(maps, batch["masks"])
        counter.step()
    result = counts.tally(probe)
    silent = int((result.active == 0).sum())
    if silent:
        logger.warning("%d of %d units never exceed their threshold (ties at the top, e.g. saturated codes); "
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
    progress: Progress | None = None,
    collect_budget: int = DEFAULT_COLLECT_BUDGET,
) -> pd.DataFrame:
    """Label every unit with its best-matching probe concept (columns: UNIT_COLUMNS)."""
    batches = -(-len(probe) // max(batch_size, 1))
    counter = _Progress(progress, batches, 3)
    thresholds = unit_thresholds(maps_fn, probe, quantile, batch_size, workers, device,
                                 collect_budget=collect_budget, _counter=counter)
    return tally_units(maps_fn, probe, thresholds, batch_size, workers, device, _counter=counter).table(iou_threshold)


def concepts_units(dissection: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """The dissection table aligned with a run's units.csv (`unit,layer,node,channel`), node added."""
    missing = [c for c in ("unit", "layer", "node", "channel") if c not in units.columns]
    if missing:
        raise NvError(f"the units table lacks column(s) {', '.join(missing)}; expected unit,layer,node,channel")
    if len(units) != len(dissection):
        raise NvError(f"the run has {len(units)} units but the dissected maps have {len(dissection)}; "
                      "the maps must come from the run's model, one per unit layer")
    ours = dissection[["unit", "layer", "channel"]].to_numpy()
    theirs = units[["unit", "layer", "channel"]].to_numpy().astype(np.int64)
    if not (ours == theirs).all():
        bad = int(np.flatnonzero((ours != theirs).any(1))[0])
        raise NvError(f"unit {bad}: the units table says layer {theirs[bad, 1]} channel {theirs[bad, 2]}, "
                      f"the dissected maps give layer {ours[bad, 1]} channel {ours[bad, 2]}")
    out = dissection.copy()
    out.insert(2, "node", units["node"].to_numpy())
    return out


def concepts_classes(weights: Tensor | np.ndarray, units: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Per class and concept, the head weights summed over the interpretable units (columns: CLASS_COLUMNS).

    percent = 100 * |weight| / sum over the class's concepts of |weight|; rank = 1-based order by |weight|
    within the class and sign (+ for weight >= 0), so the top-5 positive concepts are sign '+', rank <= 5.
    """
    w = weights.detach().cpu().double().numpy() if isinstance(weights, Tensor) else np.asarray(weights, float)
    if w.ndim != 2 or w.shape != (len(classes), len(units)):
        raise NvError(f"head weights are {tuple(w.shape)}; expected [classes, units] = [{len(classes)}, {len(units)}]")
    keep = units["interpretable"].to_numpy(bool)
    concept = units["concept"].to_numpy()[keep]
    names, inverse = np.unique(concept, return_inverse=True)
    category = pd.Series(units["category"].to_numpy()[keep]).groupby(concept).first().reindex(names).to_numpy()
    n_units = np.bincount(inverse, minlength=len(names))
    summed = np.zeros((len(classes), len(names)))
    np.add.at(summed.T, inverse, w[:, keep].T)
    frames = []
    for c, cls in enumerate(classes):
        weight = summed[c]
        total = np.abs(weight).sum()
        frame = pd.DataFrame({
            "class": cls, "concept": names, "category": category, "sign": np.where(weight >= 0, "+", "-"),
            "weight": weight, "percent": 100 * np.abs(weight) / total if total > 0 else 0.0, "units": n_units,
        })
        frame = frame.iloc[np.argsort(-np.abs(weight), kind="stable")]
        frame["rank"] = frame.groupby("sign").cumcount() + 1
        frames.append(frame.sort_values(["sign", "rank"], kind="stable"))
    if not frames or not len(names):
        return pd.DataFrame(columns=CLASS_COLUMNS)
    return pd.concat(frames, ignore_index=True)[CLASS_COLUMNS]


def concept_figure(table: pd.DataFrame, class_name: str, top: int = 5) -> Any:
    """Figure 4 for one class: top positive and negative concepts (bars) and its concept distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(dict.fromkeys(table["class"]))
    if class_name not in classes:
        raise choice_error("class", class_name, classes)
    rows = table[table["class"] == class_name]
    pos = rows[(rows["sign"] == "+") & (rows["rank"] <= top)]
    neg = rows[(rows["sign"] == "-") & (rows["rank"] <= top)]
    bars = pd.concat([pos, neg.iloc[::-1]])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * max(len(bars), 4) + 1.5))
    labels = [f"{r.concept} ({r.category})" for r in bars.itertuples()]
    left.barh(range(len(bars)), bars["weight"], color=["#2a9d8f" if s == "+" else "#e76f51" for s in bars["sign"]])
    left.set_yticks(range(len(bars)), labels)
    left.invert_yaxis()
    left.axvline(0, color="black", linewidth=0.8)
    for i, r in enumerate(bars.itertuples()):
        left.annotate(f"{r.sign}{r.percent:.1f}%", (r.weight, i), xytext=(3 if r.weight >= 0 else -3, 0),
                      textcoords="offset points", va="center", ha="left" if r.weight >= 0 else "right", fontsize=8)
    left.margins(x=0.18)  # room for the percent labels beside the longest bars
    left.set_xlabel("summed head weight")
    left.set_title(f"{class_name}: top {top} positive and negative concepts")
    shares = rows.sort_values("percent", ascending=False)
    shown = shares.iloc[:15]
    other = shares["percent"].iloc[15:].sum()
    names = [f"{r.sign} {r.concept}" for r in shown.itertuples()] + ([f"other ({len(shares) - 15})"] if other else [])
    values = list(shown["percent"]) + ([other] if other else [])
    right.barh(range(len(values)), values, color="#6d6875")
    right.set_yticks(range(len(values)), names)
    right.invert_yaxis()
    right.set_xlabel("% of the class's |summed weight|")
    right.set_title("concept distribution")
    fig.tight_layout()
    return fig
