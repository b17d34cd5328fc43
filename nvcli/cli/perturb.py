"""`nv perturb`: per-class accuracy with one colour channel zeroed (Table 2, Figure 7)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.atomic import save_figure, write_csv
from ..core.perturb import NONE, channels_for, examples_figure, perturb_figure, side_by_side
from ..core.perturb import perturb as perturb_run
from ..core.runs import load_run
from .app import app
from .options import BatchOpt, DeviceOpt, FormatOpt, RunsDirOpt, RunsOpt, runs_or_latest
from .render import Format, emit, progress


@app.command()
def perturb(
    channel: str = typer.Option("all", "--channel", help="Channel to set to zero: red, green, blue or all."),
    run: Optional[list[Path]] = RunsOpt,
    runs_dir: Path = RunsDirOpt,
    example: int = typer.Option(0, "--example", help="Validation sample shown in perturb_examples.png."),
    device: str = DeviceOpt,
    batch_size: int = BatchOpt,
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="DataLoader worker processes."),
    fmt: Format = FormatOpt,
) -> None:
    """Validation accuracy per class with colour channels zeroed; write perturb.csv/.png, perturb_examples.png."""
    channels = channels_for(channel)
    results = []
    for path in runs_or_latest(run, runs_dir):
        r = load_run(path, runs_dir)
        with progress(f"perturb {r.name}") as bar:
            result = perturb_run(r, channels, example=example, device=device, batch_size=batch_size,
                                 workers=workers, progress=bar)
        write_csv(r.dir / "perturb.csv", result.accuracy)
        save_figure(r.dir / "perturb.png", perturb_figure(result.accuracy, f"{r.name}: accuracy, one channel zeroed"))
        save_figure(r.dir / "perturb_examples.png", examples_figure(
            result.example, [NONE, *channels], f"validation sample {example} (class '{result.example_class}')"))
        results.append((r, result.accuracy))
    emit(side_by_side(results), fmt, title="Validation accuracy with one colour channel set to 0")
