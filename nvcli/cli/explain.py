"""`nv explain`: one decision as the sum of its units' contributions W[c,u]·z_u(x), plus the bias."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .app import app
from .flags import HEAD, OUTPUT, RANK, RESULTS, RUN, THREADS, Flag, Flags, Group, command
from .render import Format, emit, note
from .runs import open_run, save_result

EXPLAIN = Group("Input", (
    Flag("input_", Optional[Path], ("--input", "-i"), "An image file to explain."),
    Flag("index", Optional[int], ("--index",), "A sample of the validation split to explain.", extra=(("min", 0),)),
    Flag("class_", Optional[str], ("--class", "-c"), "Explain this class's logit (default: the predicted class)."),
    Flag("top", int, ("--top", "-k"), "Units listed per sign.", 10, extra=(("min", 1),)),
    Flag("device", str, ("--device",), "auto, cpu, cuda or mps.", "cpu"),
    THREADS,
))


@command(app, "explain", EXPLAIN, RANK, HEAD, RUN, RESULTS, OUTPUT)
def explain(flags: Flags) -> None:
    """Explain one prediction; write explain_<input>.csv, _layers.csv, _classes.csv and explain_<input>.png."""
    run = open_run(flags["run"], flags["runs_dir"])  # before torch loads: a wrong --run answers at once
    from ..analysis.explain import explain_run
    from ..analysis.head import extremes

    result = explain_run(run, index=flags["index"], path=flags["input_"], target=flags["class_"], head=flags["head"],
                         top=flags["top"], rank=flags["rank"], device=flags["device"], trust_code=flags["trust_code"])
    save_result(result, run.dir, flags)
    s, fmt, top = result.summary, flags["fmt"], flags["top"]
    units = extremes(result.units, "contribution", top)
    if fmt != Format.table:
        emit(units, fmt)
        return
    true = f"true class '{s['true']}', " if s["true"] is not None else ""
    note(f"{s['source']}: {true}predicted '{s['predicted']}' ({s['probability']:.1%}); explaining '{s['class']}': "
         f"logit {s['logit']:.4g} = contributions {s['contributions']:.4g} + bias {s['bias']:.4g}"
         + (" (contributions relative to the mean codes, their part in the bias)"
            if s["reference"] == "validation mean" else ""))
    emit(result.classes.sort_values("probability", ascending=False).head(5), fmt, title="Most probable classes")
    emit(units, fmt, title=f"Units pushing '{s['class']}' up and down most")
    emit(result.layers, fmt, title="Contribution per layer")
    note(f"wrote {', '.join(result.artifacts(flags['plot']))} to {run.dir}")
