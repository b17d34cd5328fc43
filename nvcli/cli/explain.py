"""`nv explain`: one decision as the sum of its units' contributions W[c,u]·z_u(x), plus the bias."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.atomic import save_figure, write_csv
from ..core.explain import explain_figure, explain_run
from ..core.runs import load_run
from ..core.weights import DEFAULT_TOP, extremes, file_stem
from .app import app
from .options import DeviceOpt, FormatOpt, RunOpt, RunsDirOpt
from .render import Format, emit, note


@app.command()
def explain(
    input_: Optional[Path] = typer.Option(None, "--input", "-i", help="An image file to explain."),
    index: Optional[int] = typer.Option(None, "--index", help="A sample of the validation split to explain."),
    class_: Optional[str] = typer.Option(None, "--class", "-c", help="Explain this class's logit (default: the "
                                         "predicted class)."),
    top: int = typer.Option(DEFAULT_TOP, "--top", "-k", min=1, help="Units listed per sign."),
    run: Optional[Path] = RunOpt,
    runs_dir: Path = RunsDirOpt,
    device: str = DeviceOpt,
    fmt: Format = FormatOpt,
) -> None:
    """Explain one prediction; write explain.csv, explain_layers.csv, explain_classes.csv, explain_<input>.png."""
    r = load_run(run, runs_dir)
    result = explain_run(r, index=index, path=input_, target=class_, device=device)
    stem = f"index{index}" if index is not None else file_stem(input_.stem)
    write_csv(r.dir / "explain.csv", result.units)
    write_csv(r.dir / "explain_layers.csv", result.layers)
    write_csv(r.dir / "explain_classes.csv", result.classes)
    save_figure(r.dir / f"explain_{stem}.png", explain_figure(result, top))
    s = result.summary
    units = extremes(result.units, "contribution", top)
    if fmt != Format.table:
        emit(units, fmt)
        return
    true = f"true class '{s['true']}', " if s["true"] is not None else ""
    note(f"{s['source']}: {true}predicted '{s['predicted']}' ({s['probability']:.1%}); explaining '{s['class']}': "
         f"logit {s['logit']:.4g} = contributions {s['contributions']:.4g} + bias {s['bias']:.4g}")
    emit(result.classes.sort_values("probability", ascending=False).head(5), fmt, title="Most probable classes")
    emit(units, fmt, title=f"Units pushing '{s['class']}' up and down most")
    emit(result.layers, fmt, title="Contribution per layer")
    note(f"wrote explain.csv, explain_layers.csv, explain_classes.csv, explain_{stem}.png to {r.dir}")
