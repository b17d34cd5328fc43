"""`nv bias`: which cue a run's decisions follow on cue-conflict images, and its shape bias (case study 2)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..analysis.settings import BiasOptions, Compute
from ..runs.files import DENSE_HEAD, RUNS_DIR
from . import options as o
from .render import Format, emit, note, progress
from .requests import Output, RunSource

PANEL = "Cue conflict"
PerClass = Annotated[int, o.number(int, "--per-class", min=1, rich_help_panel=PANEL, help="Built-in cue-conflict "
                                       "images per shape class (runs trained on the cues world).")]
Conflicts = Annotated[Optional[Path], typer.Option("--conflicts", rich_help_panel=PANEL, help="A folder of "
                                                   "cue-conflict images listed in conflicts.csv or stylize.csv (nv "
                                                   "data stylize; default: the built-in cues world's).")]


@dataclass(frozen=True)
class Bias:
    """The cues a run's decisions follow on cue-conflict images, per shape class and overall."""

    source: RunSource
    options: BiasOptions = BiasOptions()
    conflicts: Path | None = None
    head: str = DENSE_HEAD
    compute: Compute = Compute()
    output: Output = Output()

    def execute(self) -> None:
        run = self.source.open()  # before torch loads: a wrong --run answers at once
        self.compute.apply_threads()
        from ..analysis.bias import shape_bias

        with progress("bias") as bar:
            result = shape_bias(run, self.options, conflicts=self.conflicts, head=self.head, compute=self.compute,
                                trust_code=self.source.trust_code, progress=bar)
        self.output.save(result, run)
        overall = result.overall
        note(f"{overall.images} cue-conflict images ({result.source}); shape bias {overall.shape_bias:.3f} "
             "(shape / (shape + texture) decisions)")
        emit(result.frame, self.output.fmt, title="Share of decisions following each cue, per class of the shape")
        self.output.wrote(result, run.dir)


def bias(
    per_class: PerClass = BiasOptions.per_class,
    conflicts: Conflicts = None,
    head: o.HeadName = DENSE_HEAD,
    run: o.RunDir = None,
    runs_dir: o.RunsDir = RUNS_DIR,
    trust_code: o.TrustCode = False,
    device: o.DeviceOpt = Compute.device,
    batch_size: o.BatchSize = Compute.batch_size,
    workers: o.Workers = Compute.workers,
    threads: o.Threads = None,
    plot: o.Plot = True,
    force: o.Force = False,
    fmt: o.FormatOpt = Format.table,
) -> Bias:
    """`nv bias`'s options as a Bias request (its help is in app.COMMANDS)."""
    return Bias(RunSource(run, runs_dir, trust_code), BiasOptions(per_class), conflicts, head,
                Compute(device, batch_size, workers, threads), Output(fmt, plot, force))
