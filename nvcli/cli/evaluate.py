"""`nv eval`: accuracy, per-class accuracy and confusion matrix; several runs give a Table-1 comparison."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import typer

from ..core.atomic import save_figure, write_csv
from ..core.evaluate import confusion_figure, evaluate
from ..core.runs import load_run
from .app import app
from .options import BatchOpt, DeviceOpt, FormatOpt, RunsDirOpt, RunsOpt, runs_or_latest
from .render import Format, emit, note, progress


@app.command("eval")
def eval_(
    run: Optional[list[Path]] = RunsOpt,
    runs_dir: Path = RunsDirOpt,
    device: str = DeviceOpt,
    batch_size: int = BatchOpt,
    workers: int = typer.Option(0, "--workers", "-j", min=0),
    min_acc: Optional[float] = typer.Option(None, "--min-acc", min=0.0, max=1.0,
                                            help="Exit with status 1 if any run's accuracy is below this."),
    per_class: bool = typer.Option(False, "--per-class", help="Print per-class accuracy (with csv/json: only that)."),
    fmt: Format = FormatOpt,
) -> None:
    """Evaluate runs on their validation split; write eval.csv, per_class.csv, confusion.csv/.png into each."""
    rows, frames = [], []
    for path in runs_or_latest(run, runs_dir):
        r = load_run(path, runs_dir)
        with progress(f"eval {r.name}") as bar:
            result = evaluate(r, device=device, batch_size=batch_size, workers=workers, progress=bar)
        write_csv(r.dir / "eval.csv", pd.DataFrame([result.summary]))
        write_csv(r.dir / "per_class.csv", result.per_class)
        write_csv(r.dir / "confusion.csv", result.confusion)
        save_figure(r.dir / "confusion.png", confusion_figure(result.confusion, f"{r.name}: confusion"))
        rows.append(result.summary)
        if per_class:
            frames.append(result.per_class.assign(run=r.name)[["run", *result.per_class.columns]])
    table = pd.DataFrame(rows)
    if per_class:  # csv/json print one document: the per-class rows (the summary is in eval.csv)
        emit(pd.concat(frames, ignore_index=True), fmt, title="Per-class validation accuracy")
    if not per_class or fmt == Format.table:
        emit(table, fmt, title="Validation accuracy")
    if min_acc is not None:
        failing = table[table["accuracy"] < min_acc]
        if len(failing):
            note(f"accuracy below --min-acc {min_acc}: " +
                 ", ".join(f"{r.run} ({r.accuracy:.4f})" for r in failing.itertuples()))
            raise typer.Exit(1)
