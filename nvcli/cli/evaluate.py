"""`nv eval`: accuracy, per-class accuracy and confusion matrix; several runs give a Table-1 comparison."""
from __future__ import annotations

from typing import Optional

import typer

from .app import app
from .flags import INFERENCE, OUTPUT, RESULTS, RUNS, Flag, Flags, Group, command
from .render import Format, emit, note, progress
from .runs import open_runs, save_result

EVAL = Group("Evaluation", (
    Flag("heads", Optional[list[str]], ("--head",), "Head(s) to evaluate, repeatable: dense (default) and/or "
         "sparse heads by name (nv sparsify); several give a side-by-side table."),
    Flag("min_acc", Optional[float], ("--min-acc",), "Exit with status 1 if any accuracy is below this.",
         extra=(("min", 0.0), ("max", 1.0))),
    Flag("per_class", bool, ("--per-class",), "Print per-class accuracy (with csv/json: only that).", False),
))


@command(app, "eval", RUNS, EVAL, INFERENCE, RESULTS, OUTPUT)
def eval_(flags: Flags) -> None:
    """Evaluate runs on their validation split; write eval.csv, per_class.csv, confusion.csv/.png into each."""
    import pandas as pd

    from ..runs.files import DENSE_HEAD

    runs = open_runs(flags["run"], flags["runs_dir"])  # before torch loads: a wrong --run answers at once
    from ..analysis.evaluate import evaluate

    fmt = flags["fmt"]
    rows, frames = [], []
    for run in runs:
        for head in flags["heads"] or [DENSE_HEAD]:
            with progress(f"eval {run.name}") as bar:
                result = evaluate(run, head=head, device=flags["device"], batch_size=flags["batch_size"],
                                  workers=flags["workers"], trust_code=flags["trust_code"], progress=bar)
            save_result(result, run.dir, flags)
            rows.append(result.summary)
            if flags["per_class"]:
                frames.append(result.per_class.assign(run=run.name, head=head)[["run", "head", *result.per_class.columns]])
    table = pd.DataFrame(rows)
    if flags["per_class"]:  # csv/json print one document: the per-class rows (the summary is in eval.csv)
        emit(pd.concat(frames, ignore_index=True), fmt, title="Per-class validation accuracy")
    if not flags["per_class"] or fmt == Format.table:
        emit(table, fmt, title="Validation accuracy")
    if flags["min_acc"] is not None:
        failing = table[table["accuracy"] < flags["min_acc"]]
        if len(failing):
            note(f"accuracy below --min-acc {flags['min_acc']}: " +
                 ", ".join(f"{r.run} {r.head} ({r.accuracy:.4f})" for r in failing.itertuples()))
            raise typer.Exit(1)
