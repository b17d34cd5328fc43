"""`nv weights`: a class's head weights along the unit axis (Figure 3), per-layer summaries, class similarity."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional

import typer

from ..analysis.settings import DEFAULT_RANK, Rank
from ..errors import NvError
from ..runs.files import DENSE_HEAD, RUNS_DIR, is_dense
from . import options as o
from .render import Format, emit, note
from .requests import Output, RunSource

PANEL = "Weights"
ClassName = Annotated[Optional[str], typer.Option("--class", "-c", rich_help_panel=PANEL,
                                                  help="The class whose weights to show.")]
Every = Annotated[bool, typer.Option("--all", rich_help_panel=PANEL,
                                     help="Every class: weights_<class>.csv for each, and weights_all.png.")]
Top = Annotated[int, o.number(int, "--top", "-k", min=1, max=o.MAX_COUNT, rich_help_panel=PANEL,
                                  help="Units listed per sign, and the k of top_share in weights_layers.csv.")]
By = Annotated[Literal["unit", "time"], o.choice(Literal["unit", "time"], "--by", panel=PANEL, help="unit: weights "
                                                 "along the unit axis; time (rnn/gru/lstm runs): every class's weight "
                                                 "mass per time step and layer (weights_time.csv/.png).")]


@dataclass(frozen=True)
class WeightsByTime:
    """Every class's weight mass per time step and layer of a recurrent run (NeuroView-RNN's figure)."""

    source: RunSource
    class_name: str | None = None  # only this class's summary row is printed
    rank: Rank = DEFAULT_RANK
    head: str = DENSE_HEAD
    output: Output = Output()

    def execute(self) -> None:
        run = self.source.open()
        from ..analysis.head import read_head
        from ..analysis.importance import code_stats, needs_codes
        from ..analysis.timesteps import require_steps, time_weights

        head = read_head(run, self.head)
        require_steps(head.units, "--by time")
        if self.class_name is not None:
            head.class_index(self.class_name)
        stats = code_stats(run, trust_code=self.source.trust_code) if needs_codes(self.rank) else None
        result = time_weights(run.name, head, self.rank, stats)
        self.output.save(result, run)
        self.output.wrote(result, run.dir)
        summary = result.summary
        if self.class_name is not None:
            summary = summary[summary["class"] == self.class_name]
        emit(summary, self.output.fmt, title=f"{run.name}: where each class's weight lies in time")


@dataclass(frozen=True)
class Weights:
    """One class's (or every class's) head weights by unit and layer."""

    source: RunSource
    class_name: str | None = None  # None: every class
    top: int = 10
    rank: Rank = DEFAULT_RANK
    head: str = DENSE_HEAD
    output: Output = Output()

    def execute(self) -> None:
        run = self.source.open()  # before torch loads: a wrong --run answers at once
        from ..analysis.dissect.concepts import ConceptMap
        from ..analysis.head import extremes, read_head
        from ..analysis.importance import code_stats, needs_codes
        from ..analysis.weights import INIT_WARN, class_overview, init_correlation, kept_per_view, kept_units
        from ..analysis.weights import weights as head_weights

        name, top, fmt = self.class_name, self.top, self.output.fmt
        head = read_head(run, self.head)
        if name is not None:
            head.class_index(name)
        stats = code_stats(run, trust_code=self.source.trust_code) if needs_codes(self.rank) else None
        concepts = ConceptMap.labels_for(run, head.name)
        per_class, summary = head_weights(run.name, head, head.classes if name is None else [name], top=top,
                                          grid=name is None, rank=self.rank, stats=stats, concepts=concepts)
        init_corr = init_correlation(head, run.head_init()) if is_dense(head.name) else None
        for result in [*per_class, summary]:
            self.output.save(result, run)
        note(f"wrote weights CSVs{' and figures' if self.output.plot else ''} to {run.dir}")
        if init_corr is not None and (init_corr > INIT_WARN).any():
            high = ", ".join(f"{c} ({r:.2f})" for c, r in zip(head.classes, init_corr) if r > INIT_WARN)
            note(f"warning: weights correlate > {INIT_WARN} with the head's random start (head_init.pt) for {high}: "
                 "they say as much about the initialisation as about what was learned (docs/head-recipe.md)")
        if name is None:
            emit(class_overview(head, summary.similarity, init_corr), fmt, title=f"{run.name}: classes")
            return
        if is_dense(head.name):
            score = "weight" if stats is None else "importance"
            emit(extremes(per_class[0].frame, score, top), fmt, title=f"{run.name}: '{name}' top {top} positive and "
                 f"negative units by {score}")
        else:  # a sparse head's few units are the explanation: list them all, with their concepts once dissected
            kept = kept_units(head, name, concepts)
            emit(kept, fmt, title=f"{run.name}: the {len(kept)} units of '{name}' in head '{head.name}'")
            if fmt == Format.table and "view" in head.units.columns:
                emit(kept_per_view(head, name), fmt, title=f"'{name}': units per view")
        if fmt == Format.table:
            layers = summary.layers
            emit(layers[layers["class"] == name].drop(columns="class"), fmt, title=f"'{name}' per layer")


def weights(
    class_: ClassName = None,
    all_: Every = False,
    top: Top = 10,
    by: By = "unit",
    rank: o.RankOpt = DEFAULT_RANK,
    head: o.HeadName = DENSE_HEAD,
    run: o.RunDir = None,
    runs_dir: o.RunsDir = RUNS_DIR,
    trust_code: o.TrustCode = False,
    plot: o.Plot = True,
    force: o.Force = False,
    fmt: o.FormatOpt = Format.table,
) -> Weights:
    """`nv weights`'s options as a Weights or WeightsByTime request (its help is in app.COMMANDS)."""
    if by == "time":
        if all_:
            raise NvError("--by time shows every class; --all does not apply (give --class NAME to print one)")
        return WeightsByTime(RunSource(run, runs_dir, trust_code), class_, rank, head, Output(fmt, plot, force))
    if (class_ is not None) != all_:
        return Weights(RunSource(run, runs_dir, trust_code), class_, top, rank, head, Output(fmt, plot, force))
    raise NvError("give --class NAME (one class) or --all (every class)" if class_ is None
                  else "give --class NAME (one class) or --all (every class), not both")
