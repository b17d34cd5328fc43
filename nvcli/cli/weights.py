"""`nv weights`: a class's head weights along the unit axis (Figure 3), per-layer summaries, class similarity."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.atomic import save_figure, write_csv
from ..core.errors import NvError
from ..core.runs import load_run
from ..core.weights import (DEFAULT_TOP, class_overview, class_similarity, class_stems, class_weights, extremes,
                            layer_summary, read_head, similarity_figure, weights_figure, weights_grid)
from .app import app
from .options import FormatOpt, RunOpt, RunsDirOpt
from .render import Format, emit, note


@app.command()
def weights(
    class_: Optional[str] = typer.Option(None, "--class", "-c", help="The class whose weights to show."),
    all_: bool = typer.Option(False, "--all", help="Every class: weights_<class>.csv for each, and weights_all.png."),
    plot: bool = typer.Option(False, "--plot", help="Also write weights_<class>.png (for every class with --all)."),
    top: int = typer.Option(DEFAULT_TOP, "--top", "-k", min=1,
                            help="Units listed per sign, and the k of top_share in weights_layers.csv."),
    run: Optional[Path] = RunOpt,
    runs_dir: Path = RunsDirOpt,
    fmt: Format = FormatOpt,
) -> None:
    """Show a class's head weights by unit and layer; write weights CSVs, class_similarity.csv/.png."""
    if class_ is None and not all_:
        raise NvError("give --class NAME (one class) or --all (every class)")
    r = load_run(run, runs_dir)
    head = read_head(r, "weights")
    if class_ is not None:
        head.class_index(class_)
    stems = class_stems(head.classes)
    frames = {name: class_weights(head, name) for name in (head.classes if all_ else [class_])}
    for name, frame in frames.items():
        write_csv(r.dir / f"weights_{stems[name]}.csv", frame)
        if plot:
            save_figure(r.dir / f"weights_{stems[name]}.png", weights_figure(frame, f"{r.name}: weights of '{name}'"))
    layers = layer_summary(head, top)
    write_csv(r.dir / "weights_layers.csv", layers)
    similarity = class_similarity(head)
    write_csv(r.dir / "class_similarity.csv", similarity)
    save_figure(r.dir / "class_similarity.png", similarity_figure(similarity, f"{r.name}: class similarity"))
    if all_:
        save_figure(r.dir / "weights_all.png", weights_grid(head, f"{r.name}: head weights per class"))
    note(f"wrote weights CSVs{' and figures' if plot or all_ else ''} to {r.dir}")
    if class_ is None:
        emit(class_overview(head, similarity), fmt, title=f"{r.name}: classes")
        return
    emit(extremes(frames[class_], "weight", top), fmt,
         title=f"{r.name}: '{class_}' top {top} positive and negative units")
    if fmt == Format.table:
        emit(layers[layers["class"] == class_].drop(columns="class"), fmt, title=f"'{class_}' per layer")
