"""`nv attribute`: NeuroView's exact maps against Captum's attributions, under deletion, insertion and pointing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from ..analysis.settings import Compute
from ..errors import NvError
from ..runs.files import DENSE_HEAD, RUNS_DIR
from . import options as o
from .render import Format, emit, progress
from .requests import Output, RunSource

PANEL = "Attribution"
Methods = Annotated[Optional[str], typer.Option("--methods", rich_help_panel=PANEL, help="Comma-separated: neuroview, "
                                                "gradcam, ig, occlusion (default: all; all but neuroview need "
                                                "Captum).")]
Metrics = Annotated[Optional[str], typer.Option("--metrics", rich_help_panel=PANEL, help="Comma-separated: deletion, "
                                                "insertion, pointing (default: all the data allows; pointing needs "
                                                "the exact masks of shapes or cues).")]
Count = Annotated[int, o.number(int, "--count", "-n", min=1, max=o.MAX_COUNT, panel=PANEL,
                                help="Validation images, the classes taking turns.")]
Seed = Annotated[int, o.number(int, "--seed", min=0, max=o.MAX_SEED, panel=PANEL,
                               help="Seed of the images' choice.")]


@dataclass(frozen=True)
class Attribute:
    """Attribution maps of one run's validation images, scored by faithfulness metrics."""

    source: RunSource
    methods: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    count: int = 90
    seed: int = 0
    head: str = DENSE_HEAD
    compute: Compute = Compute()
    output: Output = Output()

    def execute(self) -> None:
        run = self.source.open()  # before torch loads: a wrong --run answers at once
        self.compute.apply_threads()
        from ..analysis.attribution import POST_HOC, attribute, captum_attr

        if set(self.methods or POST_HOC) & set(POST_HOC) and captum_attr() is None:
            raise NvError("nv attribute needs Captum: pip install 'nvcli[captum]'")
        with progress("attribute") as bar:
            result = attribute(run, methods=self.methods, metrics=self.metrics, count=self.count, seed=self.seed,
                               head=self.head, compute=self.compute, trust_code=self.source.trust_code, progress=bar)
        self.output.save(result, run)
        wide = result.frame.pivot_table(index=["metric", "class"], columns="method", values="value", sort=False)
        emit(wide[list(result.methods)].reset_index(), self.output.fmt,
             title=f"{result.images['image'].nunique()} validation images, maps of the true class: deletion AUC "
             "(lower is better), insertion AUC and pointing (higher is better)")
        self.output.wrote(result, run.dir)


def attribute(
    methods: Methods = None,
    metrics: Metrics = None,
    count: Count = Attribute.count,
    seed: Seed = Attribute.seed,
    head: o.HeadName = DENSE_HEAD,
    run: o.RunDir = None,
    runs_dir: o.RunsDir = RUNS_DIR,
    trust_code: o.TrustCode = False,
    device: o.DeviceOpt = Compute.device,
    batch_size: o.BatchSize = Compute.batch_size,
    threads: o.Threads = None,
    plot: o.Plot = True,
    force: o.Force = False,
    fmt: o.FormatOpt = Format.table,
) -> Attribute:
    """`nv attribute`'s options as an Attribute request (its help is in app.COMMANDS)."""
    return Attribute(RunSource(run, runs_dir, trust_code), o.split_list(methods), o.split_list(metrics), count, seed,
                     head, Compute(device, batch_size, 0, threads), Output(fmt, plot, force))
