"""`nv compare`: two runs of one architecture side by side (case studies 2 and 3)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..analysis.settings import DEFAULT_RANK, Compute, Rank
from ..errors import NvError
from ..runs.files import DENSE_HEAD, RUNS_DIR
from . import options as o
from .render import Format, emit, progress
from .requests import Output, open_run

PANEL = "Comparison"
RunA = Annotated[Path, typer.Argument(help="Run A, e.g. trained on the original images.")]
RunB = Annotated[Path, typer.Argument(help="Run B of the same architecture, e.g. trained on stylised images.")]
OutDir = Annotated[Optional[Path], typer.Option("--out", "-o", rich_help_panel=PANEL,
                                                help="Output directory (default: RUN_A/compare_<B>/).")]
Top = Annotated[int, o.number(int, "--top", "-k", min=1, max=o.MAX_COUNT, rich_help_panel=PANEL,
                                  help="The k of top_share (units of largest |w|).")]
Heads = Annotated[Optional[list[str]], typer.Option("--head", rich_help_panel=PANEL, help="The head of both runs "
                                                    "(dense, or a sparse head's name); give it twice for run A's and "
                                                    "run B's (--head dense --head sparse10 compares a run with "
                                                    "itself).")]


@dataclass(frozen=True)
class Compare:
    """Accuracy and per-layer weight shares of run A and run B."""

    run_a: Path
    run_b: Path
    heads: tuple[str, str] = (DENSE_HEAD, DENSE_HEAD)
    out: Path | None = None
    top: int = 10
    rank: Rank = DEFAULT_RANK
    trust_code: bool = False
    compute: Compute = Compute()
    output: Output = Output()

    def execute(self) -> None:
        a, b = open_run(self.run_a, RUNS_DIR), open_run(self.run_b, RUNS_DIR, write=False)
        self.compute.apply_threads()
        from ..analysis.compare import check_comparable, output_dir  # after the runs: a wrong path answers at once
        from ..analysis.compare import compare as compare_runs

        check_comparable(a, b, self.heads)  # before creating the output directory
        path, fmt = output_dir(self.out, a, b, self.heads), self.output.fmt
        with progress("compare") as bar:
            result = compare_runs(a, b, heads=self.heads, top=self.top, rank=self.rank, compute=self.compute,
                                  trust_code=self.trust_code, progress=bar)
        self.output.save(result, a, into=path)
        if fmt == Format.table:
            emit(result.accuracy, fmt, title="Validation accuracy")
        emit(result.overall, fmt, title=f"Share of all classes' {self.rank} per layer (a = {result.names['a']}, "
             f"b = {result.names['b']}); unit_share: the layer's share of the units")
        if result.categories is not None and fmt == Format.table:  # csv/json print one document: the layers
            emit(result.categories, fmt, title=f"Share of all classes' {self.rank} per concept category of the units "
                 "(their dissection labels; none: not interpretable)")
        self.output.wrote(result, path)


def compare(
    run_a: RunA,
    run_b: RunB,
    out: OutDir = None,
    top: Top = 10,
    head: Heads = None,
    trust_code: o.TrustCode = False,
    rank: o.RankOpt = DEFAULT_RANK,
    device: o.DeviceOpt = Compute.device,
    batch_size: o.BatchSize = Compute.batch_size,
    workers: o.Workers = Compute.workers,
    threads: o.Threads = None,
    plot: o.Plot = True,
    force: o.Force = False,
    fmt: o.FormatOpt = Format.table,
) -> Compare:
    """`nv compare`'s options as a Compare request (its help is in app.COMMANDS)."""
    given = head or [DENSE_HEAD]
    if len(given) > 2:
        raise NvError(f"--head was given {len(given)} times; give it once (both runs) or twice (run A, then run B)")
    return Compare(run_a, run_b, (given[0], given[-1]), out, top, rank, trust_code,
                   Compute(device, batch_size, workers, threads), Output(fmt, plot, force))
