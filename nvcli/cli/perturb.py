"""`nv perturb`: per-class accuracy with one colour channel zeroed (Table 2, Figure 7)."""
from __future__ import annotations

from .app import app
from .flags import HEAD, INFERENCE, OUTPUT, RESULTS, RUNS, Flag, Flags, Group, command
from .render import emit, progress
from .runs import open_runs, save_result

PERTURB = Group("Perturbation", (
    Flag("channel", str, ("--channel",), "Channel to set to zero: red, green, blue or all.", "all"),
    Flag("example", int, ("--example",), "Validation sample shown in perturb_examples.png.", 0, extra=(("min", 0),)),
))


@command(app, "perturb", PERTURB, HEAD, RUNS, INFERENCE, RESULTS, OUTPUT)
def perturb(flags: Flags) -> None:
    """Validation accuracy per class with colour channels zeroed; write perturb.csv/.png, perturb_examples.png."""
    runs = open_runs(flags["run"], flags["runs_dir"])  # before torch loads: a wrong --run answers at once
    from ..analysis.perturb import channels_for, side_by_side
    from ..analysis.perturb import perturb as perturb_run

    channels = channels_for(flags["channel"])
    results = []
    for run in runs:
        with progress(f"perturb {run.name}") as bar:
            result = perturb_run(run, channels, head=flags["head"], example=flags["example"], device=flags["device"],
                                 batch_size=flags["batch_size"], workers=flags["workers"],
                                 trust_code=flags["trust_code"], progress=bar)
        save_result(result, run.dir, flags)
        results.append((run, result.accuracy))
    emit(side_by_side(results), flags["fmt"], title="Validation accuracy with one colour channel set to 0")
