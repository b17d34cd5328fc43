"""`nv explain`: one decision as the sum of its units' contributions W[c,u]·z_u(x), plus the bias."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..analysis.settings import DEFAULT_RANK, Compute, Rank
from ..runs.files import DENSE_HEAD, RUNS_DIR
from . import options as o
from .render import Format, emit, note
from .requests import Output, RunSource

if TYPE_CHECKING:
    from ..runs.run import Run

PANEL = "Input"
InputFile = Annotated[Optional[Path], typer.Option("--input", "-i", rich_help_panel=PANEL,
                                                   help="An image file to explain.")]
Index = Annotated[Optional[int], o.number(int, "--index", min=0, rich_help_panel=PANEL,
                                              help="A sample of the validation split to explain.")]
Target = Annotated[Optional[str], typer.Option("--class", "-c", rich_help_panel=PANEL,
                                               help="Explain this class's logit (default: the predicted class).")]
Top = Annotated[int, o.number(int, "--top", "-k", min=1, max=o.MAX_COUNT, rich_help_panel=PANEL,
                                  help="Units listed per sign.")]
Where = Annotated[bool, typer.Option("--where", rich_help_panel=PANEL,
                                     help="Also map the logit over the input, exactly: where_<input>.npy and .png "
                                          "(image, sound and multi-view runs; docs/where.md). With --class and no "
                                          "input: the class's maps averaged over its validation images.")]


@dataclass(frozen=True)
class Explain:
    """One decision of a run, unit by unit."""

    source: RunSource
    index: int | None = None
    path: Path | None = None
    target: str | None = None
    top: int = 10
    rank: Rank = DEFAULT_RANK
    head: str = DENSE_HEAD
    where: bool = False
    compute: Compute = Compute(device="cpu")
    output: Output = Output()

    def execute(self) -> None:
        run = self.source.open()  # before torch loads: a wrong --run answers at once
        self.compute.apply_threads()
        if self.where and self.index is None and self.path is None:
            self._class_maps(run)
            return
        from ..analysis.explain import explain_run
        from ..analysis.head import extremes

        result = explain_run(run, index=self.index, path=self.path, target=self.target, head=self.head, top=self.top,
                             rank=self.rank, device=self.compute.device, trust_code=self.source.trust_code)
        mapped = None
        if self.where:  # computed before anything is saved: a run it cannot map gets no files either
            from ..analysis.where import where_run

            mapped = where_run(run, index=self.index, path=self.path, target=self.target, head=self.head,
                               device=self.compute.device, trust_code=self.source.trust_code)
        written: list[str] = []
        for made in [result] if mapped is None else [result, mapped]:
            self.output.save(made, run)
            written += list(made.artifacts(self.output.plot))
        s, fmt = result.summary, self.output.fmt
        units = extremes(result.units, "contribution", self.top)
        if fmt != Format.table:
            emit(units if mapped is None else mapped.identity(), fmt)
            return
        true = f"true class '{s.true}', " if s.true is not None else ""
        note(f"{s.source}: {true}predicted '{s.predicted}' ({s.probability:.1%}); explaining '{s.class_}': "
             f"logit {s.logit:.4g} = contributions {s.contributions:.4g} + bias {s.bias:.4g}"
             + (" (contributions relative to the mean codes, their part in the bias)" if s.relative else ""))
        emit(result.classes.sort_values("probability", ascending=False).head(5), fmt, title="Most probable classes")
        emit(units, fmt, title=f"Units pushing '{s.class_}' up and down most")
        emit(result.layers, fmt, title="Contribution per layer")
        if mapped is not None:
            emit(mapped.identity(), fmt, title="Where: the maps add up to the logit minus the bias")
        note(f"wrote {', '.join(written)} to {run.dir}")

    def _class_maps(self, run: "Run") -> None:
        """`--where --class C` without an input: the class's maps averaged over its validation images."""
        from ..analysis.where import class_where
        from ..errors import NvError

        if self.target is None:  # the core's word for it is target; the flag is --class
            raise NvError("--where maps one input (--index or --input) or, with --class, a class's validation images; "
                          "give one of them")
        result = class_where(run, self.target, head=self.head, compute=self.compute,
                             trust_code=self.source.trust_code)
        self.output.save(result, run)
        emit(result.identity(), self.output.fmt, title=f"Where class '{result.name}' looks: mean over its "
                                                       "validation images (mean logit = bias + map_sum)")
        if self.output.fmt == Format.table:
            self.output.wrote(result, run.dir)


def explain(
    path: InputFile = None,
    index: Index = None,
    class_: Target = None,
    top: Top = 10,
    rank: o.RankOpt = DEFAULT_RANK,
    head: o.HeadName = DENSE_HEAD,
    where: Where = False,
    run: o.RunDir = None,
    runs_dir: o.RunsDir = RUNS_DIR,
    trust_code: o.TrustCode = False,
    device: o.DeviceOpt = "cpu",  # one input: the CPU answers before a GPU has started
    threads: o.Threads = None,
    plot: o.Plot = True,
    force: o.Force = False,
    fmt: o.FormatOpt = Format.table,
) -> Explain:
    """`nv explain`'s options as a Explain request (its help is in app.COMMANDS)."""
    return Explain(RunSource(run, runs_dir, trust_code), index, path, class_, top, rank, head, where,
                   Compute(device=device, threads=threads), Output(fmt, plot, force))
