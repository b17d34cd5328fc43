"""`nv ablate`: remove a class's top-ranked units (and random, bottom ones) and measure what the class loses."""
from __future__ import annotations

from typing import Optional

from .app import app
from .flags import HEAD, INFERENCE, OUTPUT, RANK, RESULTS, RUN, Flag, Flags, Group, command, split_list
from .render import Format, emit, note, progress
from .runs import open_run, save_result

ABLATE = Group("Ablation", (
    Flag("class_", Optional[str], ("--class", "-c"), "Ablate for these classes only (comma-separated; default: all)."),
    Flag("mode", str, ("--mode",), "What a removed unit's code becomes: mean (its validation mean) or zero.", "mean"),
    Flag("max_k", Optional[int], ("--max-k",), "The largest number of units removed (default: 10% of the units).",
         extra=(("min", 1),)),
    Flag("steps", int, ("--steps",), "About this many values of k, spaced geometrically from 1 to --max-k.", 12,
         extra=(("min", 1),)),
    Flag("draws", int, ("--draws",), "Random draws of k units (the control).", 10, extra=(("min", 1),)),
    Flag("seed", int, ("--seed",), "Seed of the random draws.", 0, extra=(("min", 0),)),
    Flag("fraction", float, ("--fraction",), "The summary's k as a share of the units (rounded up).", 0.01),
))


@command(app, "ablate", ABLATE, RANK, HEAD, RUN, INFERENCE, RESULTS, OUTPUT)
def ablate(flags: Flags) -> None:
    """Remove each class's top-k, bottom-k, random k units; write ablation.csv, ablation_summary.csv, ablation.png."""
    run = open_run(flags["run"], flags["runs_dir"])  # before torch loads: a wrong --run answers at once
    from ..analysis.ablation import AblationOptions
    from ..analysis.ablation import ablate as ablate_run

    options = AblationOptions(classes=split_list(flags["class_"]), rank=flags["rank"], mode=flags["mode"],
                              max_k=flags["max_k"], steps=flags["steps"], draws=flags["draws"], seed=flags["seed"],
                              fraction=flags["fraction"])
    with progress("ablate") as bar:
        result = ablate_run(run, options, head=flags["head"], device=flags["device"], batch_size=flags["batch_size"],
                            workers=flags["workers"], trust_code=flags["trust_code"], progress=bar)
    save_result(result, run.dir, flags)
    k = int(result.summary["k"].iloc[0])
    if flags["fmt"] == Format.table:
        note(f"{result.samples} validation samples, {result.units} units, accuracy {result.accuracy:.4f}; "
             f"k = {k} units ({k / result.units:.1%}); ranking: {options.rank}, removed code := "
             f"{'its validation mean' if options.mode == 'mean' else 'zero'}")
    emit(result.summary, flags["fmt"], title=f"Per class: its top {k} units removed vs {k} random units "
         f"({options.draws} draws)")
    note(f"wrote {', '.join(result.artifacts(flags['plot']))} to {run.dir}")
