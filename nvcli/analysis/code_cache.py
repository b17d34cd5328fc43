"""Every unit's code `z` for a split of a run's data, computed once and cached in the run (codes/<split>.npy).

The head is linear in `z`, so analyses that change the head or the codes (ablation, sparse heads,
importance) need the network only once per split: afterwards everything is a matrix product. Codes
are written batch by batch into a memory-mapped file, so computing them needs memory for one batch;
a later call reuses them while model.pt and the data settings are unchanged.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.registry import split_fingerprint
from ..errors import NvError
from ..runs import files
from ..runs.atomic import atomic_path, write_json
from ..runs.run import Run
from ..training.devices import resolve_device
from ..training.loaders import batches, make_loader
from ..training.predict import ProgressFn

log = logging.getLogger(__name__)
CACHE_FORMAT = 2  # 2: keyed also by the split's files and the classes


@dataclass
class Codes:
    """The codes of one split: z [samples, units] (float32, possibly memory-mapped) and labels [samples]."""

    split: str
    z: np.ndarray
    labels: np.ndarray

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """z and labels as torch tensors on `device` (z float32, labels int64)."""
        return (torch.from_numpy(np.array(self.z, dtype=np.float32)).to(device),  # a copy: the cache stays read-only
                torch.from_numpy(np.asarray(self.labels, dtype=np.int64)).to(device))

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Each unit's mean and standard deviation over the split (float64, in chunks)."""
        total = np.zeros(self.z.shape[1])
        square = np.zeros(self.z.shape[1])
        for start in range(0, len(self.z), 4096):
            chunk = np.asarray(self.z[start:start + 4096], dtype=np.float64)
            total += chunk.sum(0)
            square += (chunk * chunk).sum(0)
        mean = total / len(self.z)
        return mean, np.sqrt(np.maximum(square / len(self.z) - mean * mean, 0.0))


def _fingerprint(run: Run, split: str) -> dict[str, object]:
    """What the cached codes depend on: the weights file, the data settings and classes, and the split's files
    (each one's path, size and modification time, so images added, removed or replaced make new codes)."""
    return {"format": CACHE_FORMAT, "split": split, "model_sha256": run.sha256(files.MODEL),
            "data": run.config.data.options, "classes": run.classes,
            "samples": split_fingerprint(run.data().split(split))}


def _paths(run: Run, split: str) -> tuple[Path, Path, Path]:
    return tuple(run.path(f"{files.CODES_DIR}/{name}")  # type: ignore[return-value]
                 for name in (f"{split}.npy", f"{split}_labels.npy", f"{split}.json"))


def _valid(run: Run, z: np.ndarray, labels: np.ndarray) -> str | None:
    """Why cached codes cannot be this run's (None when they can): their shape, label range or finiteness."""
    units = run.config.units
    if z.ndim != 2 or labels.ndim != 1 or len(z) != len(labels):
        return f"codes {list(z.shape)} do not match labels {list(labels.shape)}"
    if isinstance(units, int) and z.shape[1] != units:
        return f"codes of {z.shape[1]} units, the run has {units}"
    if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and (labels.min() < 0
                                                                        or labels.max() >= len(run.classes))):
        return f"labels outside 0..{len(run.classes) - 1}"
    if not all(np.isfinite(z[i:i + 4096]).all() for i in range(0, len(z), 4096)):
        return "codes that are not finite"
    return None


def _cached(run: Run, split: str, fingerprint: dict[str, object]) -> Codes | None:
    z_path, label_path, meta_path = _paths(run, split)
    try:
        if not meta_path.is_file() or json.loads(meta_path.read_text()) != json.loads(json.dumps(fingerprint)):
            return None
        z = np.load(z_path, mmap_mode="r")
        labels = np.load(label_path)
    except (OSError, ValueError):
        return None
    problem = _valid(run, z, labels)
    if problem is not None:
        log.warning("the cached %s codes in '%s' hold %s; computing them again", split, z_path.parent, problem)
        return None
    return Codes(split, z, labels)


@torch.no_grad()
def split_codes(run: Run, split: str = "val", *, device: str = "auto", batch_size: int = 128, workers: int = 0,
                trust_code: bool = False, cache: bool = True, progress: ProgressFn | None = None) -> Codes:
    """The codes of every sample of `split` ('train' is read without augmentation), from the cache when valid."""
    run.require_neuroview()
    fingerprint = _fingerprint(run, split)
    if cache and (found := _cached(run, split, fingerprint)) is not None:
        log.info("codes of the %s split read from %s", split, run.dir / files.CODES_DIR)
        return found
    dev = resolve_device(device)
    model = run.model(dev, trust_code=trust_code)
    dataset = run.data().split(split)
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers)
    z_path, label_path, meta_path = _paths(run, split)
    z_path.parent.mkdir(exist_ok=True)
    units, n = model.head.in_features, len(dataset)
    labels = np.empty(n, dtype=np.int64)
    with atomic_path(z_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, units))
        start = 0
        for step, (x, y) in enumerate(batches(loader, dev), 1):
            out[start:start + len(y)] = model.features(x).float().cpu().numpy()
            labels[start:start + len(y)] = y.cpu().numpy()
            start += len(y)
            if progress:
                progress(f"codes ({split})", step, len(loader))
        out.flush()
        del out
    if start != n:
        raise NvError(f"the {split} split gave {start} samples, expected {n}")
    with atomic_path(label_path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, labels)
    write_json(meta_path, fingerprint)
    return Codes(split, np.load(z_path, mmap_mode="r"), labels)
