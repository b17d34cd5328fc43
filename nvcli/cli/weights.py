"""`nv weights`: a class's head weights along the unit axis (Figure 3), per-layer summaries, class similarity."""
from __future__ import annotations

from typing import Optional

from ..errors import NvError
from ..runs.files import DENSE_HEAD
from .app import app
from .flags import HEAD, OUTPUT, RANK, RESULTS, RUN, Flag, Flags, Group, command
from .render import Format, emit, note
from .runs import open_run, save_result

WEIGHTS = Group("Weights", (
    Flag("class_", Optional[str], ("--class", "-c"), "The class whose weights to show."),
    Flag("all_", bool, ("--all",), "Every class: weights_<class>.csv for each, and weights_all.png.", False),
    Flag("top", int, ("--top", "-k"), "Units listed per sign, and the k of top_share in weights_layers.csv.", 10,
         extra=(("min", 1),)),
))


@command(app, "weights", WEIGHTS, RANK, HEAD, RUN, RESULTS, OUTPUT)
def weights(flags: Flags) -> None:
    """Show a class's head weights by unit and layer; write weights CSVs, class_similarity.csv/.png."""
    name, every, top, fmt = flags["class_"], flags["all_"], flags["top"], flags["fmt"]
    if name is None and not every:
        raise NvError("give --class NAME (one class) or --all (every class)")
    run = open_run(flags["run"], flags["runs_dir"])  # before torch loads: a wrong --run answers at once
    from ..analysis.dissect.concepts import ConceptMap
    from ..analysis.head import extremes, read_head
    from ..analysis.importance import code_stats, needs_codes
    from ..analysis.weights import INIT_WARN, class_overview, init_correlation, kept_per_view, kept_units
    from ..analysis.weights import weights as head_weights

    head = read_head(run, "weights", flags["head"])
    if name is not None:
        head.class_index(name)
    stats = code_stats(run, trust_code=flags["trust_code"]) if needs_codes(flags["rank"]) else None
    per_class, summary = head_weights(run.name, head, head.classes if every else [name], top=top, grid=every,
                                      rank=flags["rank"], stats=stats)
    for result in per_class:
        save_result(result, run.dir, flags)
    save_result(summary, run.dir, flags)
    note(f"wrote weights CSVs{' and figures' if flags['plot'] else ''} to {run.dir}")
    init_corr = init_correlation(head, run.head_init()) if head.name == DENSE_HEAD else None
    if init_corr is not None and (init_corr > INIT_WARN).any():
        high = ", ".join(f"{c} ({r:.2f})" for c, r in zip(head.classes, init_corr) if r > INIT_WARN)
        note(f"warning: weights correlate > {INIT_WARN} with the head's random start (head_init.pt) for {high}: "
             "they say as much about the initialisation as about what was learned (docs/head-recipe.md)")
    if name is None:
        emit(class_overview(head, summary.similarity, init_corr), fmt, title=f"{run.name}: classes")
        return
    if head.name == DENSE_HEAD:
        score = "weight" if stats is None else "importance"
        emit(extremes(per_class[0].frame, score, top), fmt, title=f"{run.name}: '{name}' top {top} positive and "
             f"negative units by {score}")
    else:  # a sparse head's few units are the explanation: list them all, with their concepts once dissected
        kept = kept_units(head, name, ConceptMap.load_units(run.dir))
        emit(kept, fmt, title=f"{run.name}: the {len(kept)} units of '{name}' in head '{head.name}'")
        if fmt == Format.table and "view" in head.units.columns:
            emit(kept_per_view(head, name), fmt, title=f"'{name}': units per view")
    if fmt == Format.table:
        layers = summary.layers
        emit(layers[layers["class"] == name].drop(columns="class"), fmt, title=f"'{name}' per layer")
