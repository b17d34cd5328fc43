"""`nv data list|info|make|stylize`: the datasets nv knows, what defines their classes, writing them to disk, and a
stylised copy of an image tree."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from ..data.registry import StylizeOptions
from . import options as o
from .render import Format, emit, note
from .train import dataset_values

DatasetName = Annotated[str, typer.Argument(help="Dataset name (see nv data list).")]
BuiltinName = Annotated[str, typer.Argument(help="Built-in dataset to write (see nv data list, column 'make').")]
OutDir = Annotated[Path, typer.Option("--out", "-o", rich_help_panel="Output",
                                      help="Output directory (new or empty; with --force, one nv data make wrote).")]
MakeSeed = Annotated[int, o.number(int, "--seed", min=0, max=o.MAX_SEED, rich_help_panel="Output",
                                       help="Seed of the generated data.")]
Rewrite = Annotated[bool, typer.Option("--force", rich_help_panel="Output",
                                       help="Replace a dataset that nv data make wrote into --out (only its files).")]
STYLE = "Style transfer"
ContentDir = Annotated[Path, typer.Option("--data-dir", rich_help_panel=STYLE, help="The image tree to stylise (e.g. "
                                          "an ImageFolder: every image below it, folders kept).")]
StyleDir = Annotated[Path, typer.Option("--styles", rich_help_panel=STYLE, help="Style images; in class folders, a "
                                        "style's folder is its class (cue-conflict images for nv bias).")]
StyledOut = Annotated[Path, typer.Option("--out", "-o", rich_help_panel=STYLE, help="Output directory (new or empty; "
                                         "with --force, one nv data stylize wrote); never inside the inputs.")]
PerImage = Annotated[int, o.number(int, "--per-image", min=1, rich_help_panel=STYLE,
                                       help="Stylised copies of each image, each with its own style.")]
Beta = Annotated[float, typer.Option("--beta", rich_help_panel=STYLE, help="FDA's low-frequency window as a share of "
                                     "the image side, in (0, 0.5] (larger: more of the style).")]
StyleSeed = Annotated[int, o.number(int, "--seed", min=0, rich_help_panel=STYLE, help="Seed of the style drawn for "
                                        "each image.")]
ReplaceStyled = Annotated[bool, typer.Option("--force", rich_help_panel=STYLE, help="Replace what nv data stylize "
                                             "wrote into --out (only its files).")]


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


@dataclass(frozen=True)
class StylizeData:
    """A stylised copy of an image tree and the record of which style made which image."""

    data_dir: Path
    styles: Path
    out: Path
    options: StylizeOptions
    force: bool = False

    def execute(self) -> None:
        from ..data.stylize import LISTING, stylize_tree

        frame = stylize_tree(self.data_dir, self.styles, self.out, self.options, force=self.force)
        conflicts = int(((frame["texture"] != "") & (frame["texture"] != frame["shape"])).sum())
        note(f"wrote {len(frame)} stylised images and {LISTING} to {self.out}; {conflicts} are cue-conflict images "
             "(a style of another class: nv bias --conflicts reads them)")


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


def stylize(
    data_dir: ContentDir,
    styles: StyleDir,
    out: StyledOut,
    per_image: PerImage = StylizeOptions.per_image,
    beta: Beta = StylizeOptions.beta,
    seed: StyleSeed = StylizeOptions.seed,
    force: ReplaceStyled = False,
) -> StylizeData:
    """Write a stylised copy of an image tree (Fourier low-frequency amplitude swap, colour matching), stylize.csv."""
    return StylizeData(data_dir, styles, out, StylizeOptions(per_image, beta, seed), force)


app = typer.Typer(no_args_is_help=True)  # its help is in app.COMMANDS
for _name, _parse in (("list", list_), ("info", info), ("make", make), ("stylize", stylize)):
    app.command(_name)(_parse)
