"""`nv sparsify`: a sparse head (a few units per class) fitted on a run's codes along an elastic-net path."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from ..analysis.settings import (
    DEFAULT_PATH_SOLVER,
    DEFAULT_UNITS_PER_CLASS,
    MEMORY_BUDGET,
    Compute,
    PathSettings,
    PathSolver,
)
from ..runs.files import RUNS_DIR
from . import options as o
from .codes import kept
from .interrupt import INTERRUPTED, on_interrupt
from .render import Format, emit, note, progress
from .requests import Output, RunSource

DROP_WARN = 0.05  # validation accuracy a sparse head may lose before the terminal says so
PANEL = "Sparse head"
HeadName = Annotated[Optional[str], typer.Option("--name", rich_help_panel=PANEL, show_default="sparse<K>, or "
                                                 "sparse-drop<X>", help="Store the head as heads/NAME.pt (select it "
                                                 "with --head NAME).")]
UnitsPerClass = Annotated[Optional[int], o.number(int, "--units-per-class", max=o.MAX_COUNT, rich_help_panel=PANEL,
                                                      show_default=str(DEFAULT_UNITS_PER_CLASS),
                                                      help="At most K units for every class: each class's first K "
                                                      "groups along the path, refitted without penalty.")]
MaxDrop = Annotated[Optional[float], typer.Option("--max-drop", rich_help_panel=PANEL,
                                                  help="Instead: the sparsest head "
                                                  "whose validation accuracy is at most X (a fraction, 0.03 = 3 "
                                                  "points) "
                                                  "below the dense head's.")]
Alpha = Annotated[float, typer.Option("--alpha", rich_help_panel=PANEL, help="L1 share of the elastic-net penalty "
                                      "(1 = lasso).")]
Steps = Annotated[int, o.number(int, "--steps", rich_help_panel=PANEL, help="Lambdas along the path, log-spaced from "
                                    "lambda_max down.")]
Ratio = Annotated[float, typer.Option("--lambda-ratio", rich_help_panel=PANEL, help="The last lambda as a fraction of "
                                      "lambda_max.")]
Patience = Annotated[int, o.number(int, "--patience", min=0, rich_help_panel=PANEL, help="Stop after this many steps "
                                       "without a better validation accuracy (0: fit every step).", max=o.MAX_COUNT)]
Finetune = Annotated[bool, typer.Option("--finetune", rich_help_panel=PANEL, help="With --max-drop: refit the kept "
                                        "units without penalty (debias); report both. --units-per-class always "
                                        "refits.")]
GroupCorr = Annotated[Optional[float], typer.Option("--group-corr", rich_help_panel=PANEL, help="Units whose "
                                                    "standardised training codes correlate with |r| >= R are one "
                                                    "feature (near-copies; the head weighs one unit per group); 0 "
                                                    "turns grouping off.")]

Solver = Annotated[PathSolver, o.choice(PathSolver, "--solver", panel=PANEL, help="memory: FISTA over the codes "
                                            "held in memory (on --device); stream: proximal SVRG over the code "
                                            "store on the CPU, in memory that does not grow with the samples; "
                                            f"auto: memory when the codes take at most {MEMORY_BUDGET >> 30} GiB.")]


@dataclass(frozen=True)
class Sparsify:
    """Fit a run's elastic-net path and store the head the rule chooses."""

    source: RunSource
    settings: PathSettings = PathSettings()
    name: str | None = None  # None: named after the rule
    units_per_class: int | None = None  # None with max_drop None: DEFAULT_UNITS_PER_CLASS
    max_drop: float | None = None
    finetune: bool = False
    solver: PathSolver = DEFAULT_PATH_SOLVER
    compute: Compute = Compute()
    output: Output = Output()

    def execute(self) -> None:
        run = self.source.open()  # before torch loads: a wrong --run answers at once
        self.compute.apply_threads()
        from ..analysis.sparse.selection import Selection, check_head_name, default_name
        from ..analysis.sparse.sparsify import check_destinations, fit_path, sparse_head

        given = self.units_per_class is not None or self.max_drop is not None
        selection = Selection(self.units_per_class, self.max_drop) if given else Selection()
        name, fmt = check_head_name(self.name or default_name(selection)), self.output.fmt
        check_destinations(run, name, self.output.plot)
        since = time.time_ns()
        on_interrupt(lambda: "; ".join([INTERRUPTED, *kept(run, ("train", "val"), since)]))
        with progress(f"sparsify {run.name}") as bar:
            fitted = fit_path(run, self.settings, compute=self.compute, solver=self.solver,
                              trust_code=self.source.trust_code, progress=bar)
        self.output.save(fitted.result, run)  # the path stands on its own, also when no head meets the rule
        note(f"path ({fitted.solver} solver): {len(fitted.path.steps)} steps ({self.settings.steps} on the lambda "
             f"grid, plus bisections where units entered in bulk) in {fitted.seconds:.1f} s"
             f"{' (stopped early: validation accuracy no longer improved)' if fitted.path.stopped_early else ''}; "
             f"wrote {', '.join(fitted.result.artifacts(self.output.plot))}")
        head = sparse_head(fitted, name, selection, finetune=self.finetune)
        self.output.save(head, run)
        note(f"head '{name}' = step {head.record.step} (lambda {head.record.lambda_:.4g}); wrote "
             f"{', '.join(head.artifacts())} to {run.dir}; read it with --head {name}")
        emit(head.summary, fmt, title=f"{run.name}: dense and sparse head")
        refit = head.record.finetune
        if refit is not None and not refit.converged:
            note(f"warning: the unpenalised refit of head '{name}' stopped at its limit of {refit.max_iterations} "
                 f"{'epochs' if fitted.solver == 'stream' else 'iterations'} before its tolerance (gradient "
                 f"{refit.tol:g}); its weights are less debiased than a converged refit's (docs/sparsify.md)")
        drop = head.record.dense_val_acc - head.record.val_acc
        if drop > DROP_WARN:
            note(f"warning: head '{name}' is {drop:.1%} less accurate than the dense head, so its units do not "
                 "explain the dense decisions; see sparse_path.csv and choose by accuracy with --max-drop "
                 "(docs/sparsify.md)")
        if fmt == Format.table and head.record.units_per_view is not None:
            import pandas as pd

            views = pd.DataFrame(list(head.record.units_per_view.items()), columns=["view", "units"])
            emit(views, fmt, title=f"'{name}': kept units per view")


def sparsify(
    name: HeadName = None,
    units_per_class: UnitsPerClass = None,
    max_drop: MaxDrop = None,
    alpha: Alpha = PathSettings.alpha,
    steps: Steps = PathSettings.steps,
    ratio: Ratio = PathSettings.ratio,
    patience: Patience = PathSettings.patience,
    group_corr: GroupCorr = PathSettings.group_corr,
    finetune: Finetune = False,
    solver: Solver = DEFAULT_PATH_SOLVER,
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
) -> Sparsify:
    """`nv sparsify`'s options as a Sparsify request (its help is in app.COMMANDS)."""
    settings = PathSettings(alpha=alpha, steps=steps, ratio=ratio, patience=patience or None,
                            group_corr=group_corr or None)
    return Sparsify(RunSource(run, runs_dir, trust_code), settings, name, units_per_class, max_drop, finetune, solver,
                    Compute(device, batch_size, workers, threads), Output(fmt, plot, force))
