"""`nv codes`: compute a run's code store for one split (or check the one it has), e.g. across processes under
torchrun before `nv sparsify` reads it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Optional

from ..analysis.settings import CodeDtype, Compute, Split
from ..runs.files import RUNS_DIR
from . import options as o
from .render import Format, emit, note, progress
from .requests import RunSource

SplitOpt = Annotated[Split, o.choice(Split, "--split", help="Which split's codes: val, or train (read without "
                                     "augmentation).")]
DtypeOpt = Annotated[Optional[CodeDtype], o.choice(CodeDtype, "--dtype", help="How the store keeps codes: float32, or "
                                                   "float16 (half the disk, about 3 significant digits); a store of "
                                                   "another dtype is written again (default: as stored; float32 for a "
                                                   "new store).")]
ShardRows = Annotated[int, o.number(int, "--shard-rows", min=0, help="Rows per shard of a new store (0: 64 MiB of "
                                        "codes); a reader holds one shard at a time.")]


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

        c = self.compute
        with progress("codes") as bar, c.shared():
            store = split_codes(run, self.split, device=c.device, batch_size=c.batch_size, workers=c.workers,
                                trust_code=self.source.trust_code, rows_per_shard=self.shard_rows,
                                dtype=self.dtype, progress=bar).store
        layout = store.layout
        emit(pd.DataFrame([{"run": run.name, "split": self.split, "samples": layout.samples, "units": layout.units,
                            "dtype": layout.dtype, "shards": layout.shards, "mib": store.stored_bytes / 2**20,
                            "manifest": str(store.folder / f"{store.name}.json")}]),
             self.fmt, title=f"Code store of the {self.split} split")
        note("numpy alone reads it: the manifest lists each shard's .npy files (docs/scale.md#the-code-store)")


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
