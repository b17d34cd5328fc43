"""`nv dissect-map`: Network Dissection of every unit, then the concepts each class relies on (Figure 4)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .app import app, on_interrupt
from .flags import HEAD, INFERENCE, OUTPUT, RANK, RESULTS, RUN, Flag, Flags, Group, command, split_list
from .render import emit, note, progress
from .runs import open_run, save_result

DISSECT = Group("Dissection", (
    Flag("probe", Optional[Path], ("--probe",), "Broden-layout probe set (default: built-in shapes)."),
    Flag("probe_count", int, ("--probe-count",), "Images in the built-in probe set.", 300, extra=(("min", 1),)),
    Flag("quantile", float, ("--quantile",), "Top quantile of activations that counts as active.", 0.005),
    Flag("iou_threshold", float, ("--iou-threshold",), "IoU at which a unit is interpretable.", 0.04),
    Flag("categories", Optional[str], ("--categories",), "Comma-separated categories to score."),
    Flag("aggregate", str, ("--aggregate",), "A concept's score for a class from its units' scores: balanced (sum / "
         "sqrt(units): neither many units nor a single one wins by count), mean, or sum (the paper's).", "balanced"),
    Flag("class_", Optional[str], ("--class",), "Draw the figure of this class only."),
    Flag("top", int, ("--top",), "Concepts per sign in the table and figure.", 5, extra=(("min", 1),)),
    Flag("image_size", Optional[int], ("--image-size",), "Resize --probe images to this side (default: the run's); the "
         "built-in probe draws its objects at this scale on a canvas twice the side.",
         extra=(("min", 16),)),
))


# Every layer's maps of a batch are held at once: a smaller batch than other inference.
@command(app, "dissect-map", DISSECT, RANK, HEAD, RUN, INFERENCE.defaulting("batch_size", 16), RESULTS, OUTPUT)
def dissect_map(flags: Flags) -> None:
    """Label every unit with a concept and map each class to the concepts its weights favour."""
    from ..errors import choice_error

    run = open_run(flags["run"], flags["runs_dir"])  # before torch loads: a wrong --run answers at once
    from ..analysis.dissect.concepts import dissect_run

    name = flags["class_"]
    if name is not None and name not in run.classes:
        raise choice_error("class", name, run.classes)
    on_interrupt("interrupted; no dissection results were written")
    with progress("dissecting") as bar:
        result = dissect_run(run, flags["probe"], head=flags["head"], quantile=flags["quantile"],
                             iou_threshold=flags["iou_threshold"], categories=split_list(flags["categories"]),
                             image_size=flags["image_size"], probe_count=flags["probe_count"], rank=flags["rank"],
                             aggregate=flags["aggregate"],
                             batch_size=flags["batch_size"], workers=flags["workers"], device=flags["device"],
                             trust_code=flags["trust_code"],
                             progress=(lambda done, total: bar("probe", done, total)) if bar else None)
    result.top = flags["top"]
    result.figure_classes = [name] if name else None
    save_result(result, run.dir, flags)
    interpretable = int(result.units["interpretable"].sum())
    note(f"{interpretable} of {len(result.units)} units interpretable (IoU >= {flags['iou_threshold']}) on "
         f"{result.probe}")
    shown = result.classes[result.classes["rank"] <= flags["top"]]
    if name:
        shown = shown[shown["class"] == name]
    emit(shown.reset_index(drop=True), flags["fmt"], title=f"Top {flags['top']} positive and negative concepts per class")
