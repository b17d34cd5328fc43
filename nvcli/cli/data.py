"""`nv data list|info|make`: the datasets nv knows, what defines their classes, and writing them to disk."""
from __future__ import annotations

from typing import Optional

import pandas as pd
import typer

from ..core.data import datasets, load_data, make_dataset, makers
from .app import app
from .options import DataOptionOpt, FormatOpt, data_options
from .render import Format, emit, note

data_app = typer.Typer(help="List, describe and write datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def list_(fmt: Format = FormatOpt) -> None:
    """List every dataset: whether `--data` reads it (and its kind), and whether `nv data make` writes it."""
    readable, writable = datasets(), makers()
    frame = pd.DataFrame([{
        "name": name, "kind": readable[name].kind if name in readable else "probe",
        "data": "yes" if name in readable else "", "make": "yes" if name in writable else "",
        "description": (readable.get(name) or writable[name]).description,
    } for name in sorted({*readable, *writable})])
    emit(frame, fmt, title="Datasets")


@data_app.command()
def info(
    name: str = typer.Argument(..., help="Dataset name (see nv data list)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    image_size: Optional[int] = typer.Option(None, "--image-size"),
    data_option: Optional[list[str]] = DataOptionOpt,
    fmt: Format = FormatOpt,
) -> None:
    """Show a dataset's classes, sample counts and, for built-in data, the cue that defines each class."""
    bundle = load_data(name, data_dir=data_dir, image_size=image_size, **data_options(data_option))
    train_counts = _counts(bundle.train, len(bundle.classes))
    val_counts = _counts(bundle.val, len(bundle.classes))
    frame = pd.DataFrame([{"label": i, "class": c, "train": train_counts[i], "val": val_counts[i],
                           "cue": bundle.cues.get(c, "")} for i, c in enumerate(bundle.classes)])
    if fmt == Format.table:
        note(f"{bundle.name}: {bundle.kind} data, {len(bundle.classes)} classes, "
             f"input {list(bundle.train[0][0].shape)}, {len(bundle.train)} train / {len(bundle.val)} val samples")
    emit(frame, fmt, title=f"{bundle.name} classes")


def _counts(dataset: object, k: int) -> list[int]:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [y for _, y in getattr(dataset, "samples", [])] or [dataset[i][1] for i in range(len(dataset))]
    counts = [0] * k
    for y in labels:
        counts[int(y)] += 1
    return counts


@data_app.command()
def make(
    name: str = typer.Argument(..., help="Built-in dataset to write (see nv data list, column 'make')."),
    out: str = typer.Option(..., "--out", "-o", help="Output directory (must be empty unless --force)."),
    seed: int = typer.Option(0, "--seed"),
    image_size: Optional[int] = typer.Option(None, "--image-size"),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty directory."),
    data_option: Optional[list[str]] = DataOptionOpt,
) -> None:
    """Write a built-in dataset to disk in the layout of the real dataset it stands in for."""
    path = make_dataset(name, out, seed=seed, image_size=image_size, force=force or None, **data_options(data_option))
    note(f"wrote {name} to {path or out}")
