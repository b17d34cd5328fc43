"""`nv convert`: build the NeuroView variant of a standard network and write an untrained run."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import typer

from ..core.build import ModelSpec
from ..core.errors import NvError
from ..core.imagefolder import IMAGENET_MEAN, IMAGENET_STD
from ..core.train import convert as convert_run
from .app import app
from .options import FormatOpt, RunsDirOpt, split_list
from .render import Format, emit, note


@app.command()
def convert(
    arch: str = typer.Option(..., "--arch", "-a", help="Architecture name or package.module:function."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", "-n", help="Classes of the new head."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated class names (sets the count)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="A local state_dict of the standard network."),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone", help="Later training fits only the head."),
    code: str = typer.Option("soft", "--code", help="soft, hard or raw."),
    reduce: str = typer.Option("max", "--reduce", help="max or mean."),
    image_size: int = typer.Option(64, "--image-size", min=16),
    in_channels: int = typer.Option(3, "--in-channels", min=1, help="Input channels (1 for spectrograms)."),
    name: Optional[str] = typer.Option(None, "--name"),
    runs_dir: Path = RunsDirOpt,
    force: bool = typer.Option(False, "--force"),
    fmt: Format = FormatOpt,
) -> None:
    """Convert a standard network to NeuroView: print its nonlinear layers and unit counts."""
    names = split_list(classes)
    if names and num_classes is not None and num_classes != len(names):
        raise NvError(f"--num-classes {num_classes} disagrees with the {len(names)} names given by --classes")
    count = len(names) if names else num_classes
    if count is None:
        raise NvError("nv convert needs the number of classes: --num-classes N (N >= 2) or --classes a,b,...")
    if count < 2:
        raise NvError(f"--num-classes {count} is not valid; give an integer >= 2 (or --classes a,b,...)")
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if in_channels == 3 else ([0.0] * in_channels, [1.0] * in_channels)
    spec = ModelSpec(arch=arch, num_classes=count, input_shape=[in_channels, image_size, image_size], mean=mean,
                     std=std, code=code, reduce=reduce, freeze_backbone=freeze_backbone,
                     weights=str(weights) if weights else None)
    run_dir, model = convert_run(spec, classes=names, name=name, runs_dir=runs_dir, force=force)
    layers = pd.DataFrame([{"layer": l.index, "node": l.node, "units": l.channels} for l in model.layers])
    total = pd.DataFrame([{"layer": "", "node": "total", "units": int(layers["units"].sum())}])
    emit(pd.concat([layers, total], ignore_index=True), fmt, title=f"NeuroView {arch}: nonlinear layers")
    note(f"run written to {run_dir}")
