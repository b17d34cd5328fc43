"""`nv dissect-map`: Network Dissection of every unit, then the concepts each class relies on (Figure 4)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.atomic import save_figure, write_csv
from ..core.dissect import concept_figure
from ..core.errors import choice_error
from ..core.probe import dissect_run
from ..core.runs import load_run
from ..core.weights import class_stems
from .app import app
from .options import DeviceOpt, FormatOpt, RunOpt, RunsDirOpt, split_list
from .render import Format, emit, note, progress


@app.command("dissect-map")
def dissect_map(
    run: Optional[Path] = RunOpt,
    runs_dir: Path = RunsDirOpt,
    probe: Optional[Path] = typer.Option(None, "--probe", help="Broden-layout probe set (default: built-in shapes)."),
    probe_count: int = typer.Option(300, "--probe-count", min=1, help="Images in the built-in probe set."),
    quantile: float = typer.Option(0.005, "--quantile", help="Top quantile of activations that counts as active."),
    iou_threshold: float = typer.Option(0.04, "--iou-threshold", help="IoU at which a unit is interpretable."),
    categories: Optional[str] = typer.Option(None, "--categories", help="Comma-separated categories to score."),
    class_: Optional[str] = typer.Option(None, "--class", help="Draw the figure of this class only."),
    top: int = typer.Option(5, "--top", min=1, help="Concepts per sign in the table and figure."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=16, help="Resize probe images (default: the run's)."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1),
    workers: int = typer.Option(0, "--workers", "-j", min=0),
    device: str = DeviceOpt,
    fmt: Format = FormatOpt,
) -> None:
    """Label every unit with a concept and map each class to the concepts its weights favour."""
    r = load_run(run, runs_dir)
    if class_ is not None and class_ not in r.classes:
        raise choice_error("class", class_, r.classes)
    with progress("dissecting") as bar:
        result = dissect_run(r, probe, quantile=quantile, iou_threshold=iou_threshold,
                             categories=split_list(categories), image_size=image_size, probe_count=probe_count,
                             batch_size=batch_size, workers=workers, device=device,
                             progress=(lambda done, total: bar("probe", done, total)) if bar else None)
    write_csv(r.dir / "concepts_units.csv", result.units)
    write_csv(r.dir / "concepts_classes.csv", result.classes)
    stems = class_stems(r.classes)
    for name in [class_] if class_ else r.classes:
        if (result.classes["class"] == name).any():
            save_figure(r.dir / f"concepts_{stems[name]}.png", concept_figure(result.classes, name, top))
    interpretable = int(result.units["interpretable"].sum())
    note(f"{interpretable} of {len(result.units)} units interpretable (IoU >= {iou_threshold}) on {result.probe}")
    shown = result.classes[result.classes["rank"] <= top]
    if class_:
        shown = shown[shown["class"] == class_]
    emit(shown.reset_index(drop=True), fmt, title=f"Top {top} positive and negative concepts per class")
