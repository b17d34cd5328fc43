"""`nv eval`: accuracy, per-class accuracy and confusion matrix; several runs give a Table-1 comparison."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, ClassVar, Optional

import typer

from ..analysis.settings import Compute
from ..errors import NvError
from ..runs.files import DENSE_HEAD, RUNS_DIR
from . import options as o
from .render import Format, emit, note, progress
from .requests import Output, RunSources

MinAcc = Annotated[Optional[float], o.number(float, "--min-acc", min=0.0, max=1.0, rich_help_panel="Evaluation",
                                                 help="Exit with status 1 if any accuracy is below this.")]
PerClass = Annotated[bool, typer.Option("--per-class", rich_help_panel="Evaluation",
                                        help="Print per-class accuracy (with csv/json: only that).")]


@dataclass(frozen=True)
class Evaluate:
    """Evaluate each head of each run on its validation split."""

    parallel: ClassVar[bool] = True  # under torchrun, every process takes its share

    runs: RunSources
    heads: tuple[str, ...] = (DENSE_HEAD,)
    min_acc: float | None = None
    per_class: bool = False
    compute: Compute = Compute()
    output: Output = Output()

    def execute(self) -> None:
        import pandas as pd

        runs = self.runs.open()  # before torch loads: a wrong --run answers at once
        self.compute.apply_threads()
        from ..analysis.evaluate import evaluate

        fmt = self.output.fmt
        rows, frames = [], []
        with self.compute.shared():  # under torchrun: one group for every run and head
            for run in runs:
                for head in self.heads:
                    with progress(f"eval {run.name}") as bar:
                        result = evaluate(run, head=head, compute=self.compute, trust_code=self.runs.trust_code,
                                          progress=bar)
                    self.output.save(result, run)
                    rows.append(asdict(result.summary))
                    if self.per_class:
                        frames.append(result.per_class.assign(run=run.name, head=head)[
                            ["run", "head", *result.per_class.columns]])
        table = pd.DataFrame(rows)
        if self.per_class:  # csv/json print one document: the per-class rows (the summary is in eval.csv)
            emit(pd.concat(frames, ignore_index=True), fmt, title="Per-class validation accuracy")
        if not self.per_class or fmt == Format.table:
            emit(table, fmt, title="Validation accuracy")
        if self.min_acc is not None:
            failing = table[table["accuracy"] < self.min_acc]
            if len(failing):
                note(f"accuracy below --min-acc {self.min_acc}: " +
                     ", ".join(f"{r.run} {r.head} ({r.accuracy:.4f})" for r in failing.itertuples()))
                raise typer.Exit(1)


def distinct(heads: list[str] | None) -> tuple[str, ...]:
    """The heads named by repeated --head, each once (default: the dense head)."""
    names = tuple(dict.fromkeys(heads or [DENSE_HEAD]))
    if heads and len(names) < len(heads):
        raise NvError(f"--head names {', '.join(sorted({h for h in heads if heads.count(h) > 1}))} more than once; "
                      "name each head once")
    return names


def evaluate(
    run: o.RunDirs = None,
    runs_dir: o.RunsDir = RUNS_DIR,
    trust_code: o.TrustCode = False,
    head: o.HeadNames = None,
    min_acc: MinAcc = None,
    per_class: PerClass = False,
    device: o.DeviceOpt = Compute.device,
    batch_size: o.BatchSize = Compute.batch_size,
    workers: o.Workers = Compute.workers,
    threads: o.Threads = None,
    plot: o.Plot = True,
    force: o.Force = False,
    fmt: o.FormatOpt = Format.table,
) -> Evaluate:
    """`nv eval`'s options as a Evaluate request (its help is in app.COMMANDS)."""
    return Evaluate(RunSources(tuple(run or ()), runs_dir, trust_code), distinct(head), min_acc, per_class,
                    Compute(device, batch_size, workers, threads), Output(fmt, plot, force))
