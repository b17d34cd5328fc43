"""A code store: codes [samples, units] and labels of one split, in `.npy` shards on disk with a JSON manifest.

Layout, in one folder (`name` is the split's name, e.g. `val`):

    <name>.json                  the manifest: fingerprint, samples, units, dtype, rows per shard, finished shards
    <name>-00000.npy             codes of rows 0 .. rows_per_shard - 1 (float32 or float16, C order)
    <name>-00000-labels.npy      their labels (int64)
    ...

Any numpy opens the shards (`np.load(path, mmap_mode="r")`); the manifest says which rows each holds. A store is
written shard by shard, each shard filled batch by batch into a memory map and renamed into place when full, so
writing needs memory for one batch and an interrupted write keeps every finished shard: a writer given the same
fingerprint and layout resumes after them. Reading maps one shard at a time, so memory is bounded by a shard
whatever the number of samples. The manifest records each shard's files' stamp (size, modification and change
time) and CRC-32: opening a store costs one `stat` a file, and a file whose stamp changed is read once to check
that it still holds what was written.
"""
from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..errors import NvError
from ..fs.atomic import atomic_path, write_json
from ..schema import JsonRecord
from .settings import CODE_DTYPES

STORE_FORMAT = "nv-code-store"
STORE_VERSION = 3  # 2: each shard's files stamped (size, modification time); 3: and change time, and their CRC-32
SHARD_BYTES = 64 << 20  # codes per shard: reading maps one shard at a time
CHUNK_ROWS = 4096  # rows per chunk handed to a reader
CRC_BLOCK = 16 << 20  # bytes read at once when checking a file's CRC-32


def rows_per_shard(units: int, dtype: str = "float32", shard_bytes: int = SHARD_BYTES) -> int:
    """How many rows of `units` codes of `dtype` fit in `shard_bytes` (at least one)."""
    return max(1, shard_bytes // (units * np.dtype(dtype).itemsize))


def shared_rows_per_shard(samples: int, units: int, dtype: str, writers: int, batch_size: int) -> int:
    """Rows per shard for `writers` processes: as `rows_per_shard`, but small enough that each writes a shard (whole
    batches), so a split under writers x 64 MiB is not left to one of them."""
    share = -(-max(samples, 1) // writers)
    return min(rows_per_shard(units, dtype), -(-share // batch_size) * batch_size)


def _shard_files(name: str, index: int) -> tuple[str, str]:
    return f"{name}-{index:05d}.npy", f"{name}-{index:05d}-labels.npy"


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype] | None:
    """The shape and dtype a `.npy` file declares, if it is one whose data is all there (None otherwise, and for a
    link: a store never reads through one)."""
    if path.is_symlink():
        return None
    try:
        array = np.load(path, mmap_mode="r")  # refuses a file shorter than its header says
    except (OSError, ValueError):
        return None
    if not isinstance(array, np.ndarray) or array.dtype.hasobject or not array.flags.c_contiguous:
        return None
    shape, dtype = array.shape, array.dtype
    del array
    return shape, dtype


@dataclass(frozen=True)
class Layout:
    """What a store holds: samples, units, the codes' dtype and how many rows each shard has."""

    samples: int
    units: int
    dtype: str = "float32"
    rows_per_shard: int = 0  # 0: rows_per_shard(units, dtype)

    def __post_init__(self) -> None:
        if self.dtype not in CODE_DTYPES:
            raise NvError(f"code dtype '{self.dtype}' is not valid; use one of {', '.join(CODE_DTYPES)}",
                          param="dtype")
        if self.samples < 0 or self.units < 1:
            raise ValueError(f"a store needs samples >= 0 and units >= 1, got {self.samples}, {self.units}")
        if self.rows_per_shard <= 0:
            object.__setattr__(self, "rows_per_shard", rows_per_shard(self.units, self.dtype))

    @property
    def shards(self) -> int:
        """The number of shards."""
        return math.ceil(self.samples / self.rows_per_shard)

    def rows(self, index: int) -> tuple[int, int]:
        """The first row and the end of shard `index`."""
        start = index * self.rows_per_shard
        return start, min(start + self.rows_per_shard, self.samples)


Recorded = tuple[list[int], list[int]]  # a shard's stamp and CRC-32s, as its manifest entry lists them


@dataclass(frozen=True)
class ShardEntry(JsonRecord):
    """A finished shard in the manifest: its index, first row and rows, its two files, and their stamp (size,
    modification and change time of each) and CRC-32s when written."""

    index: int
    start: int
    rows: int
    codes: str
    labels: str
    stamp: tuple[int, ...]
    crc32: tuple[int, ...]

    def recorded(self) -> Recorded | None:
        """Its stamp and CRC-32s, or None when they are not those of two files."""
        whole = len(self.stamp) == 6 and len(self.crc32) == 2
        return (list(self.stamp), list(self.crc32)) if whole else None


@dataclass(frozen=True)
class StoreManifest(JsonRecord):
    """`<name>.json`: the store's format and version, the fingerprint it was computed for (the writer's JSON
    object), its layout, the shards finished and whether they are all."""

    format: str
    version: int
    fingerprint: dict[str, object]
    samples: int
    units: int
    dtype: str
    rows_per_shard: int
    shards: tuple[ShardEntry, ...]
    complete: bool


def _stamp(folder: Path, name: str, index: int) -> list[int]:
    """Shard `index`'s files' sizes, modification and change times (ns): a file written, replaced or edited since has
    another change time, also when its modification time is set back (no call sets a change time)."""
    return [value for leaf in _shard_files(name, index) for stat in [(folder / leaf).lstat()]
            for value in (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)]


def _crc(folder: Path, name: str, index: int) -> list[int]:
    """The CRC-32 of the array in each of shard `index`'s `.npy` files (its bytes as stored, in C order)."""
    return [_data_crc(np.load(folder / leaf, mmap_mode="r")) for leaf in _shard_files(name, index)]


def _data_crc(array: np.ndarray, crc: int = 0) -> int:
    """zlib.crc32 of a C-ordered array's bytes, continued from `crc`, CRC_BLOCK bytes at a time."""
    flat = array.reshape(-1)
    step = max(1, CRC_BLOCK // array.itemsize)
    for start in range(0, len(flat), step):
        crc = zlib.crc32(flat[start:start + step], crc)
    return crc


def _manifest(name: str, fingerprint: dict[str, object], layout: Layout,
              finished: dict[int, Recorded]) -> StoreManifest:
    shards = []
    for i in sorted(finished):
        start, stop = layout.rows(i)
        codes, labels = _shard_files(name, i)
        shards.append(ShardEntry(i, start, stop - start, codes, labels, tuple(finished[i][0]), tuple(finished[i][1])))
    return StoreManifest(STORE_FORMAT, STORE_VERSION, fingerprint, layout.samples, layout.units, layout.dtype,
                         layout.rows_per_shard, tuple(shards), len(shards) == layout.shards)


def _read_manifest(path: Path) -> StoreManifest | None:
    """The manifest at `path`, or None when it is missing, not JSON, of another format or version, or not of its
    shape."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(values, dict) or values.get("format") != STORE_FORMAT or values.get("version") != STORE_VERSION:
        return None
    try:
        return StoreManifest.from_json(values, str(path))
    except NvError:
        return None


def _layout_of(manifest: StoreManifest) -> Layout | None:
    try:
        return Layout(manifest.samples, manifest.units, manifest.dtype, manifest.rows_per_shard)
    except NvError:
        return None


def _differences(recorded: dict[str, object], expected: JsonRecord) -> list[str]:
    """The fingerprint keys whose values differ (JSON-normalised)."""
    wanted = json.loads(json.dumps(expected.to_json()))
    return sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k))


def recorded(folder: str | Path, name: str, fingerprint: JsonRecord | None = None) -> tuple[Layout, int] | None:
    """The layout of the store `name` in `folder` and how many of its shards its manifest lists as finished (None
    without a manifest this nv reads, or, with `fingerprint`, one computed for other data, weights or settings)."""
    manifest = _read_manifest(Path(folder) / f"{name}.json")
    layout = None if manifest is None else _layout_of(manifest)
    if manifest is None or layout is None or (fingerprint is not None and
                                              _differences(manifest.fingerprint, fingerprint)):
        return None
    return layout, len(_listed(manifest, layout))


class DamagedStore(NvError):
    """A store whose manifest or shard files are not what it recorded (truncated, replaced, edited)."""


class CodeStore:
    """A complete store, read shard by shard (each shard memory-mapped only while it is read)."""

    def __init__(self, folder: Path, name: str, manifest: StoreManifest, layout: Layout) -> None:
        self.folder, self.name, self.manifest, self.layout = folder, name, manifest, layout
        self._labels: np.ndarray | None = None
        self._stamps: dict[int, list[int]] = {}  # each shard's stamp when it was found intact
        self._finite: set[int] = set()  # the shards read whole and found finite by this reader

    @classmethod
    def open(cls, folder: str | Path, name: str, fingerprint: JsonRecord | None = None, *,
             verify: bool = False) -> CodeStore:
        """The complete store `name` in `folder`; with `fingerprint`, only if it was computed for it (NvError if
        it is missing, unfinished, damaged or made from other data, weights or settings; `DamagedStore` when a
        shard does not hold what was written).

        A shard whose files kept their stamp is trusted without reading it; one whose stamp changed (a copy, a
        touch, an edit) is read to check its CRC-32, and with `verify` every shard is."""
        folder = Path(folder)
        path = folder / f"{name}.json"
        manifest = _read_manifest(path)
        layout = None if manifest is None else _layout_of(manifest)
        if manifest is None or layout is None:
            raise NvError(f"no code store '{name}' in '{folder}' ({path.name} is missing or not a store manifest)")
        if fingerprint is not None and (differ := _differences(manifest.fingerprint, fingerprint)):
            raise NvError(f"the code store '{path}' was computed for another {', '.join(differ)}; compute it "
                          "again for this run and data")
        if not manifest.complete:
            raise NvError(f"the code store '{path}' is unfinished; run the command that writes it again to "
                          "resume it")
        store = cls(folder, name, manifest, layout)
        if (problem := store._damage(verify)) is not None:
            raise DamagedStore(f"the code store '{path}' is damaged: {problem}")
        return store

    def _damage(self, verify: bool) -> str | None:
        listed = _listed(self.manifest, self.layout)
        if set(listed) != set(range(self.layout.shards)) or None in listed.values():
            return "its manifest does not list every shard with its stamp and CRC-32"
        for i, recorded in listed.items():
            problem, self._stamps[i] = _verified(self.folder, self.name, self.layout, i, recorded, verify)
            if problem is not None:
                return problem
        return None

    def record_stamps(self) -> None:
        """Record the stamps of shards whose files were touched (copied, given other times) but hold what was
        written, so that opening the store reads none of them again."""
        listed = _listed(self.manifest, self.layout)
        if all(recorded is not None and self._stamps.get(i) == recorded[0] for i, recorded in listed.items()):
            return
        finished = {i: (self._stamps[i], recorded[1]) for i, recorded in listed.items() if recorded is not None}
        manifest = _manifest(self.name, self.manifest.fingerprint, self.layout, finished)
        try:
            write_json(self.folder / f"{self.name}.json", manifest.to_json())
        except NvError:  # a run on a read-only disk: the next open reads those shards again
            return
        self.manifest = manifest

    @property
    def samples(self) -> int:
        return self.layout.samples

    @property
    def units(self) -> int:
        return self.layout.units

    @property
    def stored_bytes(self) -> int:
        """The size of the codes on disk (as the store keeps them: float32 or float16)."""
        return self.samples * self.units * np.dtype(self.layout.dtype).itemsize

    @property
    def nbytes(self) -> int:
        """The size of the codes as float32 (what holding them in memory takes)."""
        return self.samples * self.units * 4

    def labels(self) -> np.ndarray:
        """Every label (int64 [samples]; 8 bytes a sample)."""
        if self._labels is None:
            self._labels = np.concatenate([np.load(self.folder / _shard_files(self.name, i)[1])
                                           for i in range(self.layout.shards)] or [np.zeros(0, np.int64)])
        return self._labels

    def shard(self, index: int) -> np.ndarray:
        """Shard `index`'s codes as float32 in memory (one shard's worth)."""
        codes = np.load(self.folder / _shard_files(self.name, index)[0], mmap_mode="r")
        out = self._checked(index, np.array(codes, dtype=np.float32))
        del codes  # unmaps: the pages read leave this process's resident memory
        self._finite.add(index)
        return out

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first row, codes float32 [<= rows, units], labels) over the store in order, one shard mapped at once."""
        labels = self.labels()
        for i in range(self.layout.shards):
            first, _ = self.layout.rows(i)
            codes = np.load(self.folder / _shard_files(self.name, i)[0], mmap_mode="r")
            for start in range(0, len(codes), rows):
                block = self._checked(i, np.array(codes[start:start + rows], dtype=np.float32))
                yield first + start, block, labels[first + start:first + start + len(block)]
            del codes
            self._finite.add(i)

    def _checked(self, index: int, codes: np.ndarray) -> np.ndarray:
        """`codes` read from shard `index`, once refused if not finite: the writer refused such codes and the CRC-32
        guards them since, so only a store written or edited outside nv holds them (each shard is checked on its
        first whole read, about 25 ms for 64 MiB)."""
        if index not in self._finite and not np.isfinite(codes).all():
            manifest = self.folder / f"{self.name}.json"
            raise DamagedStore(f"the code store '{manifest}' holds NaN or infinite codes in "
                               f"{_shard_files(self.name, index)[0]}; remove '{manifest}' so that the codes are "
                               "computed again")
        return codes

    def array(self) -> np.ndarray:
        """Every code in memory, one float32 array [samples, units] (samples x units x 4 bytes; writable)."""
        out = np.empty((self.samples, self.units), dtype=np.float32)
        for start, block, _ in self.chunks():
            out[start:start + len(block)] = block
        return out

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The codes of the rows `index` (ints, any order) as float32 [len(index), units], shard by shard."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(index) and (index.min() < -self.samples or index.max() >= self.samples):
            raise IndexError(f"rows {index.min()}..{index.max()} outside a store of {self.samples} samples")
        index = np.where(index < 0, index + self.samples, index)
        out = np.empty((len(index), self.units), dtype=np.float32)
        shard_of = index // self.layout.rows_per_shard
        for i in np.unique(shard_of):
            mine = np.flatnonzero(shard_of == i)
            codes = np.load(self.folder / _shard_files(self.name, int(i))[0], mmap_mode="r")
            out[mine] = self._checked(int(i), codes[index[mine] - self.layout.rows(int(i))[0]].astype(np.float32))
            del codes
        return out

    def view(self) -> StoreView:
        """The codes as an array-like [samples, units] that reads only the rows it is indexed with."""
        return StoreView(self)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Each unit's mean and population standard deviation (float64, one pass)."""
        return mean_std(self.chunks(), self.units)


def mean_std(chunks: Iterable[tuple[int, np.ndarray, np.ndarray]], units: int) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's mean and population standard deviation over `chunks` (first row, codes, labels), in one pass,
    shifted by the first row so large means lose no precision (float64)."""
    shift = total = square = None
    samples = 0
    for _, block, _ in chunks:
        x = block.astype(np.float64)
        if shift is None:
            shift, total, square = x[0].copy(), np.zeros(units), np.zeros(units)
        x -= shift
        total += x.sum(0)
        square += (x * x).sum(0)
        samples += len(x)
    if shift is None:
        return np.zeros(units), np.zeros(units)
    mean = total / samples
    return mean + shift, np.sqrt(np.maximum(square / samples - mean * mean, 0.0))


class StoreView:
    """A store's codes indexed like a float32 array [samples, units] (an int, a slice or an array of rows picks
    rows; a second index picks columns), reading only those rows; `np.asarray(view)` reads them all."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, store: CodeStore) -> None:
        self.store = store

    @property
    def shape(self) -> tuple[int, int]:
        return self.store.samples, self.store.units

    def __len__(self) -> int:
        return self.store.samples

    def __getitem__(self, key: Any) -> np.ndarray:
        rows, columns = key if isinstance(key, tuple) and len(key) == 2 else (key, slice(None))
        if isinstance(rows, (int, np.integer)):
            return self.store.rows(np.array([rows]))[0][columns]
        index = np.arange(*rows.indices(self.store.samples)) if isinstance(rows, slice) else \
            np.arange(self.store.samples)[rows]
        return self.store.rows(index)[:, columns]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.store.array()
        return out if dtype is None else out.astype(dtype)


def _listed(manifest: StoreManifest, layout: Layout) -> dict[int, Recorded | None]:
    """The shards a manifest lists within the layout, each with its recorded stamp and CRC-32s (None without)."""
    return {s.index: s.recorded() for s in manifest.shards if 0 <= s.index < layout.shards}


def _shard_problem(folder: Path, name: str, layout: Layout, index: int) -> str | None:
    """Why shard `index`'s files are not the ones the layout expects (their `.npy` headers; None when they are)."""
    start, stop = layout.rows(index)
    codes_file, labels_file = _shard_files(name, index)
    codes, labels = _header(folder / codes_file), _header(folder / labels_file)
    if codes is None or codes != ((stop - start, layout.units), np.dtype(layout.dtype)):
        return f"{codes_file} is missing, truncated or not [{stop - start}, {layout.units}] {layout.dtype}"
    if labels is None or labels[0] != (stop - start,) or labels[1].kind not in "iu":
        return f"{labels_file} is missing, truncated or not [{stop - start}] integers"
    return None


def _verified(folder: Path, name: str, layout: Layout, index: int, recorded: Recorded | None,
              verify: bool = False) -> tuple[str | None, list[int]]:
    """Why shard `index` does not hold what the store `recorded` (None when it does), and its files' stamp now.

    The stamp stands for reading the codes: a file replaced or edited since it was written has another size or change
    time, so an untouched shard costs one `stat` a file. A touched one (or any, with `verify`) is read once to compare
    its CRC-32 with the one recorded when it was written."""
    if (problem := _shard_problem(folder, name, layout, index)) is not None:
        return problem, []
    stamp = _stamp(folder, name, index)  # before reading: a change while it is read makes the next open look again
    if recorded is None:
        return "its manifest records no stamp and CRC-32 for it", stamp
    if (verify or stamp != recorded[0]) and _crc(folder, name, index) != recorded[1]:
        codes_file, labels_file = _shard_files(name, index)
        return (f"{codes_file} or {labels_file} no longer holds what was written (its CRC-32 differs: edited, "
                "overwritten or corrupted)"), stamp
    return None, stamp


class StoreWriter:
    """Writes a store shard by shard; shards a previous writer finished (same fingerprint and layout) are kept
    unless `fresh`. Only a writer that `records` writes the manifest (one process of several)."""

    def __init__(self, folder: str | Path, name: str, fingerprint: JsonRecord, layout: Layout, *,
                 fresh: bool = False, records: bool = True) -> None:
        self.folder, self.name, self.fingerprint, self.layout = Path(folder), name, fingerprint, layout
        self.records = records
        self.folder.mkdir(parents=True, exist_ok=True)
        self.finished: dict[int, Recorded] = {}  # index: stamp, CRC-32s
        self.written: list[int] = []  # the shards this writer wrote
        old = _read_manifest(self.manifest_path)
        if (not fresh and old is not None and not _differences(old.fingerprint, fingerprint)
                and _layout_of(old) == layout):
            for i, recorded in _listed(old, layout).items():
                problem, stamp = _verified(self.folder, name, layout, i, recorded)
                if problem is None and recorded is not None:
                    self.finished[i] = (stamp, recorded[1])
        self._record()

    @property
    def manifest_path(self) -> Path:
        return self.folder / f"{self.name}.json"

    def todo(self) -> list[int]:
        """The shards not yet written."""
        return [i for i in range(self.layout.shards) if i not in self.finished]

    def write(self, index: int, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Fill shard `index` from (codes, labels) batches, in order, then record it as finished."""
        start, stop = self.layout.rows(index)
        rows = stop - start
        codes_file, labels_file = _shard_files(self.name, index)
        labels = np.empty(rows, dtype=np.int64)
        with atomic_path(self.folder / codes_file) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.layout.dtype, shape=(rows, self.layout.units))
            filled = crc = 0
            for z, y in batches:
                if filled + len(y) > rows or z.shape[1:] != (self.layout.units,):
                    raise NvError(f"shard {index} of '{self.name}' got a batch of {list(z.shape)} codes after "
                                  f"{filled} rows; it holds {rows} rows of {self.layout.units} units")
                out[filled:filled + len(y)] = z
                if not np.isfinite(out[filled:filled + len(y)]).all():  # once, as stored (float16 overflows at
                    # 65504); readers trust the stamp and CRC-32, not a pass over the codes
                    raise NvError(f"the codes of rows {start + filled}..{start + filled + len(y) - 1} of "
                                  f"'{self.name}' are not finite as {self.layout.dtype} (NaN or infinite); the "
                                  "model's weights or inputs hold such values" +
                                  (", or they exceed float16's range" if self.layout.dtype == "float16" else ""))
                labels[filled:filled + len(y)] = y
                crc = _data_crc(out[filled:filled + len(y)], crc)  # from memory, as stored: no reading back
                filled += len(y)
            out.flush()
            del out
            if filled != rows:
                raise NvError(f"shard {index} of '{self.name}' got {filled} rows, expected {rows}")
            with atomic_path(self.folder / labels_file) as tmp_labels:
                with open(tmp_labels, "wb") as f:
                    np.save(f, labels)
        self.written.append(index)
        self.finished[index] = (_stamp(self.folder, self.name, index), [crc, _data_crc(labels)])
        self._record()

    def adopt(self, indices: Iterable[int]) -> None:
        """Record shards another process wrote as finished, each only if its files are whole, with its stamp and the
        CRC-32 of what is there now (read once)."""
        self.finished |= {i: (_stamp(self.folder, self.name, i), _crc(self.folder, self.name, i)) for i in indices
                          if i not in self.finished and _shard_problem(self.folder, self.name, self.layout, i) is None}
        self._record()

    def _record(self) -> None:
        if self.records:
            fingerprint = self.fingerprint.to_json()
            write_json(self.manifest_path, _manifest(self.name, fingerprint, self.layout, self.finished).to_json())

    def close(self) -> CodeStore:
        """The finished store (NvError when shards are missing)."""
        return CodeStore.open(self.folder, self.name, self.fingerprint)


def write_store(folder: str | Path, name: str, fingerprint: JsonRecord, layout: Layout,
                shard_batches: Callable[[int, int], Iterable[tuple[np.ndarray, np.ndarray]]], *,
                fresh: bool = False, rank: int = 0, world: int = 1, barrier: Callable[[], None] = lambda: None,
                plan: Callable[[list[tuple[int, int]]], None] | None = None) -> StoreWriter:
    """Write the shards of a store not yet finished (every one when `fresh`): `shard_batches(start, stop)` yields
    the (codes, labels) batches of rows start..stop-1 in order. Returns the writer (`.close()` opens the store).

    Several processes (`world`, this one `rank`, `barrier` waiting for all) write round by round, each one shard
    of a round; rank 0 alone writes the manifest, after each round, so an interrupted store keeps its rounds.
    `plan`, if given, first gets the rows (start, stop) of every shard this process will write, in order (so one
    data pipeline can feed them all).
    """
    writer = StoreWriter(folder, name, fingerprint, layout, fresh=fresh) if rank == 0 else None
    barrier()  # the others read the manifest rank 0 has settled, and so agree on what is left to do
    writer = writer or StoreWriter(folder, name, fingerprint, layout, records=False)
    todo = writer.todo()
    if plan is not None:
        plan([layout.rows(i) for i in todo[rank::world]])  # this process's shards: one of each round
    for first in range(0, len(todo), world):
        shards = todo[first:first + world]
        if rank < len(shards):
            writer.write(shards[rank], shard_batches(*layout.rows(shards[rank])))
        barrier()
        if writer.records:  # the others' shards, checked by the one process that lists them
            writer.adopt(shards)
    barrier()  # the manifest lists the last round before anyone opens the store
    return writer
