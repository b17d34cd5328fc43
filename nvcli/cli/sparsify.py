"""`nv sparsify`: a sparse head (a few units per class) fitted on a run's codes along an elastic-net path."""
from __future__ import annotations

from typing import Optional

from .app import app
from .flags import INFERENCE, OUTPUT, RESULTS, RUN, Flag, Flags, Group, command
from .render import Format, emit, note, progress
from .runs import open_run, save_result

DROP_WARN = 0.05  # validation accuracy a sparse head may lose before the terminal says so

SPARSIFY = Group("Sparse head", (
    Flag("name", Optional[str], ("--name",), "Store the head as heads/NAME.pt (select it with --head NAME).",
         shown="sparse<K>, or sparse-drop<X>"),
    Flag("units_per_class", Optional[int], ("--units-per-class",), "Choose the densest head on the path with at "
         "most K units per class on average.", shown="10"),
    Flag("max_drop", Optional[float], ("--max-drop",), "Instead: the sparsest head whose validation accuracy is at "
         "most X (a fraction, 0.03 = 3 points) below the dense head's."),
    Flag("alpha", float, ("--alpha",), "L1 share of the elastic-net penalty (1 = lasso).", 0.99),
    Flag("steps", int, ("--steps",), "Lambdas along the path, log-spaced from lambda_max down.", 50),
    Flag("ratio", float, ("--lambda-ratio",), "The last lambda as a fraction of lambda_max.", 0.01),
    Flag("patience", int, ("--patience",), "Stop after this many steps without a better validation accuracy "
         "(0: fit every step).", 10, extra=(("min", 0),)),
    Flag("finetune", bool, ("--finetune",), "Refit the kept units without penalty (debias); report both.", False),
))


@command(app, "sparsify", SPARSIFY, RUN, INFERENCE, RESULTS, OUTPUT)
def sparsify(flags: Flags) -> None:
    """Fit a sparse head over every unit's code; write sparse_path.csv/.png and heads/NAME.pt/.json."""
    run = open_run(flags["run"], flags["runs_dir"])  # before torch loads: a wrong --run answers at once
    from ..analysis.sparse.head import Selection, check_head_name, default_name
    from ..analysis.sparse.path import PathSettings
    from ..analysis.sparse.sparsify import fit_path, sparse_head

    settings = PathSettings(flags["alpha"], flags["steps"], flags["ratio"], flags["patience"] or None)
    k, drop = flags["units_per_class"], flags["max_drop"]
    selection = Selection(k, drop) if k is not None or drop is not None else Selection()
    name = check_head_name(flags["name"] or default_name(selection))
    with progress(f"sparsify {run.name}") as bar:
        fitted = fit_path(run, settings, device=flags["device"], batch_size=flags["batch_size"],
                          workers=flags["workers"], trust_code=flags["trust_code"], progress=bar)
    save_result(fitted.result, run.dir, flags)  # the path stands on its own, also when no head meets the rule
    steps = len(fitted.path.steps)
    note(f"path: {steps} steps ({settings.steps} on the lambda grid, plus bisections where units entered in bulk) "
         f"in {fitted.seconds:.1f} s"
         f"{' (stopped early: validation accuracy no longer improved)' if fitted.path.stopped_early else ''}; "
         f"wrote {', '.join(fitted.result.artifacts(flags['plot']))}")
    head = sparse_head(fitted, name, selection, finetune=flags["finetune"])
    save_result(head, run.dir, flags)
    note(f"head '{name}' = step {head.record['step']} (lambda {head.record['lambda']:.4g}); wrote "
         f"{', '.join(head.artifacts())} to {run.dir}; read it with --head {name}")
    emit(head.summary, flags["fmt"], title=f"{run.name}: dense and sparse head")
    drop = head.record["dense_val_acc"] - head.record["val_acc"]
    if drop > DROP_WARN:
        note(f"warning: head '{name}' is {drop:.1%} less accurate than the dense head, so its units do not explain "
             "the dense decisions; see sparse_path.csv and choose by accuracy with --max-drop (docs/sparsify.md)")
    if flags["fmt"] == Format.table and "units_per_view" in head.record:
        import pandas as pd

        views = pd.DataFrame(list(head.record["units_per_view"].items()), columns=["view", "units"])
        emit(views, flags["fmt"], title=f"'{name}': kept units per view")
