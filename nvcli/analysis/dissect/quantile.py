"""Exact per-unit thresholds for Network Dissection: the (1 - quantile) quantile of every unit's activations
over all probe images and positions (torch.quantile's linear interpolation), found by radix selection in
bounded memory, streaming the probe set a few times. Under torchrun each process streams its share and the
histograms and candidates are combined over the group, so every process finds one process's thresholds.
"""
from __future__ import annotations

import logging

import torch
from torch import Tensor

from ...data.broden import BrodenProbe, stack_images
from ...errors import NvError
from ...training.distributed import gather_rows, min_, sum_
from ...training.predict import ProgressFn
from ..settings import DEFAULT_QUANTILE
from .stream import FiniteCheck, MapsFn, PassCounter, agree_channels, count, probe_loader, sync_free, unit_maps

log = logging.getLogger(__name__)

DEFAULT_COLLECT_BUDGET = 1 << 24  # candidate values kept for the final exact sort: 128 MiB of int64
_BINS = 1024  # histogram buckets per unit and refinement round
_HALF = 1 << 31


def float_keys(x: Tensor) -> Tensor:
    """Order-preserving int64 keys in [0, 2**32) for float32 values."""
    bits = x.to(torch.float32).contiguous().view(torch.int32)
    # Non-negative floats order like their bit patterns; negative ones in reverse (flip all but the sign).
    return (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long() + _HALF


def key_floats(keys: Tensor) -> Tensor:
    """The float32 values of keys made by `float_keys`."""
    bits = torch.where(keys >= _HALF, keys - _HALF, -1 - keys)
    return bits.to(torch.int32).view(torch.float32)


class _Selector:
    """Exact per-unit order statistics (ranks r and r + 1) over streamed values, by radix selection.

    Values become 32-bit order-preserving keys. Each pass over the data either histograms the next
    bits of each unit's keys that share the prefix resolved so far (counts and minimum key per
    bucket), extending the prefix by the bucket holding rank r, or, once the candidates sharing the
    prefixes fit `budget`, collects them for an exact sort. At most 4 histogram rounds (10+10+10+2
    bits); usually one round, then one collection. In a process group the histograms are summed (their minima
    minimised) and the candidates gathered before any decision, so every process takes the same branches.
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
            self.filled = torch.zeros((), dtype=torch.long, device=self.device)
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
            self._collect(keys | (unit + offset) << 32, inside)
            return
        shift, bits = self.ROUNDS[self.round]
        flat = ((keys >> shift) & ((1 << bits) - 1)) + unit * _BINS
        dump = channels * _BINS  # values outside the prefix land here
        if self.open_bits < 32:
            flat = torch.where(inside, flat, dump)
        flat, keys = flat.flatten(), keys.flatten()
        self.counts[rows] += count(flat, dump + 1)[:dump].view(channels, _BINS)
        mins = torch.full((dump + 1,), torch.iinfo(torch.long).max, dtype=torch.long, device=keys.device)
        mins.scatter_reduce_(0, flat, keys, reduce="amin")
        self.mins[rows] = torch.minimum(self.mins[rows], mins[:dump].view(channels, _BINS))

    def _collect(self, tagged: Tensor, inside: Tensor) -> None:
        """Append the unit-tagged keys where `inside`; the last slot stays free for the end mark."""
        room = len(self.collected) - 1  # more values only if maps_fn drifted between passes
        if not sync_free(self.device):
            chunk = tagged[inside]
            end = min(int(self.filled) + len(chunk), room)
            self.collected[int(self.filled):end] = chunk[:end - int(self.filled)]
            self.filled.fill_(end)
            return
        inside = inside.flatten()
        place = self.filled + inside.cumsum(0) - 1  # each kept value's slot, computed on the device
        place = torch.where(inside & (place < room), place, room)  # the rest land in the end mark's slot
        self.collected.scatter_(0, place, tagged.flatten())
        self.filled = (self.filled + inside.sum()).clamp_max(room)

    def _check(self, seen: Tensor) -> None:
        if self.expected is not None and not torch.equal(seen, self.expected):
            log.warning("maps_fn gave different values on different passes over the probe set "
                           "(a non-deterministic model or kernel?); the thresholds are approximate")

    def finish_pass(self) -> bool:
        """Extend prefixes or resolve after a pass; True when another pass is needed."""
        if self.collecting:
            self._resolve_collected()
            return False
        sum_(self.counts)
        min_(self.mins)
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
        values = self.collected[:int(self.filled) + 1]
        values[-1] = torch.iinfo(torch.long).max  # an end mark above every unit's keys
        values = gather_rows(values)  # every process's candidates; their end marks all sort last
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


def unit_thresholds(
    maps_fn: MapsFn,
    probe: BrodenProbe,
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 16,
    workers: int = 0,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    collect_budget: int = DEFAULT_COLLECT_BUDGET,
    counter: PassCounter | None = None,
) -> Tensor:
    """Per unit, the exact (1 - quantile) quantile of its activations over all probe images and positions."""
    if not 0 < quantile < 1:
        raise NvError(f"quantile {quantile} must be between 0 and 1 (exclusive), e.g. {DEFAULT_QUANTILE}")
    device = torch.device(device)
    loader = probe_loader(probe.images_only(), batch_size, workers, stack_images, device)
    counter = counter or PassCounter(progress, len(loader), 2)
    selector, channels, again, passes = None, None, True, 0
    finite = FiniteCheck(device)
    while again:
        passes += 1
        if passes > 2:
            counter.add_pass()
        log.info("threshold pass %d (%s)", passes, "collect" if selector and selector.collecting else "histogram")
        for images in loader:
            maps = unit_maps(maps_fn, images.to(device, non_blocking=True), channels, finite)
            if selector is None:
                channels = [m.shape[1] for m in maps]
                selector = _Selector(sum(channels), quantile, device, collect_budget)
            offset = 0
            for m in maps:
                selector.add(offset, m)
                offset += m.shape[1]
            counter.step()
        finite.check()
        if passes == 1:  # a process given no batches learns the units from the group
            channels = agree_channels(channels)
            selector = selector or _Selector(sum(channels), quantile, device, collect_budget)
        again = selector.finish_pass()
    return selector.thresholds()
