"""`nv compare`: two runs of one architecture side by side (case studies 2 and 3)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.atomic import save_figure, write_csv
from ..core.compare import compare as compare_runs
from ..core.compare import check_comparable, compare_figure, output_dir
from ..core.runs import load_run
from ..core.weights import DEFAULT_TOP
from .app import app
from .options import BatchOpt, DeviceOpt, FormatOpt
from .render import Format, emit, note, progress


@app.command()
def compare(
    run_a: Path = typer.Argument(..., help="Run A, e.g. trained on the original images."),
    run_b: Path = typer.Argument(..., help="Run B of the same architecture, e.g. trained on stylised images."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: RUN_A/compare_<B>/)."),
    top: int = typer.Option(DEFAULT_TOP, "--top", "-k", min=1, help="The k of top_share (units of largest |w|)."),
    device: str = DeviceOpt,
    batch_size: int = BatchOpt,
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="DataLoader worker processes."),
    fmt: Format = FormatOpt,
) -> None:
    """Compare accuracy and per-layer weight shares of two runs; write compare*.csv and compare.png."""
    a, b = load_run(run_a), load_run(run_b)
    check_comparable(a, b)  # before creating the output directory
    path = output_dir(out, a, b)
    with progress("compare") as bar:
        result = compare_runs(a, b, top=top, device=device, batch_size=batch_size, workers=workers, progress=bar)
    write_csv(path / "compare_accuracy.csv", result.accuracy)
    write_csv(path / "compare_layers.csv", result.layers)
    write_csv(path / "compare.csv", result.overall)
    save_figure(path / "compare.png", compare_figure(result))
    if fmt == Format.table:
        emit(result.accuracy, fmt, title="Validation accuracy")
    emit(result.overall, fmt, title=f"Share of all classes' weight per layer (a = {a.name}, b = {b.name})")
    note(f"wrote compare.csv, compare_layers.csv, compare_accuracy.csv, compare.png to {path}")
