"""`nv multiview`: one NeuroView backbone per camera view, one head; which views drive each class (Figure 5)."""
from __future__ import annotations

from ..errors import NvError
from .app import app
from .flags import DATA, EXECUTION, MODEL, NEW_RUN, OUTPUT, RECIPE, VIEWS, Flags, command
from .render import Format, emit, note
from .runs import save_result
from .train import execute, report

GROUPS = (MODEL, DATA.showing("data", "views"), VIEWS, RECIPE, EXECUTION, NEW_RUN, OUTPUT)


@command(app, "multiview", *GROUPS)
def multiview(flags: Flags) -> None:
    """Train a multi-view NeuroView network (or --baseline: MVCNN) and show which views drive each class."""
    from ..analysis.head import read_head
    from ..analysis.views import positive_views, view_weights
    from ..data.registry import dataset_kind, readable

    if not flags["resume"] and dataset_kind(flags["data"] or "views") != "views":
        views_data = [e.name for e in readable() if e.kind == "views"]
        raise NvError(f"--data {flags['data']} is not multi-view data; use one of {', '.join(views_data)}")
    run = execute(flags, GROUPS, "views")
    if run is None:
        return
    fmt = flags["fmt"]
    if fmt == Format.table or not run.is_neuroview:  # csv/json print one document: the views table
        report(run, fmt)
    else:
        note(f"run written to {run.dir}")
    if run.is_neuroview:
        result = view_weights(run.name, read_head(run, "multiview"), run.last_val_acc)
        save_result(result, run.dir, flags)  # a fresh run: nothing to replace, figures drawn
        note("views with positive mean weight, per class:")
        for name, views in positive_views(result.frame).items():
            note(f"  {name}: {', '.join(map(str, views)) or 'none'}")
        emit(result.frame, fmt, title="Mean head weight per class and view")
