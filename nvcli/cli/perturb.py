"""`nv perturb`: per-class accuracy with one colour channel zeroed (Table 2, Figure 7)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from ..analysis.settings import ChannelChoice, Compute
from ..runs.files import DENSE_HEAD, RUNS_DIR
from . import options as o
from .render import Format, emit, progress
from .requests import Output, RunSources

ChannelOpt = Annotated[ChannelChoice, o.choice(ChannelChoice, "--channel", panel="Perturbation",
                                             help="Channel to set to zero (all: each in turn).")]
Example = Annotated[int, o.number(int, "--example", min=0, rich_help_panel="Perturbation",
                                      help="Validation sample shown in perturb_examples.png.")]


@dataclass(frozen=True)
class Perturb:
    """Validation accuracy per class of each run with colour channels zeroed."""

    parallel: ClassVar[bool] = True  # under torchrun, every process takes its share

    runs: RunSources
    channel: ChannelChoice = "all"
    example: int = 0
    head: str = DENSE_HEAD
    compute: Compute = Compute()
    output: Output = Output()

    def execute(self) -> None:
        runs = self.runs.open()  # before torch loads: a wrong --run answers at once
        self.compute.apply_threads()
        from ..analysis.perturb import perturb as perturb_run
        from ..analysis.perturb import side_by_side
        from ..data.channels import channels_for

        channels = channels_for(self.channel)
        results = []
        with self.compute.shared():  # under torchrun: one group for every run
            for run in runs:
                with progress(f"perturb {run.name}") as bar:
                    result = perturb_run(run, channels, head=self.head, example=self.example, compute=self.compute,
                                         trust_code=self.runs.trust_code, progress=bar)
                self.output.save(result, run)
                results.append((run, result.accuracy))
        emit(side_by_side(results), self.output.fmt, title="Validation accuracy with one colour channel set to 0")


def perturb(
    channel: ChannelOpt = "all",
    example: Example = 0,
    head: o.HeadName = DENSE_HEAD,
    run: o.RunDirs = None,
    runs_dir: o.RunsDir = RUNS_DIR,
    trust_code: o.TrustCode = False,
    device: o.DeviceOpt = Compute.device,
    batch_size: o.BatchSize = Compute.batch_size,
    workers: o.Workers = Compute.workers,
    threads: o.Threads = None,
    plot: o.Plot = True,
    force: o.Force = False,
    fmt: o.FormatOpt = Format.table,
) -> Perturb:
    """`nv perturb`'s options as a Perturb request (its help is in app.COMMANDS)."""
    return Perturb(RunSources(tuple(run or ()), runs_dir, trust_code), channel, example, head,
                   Compute(device, batch_size, workers, threads), Output(fmt, plot, force))
