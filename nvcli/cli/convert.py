"""`nv convert`: build the NeuroView variant of a standard network and write an untrained run."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .app import app
from .flags import MODEL, OUTPUT, Flag, Flags, Group, command, model_values, split_list
from .render import emit, note

CONVERT = Group("Network", (
    Flag("num_classes", Optional[int], ("--num-classes", "-n"), "Classes of the new head."),
    Flag("classes", Optional[str], ("--classes",), "Comma-separated class names (sets the count)."),
    Flag("image_size", int, ("--image-size",), "Input side in pixels.", 64, extra=(("min", 16),)),
    Flag("in_channels", int, ("--in-channels",), "Input channels (1 for spectrograms).", 3, extra=(("min", 1),)),
))
RUN_OUT = Group("Run directory", (
    Flag("name", Optional[str], ("--name",), "Run directory name (default: a timestamp)."),
    Flag("runs_dir", Path, ("--runs-dir",), "Where run directories live.", Path("runs")),
    Flag("force", bool, ("--force",), "Replace an existing run of that name.", False),
))


@command(app, "convert", MODEL.only("arch", "code", "reduce", "weights", "freeze_backbone"), CONVERT, RUN_OUT, OUTPUT)
def convert(flags: Flags) -> None:
    """Convert a standard network to NeuroView: print its nonlinear layers and unit counts."""
    import pandas as pd

    from ..models.spec import ModelChoice
    from ..runs.run import check_name

    choice = ModelChoice(**model_values(flags))  # flags of MODEL that convert does not show are never given
    name = check_name(flags["name"]) if flags["name"] else None
    from ..training.recipes import convert as convert_run  # torch, once the flags are checked

    run_dir, network = convert_run(choice, num_classes=flags["num_classes"], classes=split_list(flags["classes"]),
                                   image_size=flags["image_size"], in_channels=flags["in_channels"], name=name,
                                   runs_dir=flags["runs_dir"], force=flags["force"])
    layers = pd.DataFrame([{"layer": layer.index, "node": layer.node, "label": layer.label, "units": layer.channels}
                           for layer in network.layers])
    total = pd.DataFrame([{"layer": "", "node": "total", "label": "", "units": int(layers["units"].sum())}])
    emit(pd.concat([layers, total], ignore_index=True), flags["fmt"], title=f"NeuroView {choice.arch}: nonlinear layers")
    note(f"run written to {run_dir}")
