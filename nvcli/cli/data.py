"""`nv data list|info|make`: the datasets nv knows, what defines their classes, and writing them to disk."""
from __future__ import annotations

from pathlib import Path

import typer

from .app import app
from .flags import DATA, OUTPUT, Flag, Flags, Group, command, data_values
from .render import Format, emit, note

data_app = typer.Typer(help="List, describe and write datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
NAME = (("name", str, typer.Argument(..., help="Dataset name (see nv data list).")),)
MAKE = Group("Output", (
    Flag("out", Path, ("--out", "-o"), "Output directory (new or empty; with --force, one nv data make wrote).", ...),
    Flag("seed", int, ("--seed",), "Seed of the generated data.", 0),
    Flag("force", bool, ("--force",), "Replace a dataset that nv data make wrote into --out (only its files).",
         False),
))


@command(data_app, "list", OUTPUT)
def list_(flags: Flags) -> None:
    """List every dataset: whether `--data` reads it (and its kind), and whether `nv data make` writes it."""
    import pandas as pd

    from ..data.registry import DATASETS

    emit(pd.DataFrame([{"name": e.name, "kind": e.kind, "data": "yes" if e.load else "",
                        "make": "yes" if e.make else "", "description": e.description} for e in DATASETS]),
         flags["fmt"], title="Datasets")


@command(data_app, "info", DATA.only("data_dir", "classes", "image_size", "data_option"), OUTPUT, arguments=NAME)
def info(flags: Flags) -> None:
    """Show a dataset's settings, classes, sample counts and, for built-in data, the cue behind each class."""
    import pandas as pd

    from ..data.registry import load_data, options_of

    name, fmt = flags["name"], flags["fmt"]
    bundle = load_data(name, data_values(flags, DATA))
    train, val = bundle.counts("train"), bundle.counts("val")
    if fmt == Format.table:
        note(f"{bundle.name}: {bundle.kind} data, {len(bundle.classes)} classes, input {bundle.input_shape}, "
             f"{sum(train)} train / {sum(val)} val samples")
        emit(pd.DataFrame(options_of(name), columns=["setting", "default"]).astype(str), fmt,
             title=f"{name} settings (--data-dir, --classes, --image-size, -D KEY=VALUE)")
    emit(pd.DataFrame([{"label": i, "class": c, "train": train[i], "val": val[i], "cue": bundle.cues.get(c, "")}
                       for i, c in enumerate(bundle.classes)]), fmt, title=f"{bundle.name} classes")


@command(data_app, "make", MAKE, DATA.only("image_size", "data_option"), arguments=(
    ("name", str, typer.Argument(..., help="Built-in dataset to write (see nv data list, column 'make').")),))
def make(flags: Flags) -> None:
    """Write a built-in dataset to disk in the layout of the real dataset it stands in for."""
    from ..data.registry import make_dataset

    path = make_dataset(flags["name"], flags["out"], {**data_values(flags, DATA), "seed": flags["seed"]},
                        force=flags["force"])
    note(f"wrote {flags['name']} to {path}")
