"""`nv convert`: build the NeuroView variant of a standard network and write an untrained run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..models.spec import ModelChoice
from ..runs.files import RUNS_DIR
from . import options as o
from .render import Format, emit, note

PANEL = "Network"
NumClasses = Annotated[Optional[int], o.number(int, "--num-classes", "-n", max=o.MAX_CLASSES, rich_help_panel=PANEL,
                                                   help="Classes of the new head.")]
ClassNames = Annotated[Optional[str], typer.Option("--classes", rich_help_panel=PANEL,
                                                   help="Comma-separated class names (sets the count).")]
InputSize = Annotated[int, o.number(int, "--image-size", min=16, max=o.MAX_IMAGE_SIZE, rich_help_panel=PANEL,
                                        help="Input side in pixels.")]
InChannels = Annotated[int, o.number(int, "--in-channels", min=1, max=o.MAX_CHANNELS, rich_help_panel=PANEL,
                                         help="Input channels (1 for spectrograms).")]


@dataclass(frozen=True)
class Convert:
    """A network's NeuroView variant, written as an untrained run."""

    choice: ModelChoice
    num_classes: int | None = None
    classes: tuple[str, ...] | None = None
    image_size: int = 64
    in_channels: int = 3
    name: str | None = None
    runs_dir: Path = RUNS_DIR
    force: bool = False
    fmt: Format = Format.table

    def execute(self) -> None:
        import pandas as pd

        from ..training.recipes import convert  # torch, once the options are checked

        run_dir, network = convert(self.choice, num_classes=self.num_classes,
                                   classes=list(self.classes) if self.classes else None, image_size=self.image_size,
                                   in_channels=self.in_channels, name=self.name, runs_dir=self.runs_dir,
                                   force=self.force)
        layers = pd.DataFrame([{"layer": layer.index, "node": layer.node, "label": layer.label,
                                "units": layer.channels} for layer in network.layers])
        total = pd.DataFrame([{"layer": "", "node": "total", "label": "", "units": int(layers["units"].sum())}])
        emit(pd.concat([layers, total], ignore_index=True), self.fmt,
             title=f"NeuroView {self.choice.arch}: nonlinear layers")
        note(f"run written to {run_dir}")


def convert(
    arch: o.Arch = ModelChoice.arch,
    code: o.CodeOpt = ModelChoice.code,
    reduce: o.ReduceOpt = ModelChoice.reduce,
    weights: o.WeightsFile = None,
    freeze_backbone: o.FreezeBackbone = False,
    num_classes: NumClasses = None,
    classes: ClassNames = None,
    image_size: InputSize = 64,
    in_channels: InChannels = 3,
    name: o.Name = None,
    runs_dir: o.NewRunsDir = RUNS_DIR,
    force: o.Replace = False,
    fmt: o.FormatOpt = Format.table,
) -> Convert:
    """`nv convert`'s options as a Convert request (its help is in app.COMMANDS)."""
    from ..runs.run import check_name

    choice = ModelChoice(arch=arch, code=code, reduce=reduce, weights=str(weights) if weights else None,
                         freeze_backbone=freeze_backbone)
    return Convert(choice, num_classes, o.split_list(classes), image_size, in_channels,
                   check_name(name) if name else None, runs_dir, force, fmt)
