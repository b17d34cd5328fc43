"""Decoded clips on disk: a spectrogram per audio file, keyed by the file and every decoding parameter."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from ...errors import NvError
from ...fs.atomic import save_torch
from .spectrogram import SpecParams, decode, resize

log = logging.getLogger(__name__)


class SpectrogramFiles(Dataset):
    """Audio files as (log-mel spectrogram, label): decoded on first use, then read from the disk cache.

    `decoded` and `cache_hits` count, in this process, the items that were decoded or read from the cache
    (each DataLoader worker keeps its own copy of the counters).
    """

    def __init__(
        self,
        paths: Sequence[str],
        targets: Sequence[int],
        params: SpecParams,
        cache_dir: Path,
        image_size: int | None = None,
    ) -> None:
        self.paths = list(paths)
        self.targets = list(targets)
        self.params = params
        self.cache_dir = Path(cache_dir)
        self.image_size = image_size
        self.entries = [str(cache_entry(self.cache_dir, p, params)) for p in self.paths]
        self.decoded = 0
        self.cache_hits = 0
        self._warned_write = False

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> list[int]:
        return self.targets

    def source_files(self) -> list[str]:
        """The audio files, in sample order (what a cache of this split depends on)."""
        return self.paths

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = _load_entry(self.entries[i], self.params.shape)
        if x is None:
            x = decode(self.paths[i], self.params)
            self.decoded += 1
            self._store(self.entries[i], x)
        else:
            self.cache_hits += 1
        return resize(x[None], self.image_size)[0], self.targets[i]

    def _store(self, entry: str, x: torch.Tensor) -> None:
        try:
            save_torch(entry, x)
        except NvError as e:  # a full or read-only disk only costs speed: keep training, say so once
            if not self._warned_write:
                log.warning("cannot write sound cache entry %s (%s); clips will be decoded again", entry, e)
                self._warned_write = True


class SpectrogramTensors(Dataset):
    """Spectrograms held in memory [N, 1, F, T], as (x, label)."""

    def __init__(self, x: torch.Tensor, targets: Sequence[int]) -> None:
        self.x = x
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def labels(self) -> list[int]:
        return self.targets

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], self.targets[i]


def cache_entry(cache_dir: Path, path: str, params: SpecParams) -> Path:
    st = os.stat(path)
    ident = f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}"
    return cache_dir / params.key() / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.pt"


def _load_entry(entry: str | Path, shape: tuple[int, ...]) -> torch.Tensor | None:
    """The cached spectrogram, or None when missing or unusable (then the clip is decoded again)."""
    try:
        x = torch.load(entry, weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as e:  # any unreadable entry (a crash mid-write, a foreign file) is just a miss
        log.debug("ignoring unreadable sound cache entry %s: %s", entry, e)
        return None
    if isinstance(x, torch.Tensor) and tuple(x.shape) == shape and x.dtype == torch.float32:
        return x
    return None


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def cache_root(data_dir: Path, cache_dir: str | os.PathLike | None) -> Path:
    """`cache_dir` if given, else <data_dir>/.nv-cache if writable, else ~/.cache/nv/sound."""
    if cache_dir is not None:
        path = Path(cache_dir).expanduser()
        if not _writable_dir(path):
            raise NvError(f"cache_dir {path} is not a writable directory; pass a writable one", param="cache_dir")
        return path
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nv" / "sound"
    for path in (data_dir / ".nv-cache", user):
        if _writable_dir(path):
            if path == user:
                log.info("%s is not writable; caching spectrograms in %s", data_dir, path)
            return path
    raise NvError(f"no writable cache_dir: neither {data_dir / '.nv-cache'} nor {user} is writable; pass a "
                  "writable one", param="cache_dir")
