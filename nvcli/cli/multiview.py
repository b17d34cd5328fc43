"""`nv multiview`: one NeuroView backbone per camera view, one head; which views drive each class (Figure 5)."""
from __future__ import annotations

import inspect
import typing
from typing import Any

import typer

from ..core.atomic import save_figure, write_csv
from ..core.data import dataset_kind, datasets
from ..core.errors import NvError
from ..core.multiview import plot_views, positive_views, views_frame
from ..core.runs import Run
from . import train as train_cli
from .app import app
from .render import Format, emit, note

# `nv multiview` takes every option of `nv train` (one definition, so they cannot drift apart), with
# multi-view data as the default, plus the options below.
_OVERRIDES = {
    "data": typer.Option("views", "--data", "-d", help="views (built-in solids) or modelnet40 (--data-dir)."),
}
_EXTRA = {
    "views": (int, typer.Option(12, "--views", min=1, help="Camera views per object.")),
    "shared_backbone": (bool, typer.Option(False, "--shared-backbone", help="One backbone shared by all views.")),
}


def write_views(run: Run, fmt: Format) -> None:
    """Write views.csv / views.png for a multi-view NeuroView run and print the positive views per class."""
    frame = views_frame(run.model(), run.classes)
    write_csv(run.dir / "views.csv", frame)
    save_figure(run.dir / "views.png", plot_views(frame))
    positive = positive_views(frame)
    note("views with positive mean weight, per class:")
    for name, views in positive.items():
        note(f"  {name}: {', '.join(map(str, views)) or 'none'}")
    emit(frame, fmt, title="Mean head weight per class and view")


def multiview(**options: Any) -> None:
    """Train a multi-view NeuroView network (or --baseline: MVCNN) and show which views drive each class."""
    fmt = options.pop("fmt")
    if not options["resume"] and dataset_kind(options["data"]) != "views":
        views_data = [name for name, entry in datasets().items() if entry.kind == "views"]
        raise NvError(f"--data {options['data']} is not multi-view data; use one of {', '.join(views_data)}")
    run = train_cli.execute(**options)
    if run is None:
        return
    if fmt == Format.table or not run.is_neuroview:  # csv/json print one document: the views table
        train_cli.report(run, fmt)
    else:
        note(f"run written to {run.dir}")
    if run.is_neuroview:
        write_views(run, fmt)


def _signature() -> inspect.Signature:
    hints = typing.get_type_hints(train_cli.train)
    params = [p.replace(annotation=hints[name], default=_OVERRIDES.get(name, p.default))
              for name, p in inspect.signature(train_cli.train).parameters.items()]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
               for name, (kind, default) in _EXTRA.items()]
    return inspect.Signature(params, return_annotation=None)


multiview.__signature__ = _signature()  # type: ignore[attr-defined]
app.command("multiview")(multiview)
