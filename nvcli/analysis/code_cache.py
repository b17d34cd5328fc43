"""Every unit's code `z` for a split of a run's data, computed once and kept in the run as a code store
(codes/<split>.json and codes/<split>-NNNNN.npy shards; code_store.py).

The head is linear in `z`, so analyses that change the head or the codes (ablation, sparse heads,
importance) need the network only once per split: afterwards everything is a matrix product. Codes
are written batch by batch into shards, so computing them needs memory for one batch, an interrupted
computation resumes after its finished shards, and reading them maps one shard at a time. A later call
reuses them while model.pt, the data settings and the split's files are unchanged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..data.registry import split_fingerprint
from ..errors import NvError
from ..fs import access
from ..runs import files
from ..runs.run import Run
from ..schema import JsonRecord
from ..training import distributed as dist
from ..training.devices import resolve_device
from ..training.loaders import batch_loader, batches
from ..training.predict import ProgressFn
from .code_store import CodeStore, DamagedStore, Layout, StoreView, recorded, shared_rows_per_shard, write_store
from .code_store import mean_std as chunked_mean_std
from .head import Head

log = logging.getLogger(__name__)
CACHE_FORMAT = 3  # 2: keyed also by the split's files and the classes; 3: a sharded code store


class ArrayStore:
    """Codes held in memory (`nvcli.codes`), read through the same calls as a code store on disk."""

    def __init__(self, z: np.ndarray, labels: np.ndarray) -> None:
        if z.ndim != 2 or labels.shape != (len(z),):
            raise NvError(f"codes [samples, units] and labels [samples] disagree: {list(z.shape)} and "
                          f"{list(labels.shape)}")
        self.z, self._labels = np.ascontiguousarray(z, dtype=np.float32), np.asarray(labels, dtype=np.int64)
        self.samples, self.units = self.z.shape
        self.nbytes = self.z.nbytes

    def labels(self) -> np.ndarray:
        return self._labels

    def view(self) -> np.ndarray:
        return self.z

    def array(self) -> np.ndarray:
        return self.z

    def chunks(self, rows: int = 4096) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        for start in range(0, self.samples, rows):
            yield start, self.z[start:start + rows], self._labels[start:start + rows]

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        return chunked_mean_std(self.chunks(), self.units)


@dataclass
class Codes:
    """The codes of one split: `z` [samples, units] (float32; from a store on disk, read only where indexed) and
    `labels` [samples]."""

    split: str
    store: CodeStore | ArrayStore
    computed_from: str | None = None  # codes of a model in memory: its weights' digest (provenance.state_digest)
    head: Head | None = None  # codes of a model in memory: the model's own head, over the same units

    @property
    def z(self) -> StoreView | np.ndarray:
        """The codes, indexed like an array; `np.asarray(z)` holds them all in memory."""
        return self.store.view()

    @property
    def labels(self) -> np.ndarray:
        return self.store.labels()

    def chunks(self, rows: int = 4096) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first row, codes, labels) in order, in bounded memory."""
        return self.store.chunks(rows)

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """z and labels as torch tensors on `device` (z float32, in memory; labels int64)."""
        return (torch.from_numpy(self.store.array()).to(device),
                torch.from_numpy(np.asarray(self.labels, dtype=np.int64)).to(device))

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Each unit's mean and standard deviation over the split (float64, in chunks)."""
        return self.store.mean_std()


@dataclass(frozen=True)
class CodeFingerprint(JsonRecord):
    """What a split's cached codes depend on, recorded in their store's manifest: the cache format, the split, the
    weights file, the data settings and classes, and the split's files (each one's path, size and modification time,
    so images added, removed or replaced make new codes)."""

    format: int
    split: str
    model_sha256: str
    data: dict[str, object]  # the dataset's options, as config.json records them
    classes: tuple[str, ...]
    samples: str  # data.registry.split_fingerprint


def _fingerprint(run: Run, split: str) -> CodeFingerprint:
    """The fingerprint of the codes of the run's `split`."""
    return CodeFingerprint(CACHE_FORMAT, split, run.sha256(files.MODEL), run.config.data.options, tuple(run.classes),
                           split_fingerprint(run.data().split(split)))


def _valid(run: Run, store: CodeStore) -> str | None:
    """Why stored codes cannot be this run's (None when they can): their width or label range (the store checked its
    files against their stamps and CRC-32s; the codes were checked finite when written)."""
    units = run.config.units
    if isinstance(units, int) and store.units != units:
        return f"codes of {store.units} units, the run has {units}"
    labels = store.labels()
    if len(labels) and (labels.min() < 0 or labels.max() >= len(run.classes)):
        return f"labels outside 0..{len(run.classes) - 1}"
    return None


@torch.no_grad()
def split_codes(run: Run, split: str = "val", *, device: str = "auto", batch_size: int = 128, workers: int = 0,
                trust_code: bool = False, cache: bool = True, rows_per_shard: int = 0, dtype: str | None = None,
                verify: bool = False, progress: ProgressFn | None = None) -> Codes:
    """The codes of every sample of `split` ('train' is read without augmentation), from the store when valid.

    A store left unfinished or damaged for the same weights and data is resumed (with its rows per shard and dtype
    unless given): only its missing or damaged shards are computed. A new store has `rows_per_shard` rows a shard
    (0: 64 MiB of codes, less under torchrun when that leaves a process without a shard) and keeps codes as `dtype`
    (None: float32); given, a store of other shards or another dtype is written again. Under torchrun the processes
    write its shards between them. A shard that no longer holds what was written (its files touched since and their
    CRC-32 differs; with `verify`, any shard whose CRC-32 differs) is computed again, with a warning.
    """
    run.require_neuroview()
    fingerprint = _fingerprint(run, split)
    folder = run.path(f"{files.CODES_DIR}/{split}.json").parent  # refused if codes/ or the manifest is a link
    fresh = not cache
    if cache:
        try:
            store = CodeStore.open(folder, split, fingerprint, verify=verify)
        except DamagedStore as exc:  # its intact shards are kept below
            log.warning("%s; computing its damaged shards again", exc)
            store = None
        except NvError:  # none yet, unfinished (resumed below) or for other weights or data (replaced below)
            store = None
        asked = {"dtype": dtype, "rows_per_shard": rows_per_shard or None}
        other = [f"{key} {getattr(store.layout, key)}" for key, value in asked.items()
                 if store is not None and value is not None and getattr(store.layout, key) != value]
        if other:
            log.info("the stored %s codes have %s; writing them again as asked", split, " and ".join(other))
            store, fresh = None, True
        if store is not None:
            if (problem := _valid(run, store)) is None:
                log.info("codes of the %s split read from %s", split, folder)
                if dist.is_main():
                    store.record_stamps()
                return Codes(split, store)
            log.warning("the stored %s codes in '%s' hold %s; computing them again", split, folder, problem)
            fresh = True
    if not fresh and (previous := recorded(folder, split, fingerprint)) is not None:
        dtype, rows_per_shard = dtype or previous[0].dtype, rows_per_shard or previous[0].rows_per_shard
    dev = resolve_device(device)
    model = run.model(dev, trust_code=trust_code)
    dataset = run.data().split(split)
    dtype = dtype or "float32"
    units = model.head.in_features
    if not rows_per_shard and dist.world_size() > 1:
        rows_per_shard = shared_rows_per_shard(len(dataset), units, dtype, dist.world_size(), batch_size)
    layout = Layout(len(dataset), units, dtype, rows_per_shard)
    feed = _CodeFeed(model, dataset, batch_size, workers, dev, progress, f"codes ({split})")
    writer = write_store(folder, split, fingerprint, layout, feed.shard, fresh=fresh, rank=dist.rank(),
                         world=dist.world_size(), barrier=dist.barrier, plan=feed.plan)
    log.info("process %d of %d wrote %d of the %d shards of the %s codes", dist.rank(), dist.world_size(),
             len(writer.written), layout.shards, split)
    store = writer.close()
    if dist.is_main():
        _remove_superseded(run, store)
    return Codes(split, store)


class _CodeFeed:
    """The codes of the shards one process writes, from one data pipeline (loader workers start once, not per shard);
    a batch never spans two shards, so each is one a single process forms whatever the number of processes."""

    def __init__(self, model: torch.nn.Module, dataset: torch.utils.data.Dataset, batch_size: int, workers: int,
                 device: torch.device, progress: ProgressFn | None, phase: str) -> None:
        self.model, self.dataset, self.batch_size, self.workers = model, dataset, batch_size, workers
        self.device, self.progress, self.phase = device, progress, phase
        self.done = self.total = 0

    def plan(self, shards: list[tuple[int, int]]) -> None:
        """Start the pipeline over the rows of `shards` (start, stop), in the order they will be asked for."""
        groups = [list(range(i, min(i + self.batch_size, stop))) for start, stop in shards
                  for i in range(start, stop, self.batch_size)]
        self.total = len(groups)
        loader = batch_loader(self.dataset, groups, workers=self.workers, pin_memory=self.device.type == "cuda")
        self.stream = batches(loader, self.device)

    def shard(self, start: int, stop: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The (codes, labels) batches of rows start..stop-1: the next shard of the plan."""
        for _ in range(-(-(stop - start) // self.batch_size)):
            x, y = next(self.stream)
            yield self.model.features(x).float().cpu().numpy(), y.cpu().numpy()
            self.done += 1
            if self.progress:
                self.progress(self.phase, self.done, self.total)


def _remove_superseded(run: Run, store: CodeStore) -> None:
    """Remove the codes a store replaced: shards beyond its own (a store of another layout wrote them) and the
    single-file cache of nv 0.3 (`<split>.npy`, `<split>_labels.npy`); nv's own files only, never through a link."""
    folder, name = files.CODES_DIR, store.name
    stale = [f"{name}.npy", f"{name}_labels.npy"]
    for path in store.folder.glob(f"{name}-*.npy"):
        index = path.stem.removeprefix(f"{name}-").removesuffix("-labels")
        if index.isdigit() and int(index) >= store.layout.shards:
            stale.append(path.name)
    for leaf in stale:
        if access.remove(run.dir, f"{folder}/{leaf}"):
            log.info("removed %s/%s: superseded by the code store", folder, leaf)
