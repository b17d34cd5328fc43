"""`nv data list|info|make`: the datasets nv knows, what defines their classes, and writing them to disk."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from . import options as o
from .render import Format, emit, note
from .train import dataset_values

DatasetName = Annotated[str, typer.Argument(help="Dataset name (see nv data list).")]
BuiltinName = Annotated[str, typer.Argument(help="Built-in dataset to write (see nv data list, column 'make').")]
OutDir = Annotated[Path, typer.Option("--out", "-o", rich_help_panel="Output",
                                      help="Output directory (new or empty; with --force, one nv data make wrote).")]
MakeSeed = Annotated[int, typer.Option("--seed", min=0, rich_help_panel="Output", help="Seed of the generated data.")]
Rewrite = Annotated[bool, typer.Option("--force", rich_help_panel="Output",
                                       help="Replace a dataset that nv data make wrote into --out (only its files).")]


@dataclass(frozen=True)
class ListData:
    """Every dataset nv knows."""

    fmt: Format = Format.table

    def execute(self) -> None:
        import pandas as pd

        from ..data.registry import DATASETS

        emit(pd.DataFrame([{"name": e.name, "kind": e.kind, "data": "yes" if e.load else "",
                            "make": "yes" if e.make else "", "description": e.description} for e in DATASETS]),
             self.fmt, title="Datasets")


@dataclass(frozen=True)
class DataInfo:
    """One dataset's settings, classes, sample counts and cues."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)  # dataset settings given (flags and -D)
    fmt: Format = Format.table

    def execute(self) -> None:
        import pandas as pd

        from ..data.registry import load_data, options_of

        bundle = load_data(self.name, self.values)
        train, val, fmt = bundle.counts("train"), bundle.counts("val"), self.fmt
        if fmt == Format.table:
            note(f"{bundle.name}: {bundle.kind} data, {len(bundle.classes)} classes, input {bundle.input_shape}, "
                 f"{sum(train)} train / {sum(val)} val samples")
            emit(pd.DataFrame(options_of(self.name), columns=["setting", "default"]).astype(str), fmt,
                 title=f"{self.name} settings (--data-dir, --classes, --image-size, -D KEY=VALUE)")
        emit(pd.DataFrame([{"label": i, "class": c, "train": train[i], "val": val[i], "cue": bundle.cues.get(c, "")}
                           for i, c in enumerate(bundle.classes)]), fmt, title=f"{bundle.name} classes")


@dataclass(frozen=True)
class MakeData:
    """A built-in dataset written to disk in the layout of the real one it stands in for."""

    name: str
    out: Path
    values: dict[str, Any] = field(default_factory=dict)  # dataset settings given (flags and -D), the seed
    force: bool = False

    def execute(self) -> None:
        from ..data.registry import make_dataset

        path = make_dataset(self.name, self.out, self.values, force=self.force)
        note(f"wrote {self.name} to {path}")


def list_(fmt: o.FormatOpt = Format.table) -> ListData:
    """List every dataset: whether `--data` reads it (and its kind), and whether `nv data make` writes it."""
    return ListData(fmt)


def info(
    name: DatasetName,
    data_dir: o.DataDir = None,
    classes: o.Classes = None,
    image_size: o.ImageSize = None,
    data_option: o.DataOption = None,
    fmt: o.FormatOpt = Format.table,
) -> DataInfo:
    """Show a dataset's settings, classes, sample counts and, for built-in data, the cue behind each class."""
    flagged = {"data_dir": data_dir, "classes": classes, "image_size": image_size}
    return DataInfo(name, dataset_values(flagged, data_option), fmt)


def make(
    name: BuiltinName,
    out: OutDir,
    seed: MakeSeed = 0,
    force: Rewrite = False,
    image_size: o.ImageSize = None,
    data_option: o.DataOption = None,
) -> MakeData:
    """Write a built-in dataset to disk in the layout of the real dataset it stands in for."""
    return MakeData(name, out, {**dataset_values({"image_size": image_size}, data_option), "seed": seed}, force)


app = typer.Typer(no_args_is_help=True)  # its help is in app.COMMANDS
for _name, _parse in (("list", list_), ("info", info), ("make", make)):
    app.command(_name)(_parse)
