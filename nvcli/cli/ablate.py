"""`nv ablate`: remove a class's top-ranked units (and random, bottom ones) and measure what the class loses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Optional

import typer

from ..analysis.settings import AblationMode, AblationOptions, Compute
from ..runs.files import DENSE_HEAD, RUNS_DIR
from . import options as o
from .render import Format, emit, note, progress
from .requests import Output, RunSource

PANEL = "Ablation"
Classes = Annotated[Optional[str], typer.Option("--class", "-c", rich_help_panel=PANEL,
                                                help="Ablate for these classes only (comma-separated; default: all).")]
Mode = Annotated[AblationMode, o.choice(AblationMode, "--mode", panel=PANEL, help="What a removed unit's code becomes: "
                                            "its validation mean, or zero.")]
MaxK = Annotated[Optional[int], o.number(int, "--max-k", min=1, rich_help_panel=PANEL, help="The largest number of "
                                             "units removed (default: 10% of the units).")]
Steps = Annotated[int, o.number(int, "--steps", min=1, rich_help_panel=PANEL,
                                    help="About this many values of k, spaced geometrically from 1 to --max-k.")]
Draws = Annotated[int, o.number(int, "--draws", min=1, rich_help_panel=PANEL, help="Random draws of k units (the "
                                    "control).")]
Seed = Annotated[int, o.number(int, "--seed", min=0, rich_help_panel=PANEL, help="Seed of the random draws.")]
Category = Annotated[Optional[list[str]], typer.Option(
    "--category", rich_help_panel=PANEL, help="Also remove every unit of these concept categories of the run's "
    "dissection together (comma-separated, e.g. color,texture; repeat for another group; needs nv dissect-map).")]
Fraction = Annotated[float, typer.Option("--fraction", rich_help_panel=PANEL, help="The summary's k as a share of the "
                                         "units (rounded up; at most --max-k).")]


@dataclass(frozen=True)
class Ablate:
    """Each class's top-k, bottom-k and random k units removed, on one head of a run."""

    parallel: ClassVar[bool] = True  # under torchrun, every process takes its share

    source: RunSource
    options: AblationOptions = AblationOptions()
    head: str = DENSE_HEAD
    compute: Compute = Compute()
    output: Output = Output()

    def execute(self) -> None:
        run = self.source.open()  # before torch loads: a wrong --run answers at once
        self.compute.apply_threads()
        from ..analysis.ablation import ablate

        options, fmt = self.options, self.output.fmt
        with progress("ablate") as bar, self.compute.shared():
            result = ablate(run, options, head=self.head, compute=self.compute, trust_code=self.source.trust_code,
                            progress=bar)
        self.output.save(result, run)
        k = int(result.summary["k"].iloc[0])
        if fmt == Format.table:
            note(f"{result.samples} validation samples, {result.units} units, accuracy {result.accuracy:.4f}; "
                 f"k = {k} units ({k / result.units:.1%}); ranking: {options.rank}, removed code := "
                 f"{'its validation mean' if options.mode == 'mean' else 'zero'}")
        emit(result.summary, fmt, title=f"Per class: its top {k} units removed vs {k} random units "
             f"({options.draws} draws)")
        if "top-steps" in set(result.frame["policy"]):
            from ..analysis.timesteps import step_summary

            count = int(run.units()["step"].max()) + 1
            emit(step_summary(result.frame, count), fmt, title=f"Per class: its top time steps (of {count}) removed "
                 f"vs random steps ({options.draws} draws)")
        if options.categories:
            from ..analysis.ablation import category_summary

            emit(category_summary(result.frame), fmt, title="Per class: every unit of a group of concept categories "
                 "removed")
        self.output.wrote(result, run.dir)


def ablate(
    class_: Classes = None,
    mode: Mode = AblationOptions.mode,
    max_k: MaxK = AblationOptions.max_k,
    steps: Steps = AblationOptions.steps,
    draws: Draws = AblationOptions.draws,
    seed: Seed = AblationOptions.seed,
    fraction: Fraction = AblationOptions.fraction,
    category: Category = None,
    rank: o.RankOpt = AblationOptions.rank,
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
) -> Ablate:
    """`nv ablate`'s options as an Ablate request (its help is in app.COMMANDS)."""
    options = AblationOptions(classes=o.split_list(class_), rank=rank, mode=mode, max_k=max_k, steps=steps,
                              draws=draws, seed=seed, fraction=fraction,
                              categories=tuple(tuple(o.split_list(group) or ()) for group in category or ()))
    return Ablate(RunSource(run, runs_dir, trust_code), options, head, Compute(device, batch_size, workers, threads),
                  Output(fmt, plot, force))
