"""`nv dissect-map`: Network Dissection of every unit, then the concepts each class relies on (Figure 4)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Optional

import typer

from ..analysis.settings import Aggregate, Compute, DissectOptions
from ..runs.files import DENSE_HEAD, RUNS_DIR
from . import options as o
from .interrupt import on_interrupt
from .render import Format, emit, note, progress
from .requests import Output, RunSource

PANEL = "Dissection"
Probe = Annotated[Optional[Path], typer.Option("--probe", rich_help_panel=PANEL,
                                               help="Broden-layout probe set (default: the built-in probe of the "
                                               "run's world: cues, else shapes).")]
ProbeCount = Annotated[int, o.number(int, "--probe-count", min=1, rich_help_panel=PANEL,
                                         help="Images in the built-in probe set.")]
Quantile = Annotated[float, typer.Option("--quantile", rich_help_panel=PANEL,
                                         help="Top quantile of activations that counts as active.")]
IouThreshold = Annotated[float, typer.Option("--iou-threshold", rich_help_panel=PANEL,
                                             help="IoU at which a unit is interpretable.")]
Categories = Annotated[Optional[str], typer.Option("--categories", rich_help_panel=PANEL,
                                                   help="Comma-separated categories to score.")]
AggregateOpt = Annotated[Aggregate, o.choice(Aggregate, "--aggregate", panel=PANEL, help="A concept's score for a "
                                                 "class from its units' scores: balanced (sum / sqrt(units): neither "
                                                 "many units nor a single one wins by count), mean, or sum (the "
                                                 "paper's).")]
FigureClass = Annotated[Optional[str], typer.Option("--class", rich_help_panel=PANEL,
                                                    help="Draw the figure of this class only.")]
Top = Annotated[int, o.number(int, "--top", min=1, rich_help_panel=PANEL, help="Concepts per sign in the table and "
                                  "figure.", max=o.MAX_COUNT)]
ProbeSize = Annotated[Optional[int], o.number(int, "--image-size", min=16, rich_help_panel=PANEL, help="Resize "
                                                  "--probe images to this side (default: the run's); the built-in "
                                                  "probe draws its objects at this scale on a canvas twice the side.")]
DISSECT_COMPUTE = Compute(batch_size=16)  # every layer's maps of a batch are held at once


@dataclass(frozen=True)
class DissectMap:
    """Every unit's concept on a probe set, and the concepts each class's weights favour."""

    parallel: ClassVar[bool] = True  # under torchrun, every process takes its share

    source: RunSource
    probe: Path | None = None
    options: DissectOptions = DissectOptions()
    head: str = DENSE_HEAD
    compute: Compute = DISSECT_COMPUTE
    output: Output = Output()

    def execute(self) -> None:
        from ..errors import choice_error

        run = self.source.open()  # before torch loads: a wrong --run answers at once
        self.compute.apply_threads()
        for name in self.options.figure_classes or ():
            if name not in run.classes:
                raise choice_error("class", name, run.classes)
        from ..analysis.dissect.concepts import dissect_run

        on_interrupt("interrupted; no dissection results were written")
        with progress("dissecting") as bar, self.compute.shared():
            result = dissect_run(run, self.probe, self.options, head=self.head, compute=self.compute,
                                 trust_code=self.source.trust_code,
                                 progress=bar)
        self.output.save(result, run)
        top = self.options.top
        note(f"{int(result.units['interpretable'].sum())} of {len(result.units)} units interpretable (IoU >= "
             f"{self.options.iou_threshold}) on {result.probe}")
        shown = result.classes[result.classes["rank"] <= top]
        if self.options.figure_classes:
            shown = shown[shown["class"].isin(self.options.figure_classes)]
        emit(shown.reset_index(drop=True), self.output.fmt, title=f"Top {top} positive and negative concepts per class")


def dissect_map(
    probe: Probe = None,
    probe_count: ProbeCount = DissectOptions.probe_count,
    quantile: Quantile = DissectOptions.quantile,
    iou_threshold: IouThreshold = DissectOptions.iou_threshold,
    categories: Categories = None,
    aggregate: AggregateOpt = DissectOptions.aggregate,
    class_: FigureClass = None,
    top: Top = DissectOptions.top,
    image_size: ProbeSize = None,
    rank: o.RankOpt = DissectOptions.rank,
    head: o.HeadName = DENSE_HEAD,
    run: o.RunDir = None,
    runs_dir: o.RunsDir = RUNS_DIR,
    trust_code: o.TrustCode = False,
    device: o.DeviceOpt = DISSECT_COMPUTE.device,
    batch_size: o.BatchSize = DISSECT_COMPUTE.batch_size,
    workers: o.Workers = DISSECT_COMPUTE.workers,
    threads: o.Threads = None,
    plot: o.Plot = True,
    force: o.Force = False,
    fmt: o.FormatOpt = Format.table,
) -> DissectMap:
    """`nv dissect-map`'s options as a DissectMap request (its help is in app.COMMANDS)."""
    options = DissectOptions(probe_count=probe_count, quantile=quantile, iou_threshold=iou_threshold,
                             categories=o.split_list(categories), aggregate=aggregate, rank=rank, image_size=image_size,
                             top=top, figure_classes=(class_,) if class_ else None)
    return DissectMap(RunSource(run, runs_dir, trust_code), probe, options, head,
                      Compute(device, batch_size, workers, threads), Output(fmt, plot, force))
