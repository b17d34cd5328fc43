"""`nv codes`: compute a run's code store for one split (or check the one it has), e.g. across processes under
torchrun before `nv sparsify` reads it."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Optional

from ..analysis.settings import CodeDtype, Compute, Split
from ..runs.files import CODES_DIR, RUNS_DIR
from . import options as o
from .interrupt import on_interrupt
from .render import Format, emit, note, progress
from .requests import RunSource

if TYPE_CHECKING:
    from ..runs.run import Run

SplitOpt = Annotated[Split, o.choice(Split, "--split", help="Which split's codes: val, or train (read without "
                                     "augmentation).")]
DtypeOpt = Annotated[Optional[CodeDtype], o.choice(CodeDtype, "--dtype", help="How the store keeps codes: float32, or "
                                                   "float16 (half the disk, about 3 significant digits); a store of "
                                                   "another dtype is written again (default: as stored; float32 for a "
                                                   "new store).")]
ShardRows = Annotated[int, o.number(int, "--shard-rows", min=0, help="Rows per shard (0: 64 MiB of codes; a new "
                                        "store's, an existing one is kept as it is); given, a store of other shards "
                                        "is written again. A reader holds one shard at a time.")]

def kept(run: "Run", splits: tuple[str, ...], since_ns: int) -> list[str]:
    """What the code stores of `splits` that this command wrote into (their manifest changed since `since_ns`) kept:
    one phrase each, read from the manifest as the interrupt found it."""
    from ..analysis.code_store import recorded

    out = []
    for split in splits:
        manifest = run.path(f"{CODES_DIR}/{split}.json")
        state = recorded(manifest.parent, split) if manifest.is_file() else None
        if state is None or manifest.stat().st_mtime_ns < since_ns:
            continue
        layout, done = state
        out.append(f"the {split} codes in '{manifest.parent}' are complete" if done == layout.shards else
                   f"no shard of the {split} codes was finished" if done == 0 else
                   f"{done} of {layout.shards} shards of the {split} codes were kept in '{manifest.parent}'; run the "
                   "command again to resume them")
    return out


@dataclass(frozen=True)
class Codes:
    """One split's codes of a run, in its code store (computed where missing, resumed where unfinished)."""

    parallel: ClassVar[bool] = True  # under torchrun, every process writes its share of the shards

    source: RunSource
    split: Split = "val"
    shard_rows: int = 0
    dtype: CodeDtype | None = None
    compute: Compute = Compute()
    fmt: Format = Format.table

    def execute(self) -> None:
        import pandas as pd

        run = self.source.open()  # before torch loads: a wrong --run answers at once
        self.compute.apply_threads()
        from ..analysis.code_cache import split_codes
        from ..analysis.code_store import recorded

        c = self.compute
        before = recorded(run.path(f"{CODES_DIR}/{self.split}.json").parent, self.split)
        since = time.time_ns()
        on_interrupt(lambda: "interrupted; " + ("; ".join(kept(run, (self.split,), since)) or "no codes were written"))
        with progress("codes") as bar, c.shared():
            store = split_codes(run, self.split, device=c.device, batch_size=c.batch_size, workers=c.workers,
                                trust_code=self.source.trust_code, rows_per_shard=self.shard_rows,
                                dtype=self.dtype, verify=True, progress=bar).store
        layout = store.layout
        emit(pd.DataFrame([{"run": run.name, "split": self.split, "samples": layout.samples, "units": layout.units,
                            "dtype": layout.dtype, "shards": layout.shards, "rows_per_shard": layout.rows_per_shard,
                            "mib": store.stored_bytes / 2**20, "manifest": str(store.folder / f"{store.name}.json")}]),
             self.fmt, title=f"Code store of the {self.split} split")
        if (self.shard_rows or self.dtype) and before is not None and before[0] != layout:
            old = before[0]
            note(f"the store was written again as asked: {layout.shards} shards of {layout.rows_per_shard} rows as "
                 f"{layout.dtype} (it had {old.shards} of {old.rows_per_shard} rows as {old.dtype})")
        note("every shard holds the codes it was written with (CRC-32); numpy alone reads them: the manifest lists "
             "each shard's .npy files (docs/scale.md#the-code-store)")


def codes(
    split: SplitOpt = "val",
    shard_rows: ShardRows = 0,
    dtype: DtypeOpt = None,
    run: o.RunDir = None,
    runs_dir: o.RunsDir = RUNS_DIR,
    trust_code: o.TrustCode = False,
    device: o.DeviceOpt = Compute.device,
    batch_size: o.BatchSize = Compute.batch_size,
    workers: o.Workers = Compute.workers,
    threads: o.Threads = None,
    fmt: o.FormatOpt = Format.table,
) -> Codes:
    """`nv codes`' options as a Codes request (its help is in app.COMMANDS)."""
    return Codes(RunSource(run, runs_dir, trust_code), split, shard_rows, dtype,
                 Compute(device, batch_size, workers, threads), fmt)
