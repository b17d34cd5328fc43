"""The concept-class map (Figure 4): per class, its head weights summed over the units labelled with each concept."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ...data.broden import BrodenProbe
from ...data.cues import write_probe as write_cues_probe
from ...data.shapes import ProbeOptions, write_probe
from ...errors import NvError, choice_error
from ...runs import files
from ...runs.lock import scratch_dir
from ...runs.results import RunResult, Writer, figure, stale, table
from ...runs.run import Run
from ...training.devices import resolve_device
from ...training.predict import ProgressFn
from ..head import Head, read_head
from ..importance import CodeStats, code_stats, needs_codes, scores
from ..settings import AGGREGATES, DEFAULT_AGGREGATE, Compute, ConceptSettings, Dissection, DissectOptions  # noqa: F401  (re-exported)
from .tally import dissect

CLASS_COLUMNS = ["class", "concept", "category", "sign", "weight", "percent", "rank", "units"]
# How a class's scores over a concept's units become the concept's score. The paper sums them; a sum spreads wider
# the more units a concept has, a mean the fewer (one unit's weight is an extreme mean): if the scores were noise of
# one spread, sum / sqrt(units) would spread alike for every concept (docs/explanations.md).


def concepts_units(dissection: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """The dissection table aligned with a run's units.csv (`unit,layer,node,[label,]channel`), node and label added."""
    missing = [c for c in ("unit", "layer", "node", "channel") if c not in units.columns]
    if missing:
        raise NvError(f"the units table lacks column(s) {', '.join(missing)}; expected unit,layer,node,channel")
    if len(units) != len(dissection):
        raise NvError(f"the run has {len(units)} units but the dissected maps have {len(dissection)}; "
                      "the maps must come from the run's model, one per unit layer")
    ours = dissection[["unit", "layer", "channel"]].to_numpy()
    theirs = units[["unit", "layer", "channel"]].to_numpy().astype(np.int64)
    if not (ours == theirs).all():
        bad = int(np.flatnonzero((ours != theirs).any(1))[0])
        raise NvError(f"unit {bad}: the units table says layer {theirs[bad, 1]} channel {theirs[bad, 2]}, "
                      f"the dissected maps give layer {ours[bad, 1]} channel {ours[bad, 2]}")
    out = dissection.copy()
    out.insert(2, "node", units["node"].to_numpy())
    if "label" in units.columns:
        out.insert(3, "label", units["label"].to_numpy())
    return out


def concepts_classes(weights: Tensor | np.ndarray, units: pd.DataFrame, classes: Sequence[str],
                     aggregate: str = DEFAULT_AGGREGATE) -> pd.DataFrame:
    """Per class and concept, the head's scores over the concept's interpretable units: their sum over the square
    root of their number (`balanced`), their mean (`mean`) or their sum (`sum`, the paper's); columns: CLASS_COLUMNS.

    percent = 100 * |weight| / sum over the class's concepts of |weight|; rank = 1-based order by |weight|
    within the class and sign (+ for weight >= 0), so the top-5 positive concepts are sign '+', rank <= 5.
    """
    if aggregate not in AGGREGATES:
        raise choice_error("concept aggregation (aggregate)", aggregate, AGGREGATES)
    w = weights.detach().cpu().double().numpy() if isinstance(weights, Tensor) else np.asarray(weights, float)
    if w.ndim != 2 or w.shape != (len(classes), len(units)):
        raise NvError(f"head weights are {tuple(w.shape)}; expected [classes, units] = [{len(classes)}, {len(units)}]")
    keep = units["interpretable"].to_numpy(bool)
    concept = units["concept"].to_numpy()[keep]
    names, inverse = np.unique(concept, return_inverse=True)
    category = pd.Series(units["category"].to_numpy()[keep]).groupby(concept).first().reindex(names).to_numpy()
    n_units = np.bincount(inverse, minlength=len(names))
    summed = np.zeros((len(classes), len(names)))
    np.add.at(summed.T, inverse, w[:, keep].T)
    if aggregate != "sum":
        summed = summed / np.maximum(n_units, 1) ** (1.0 if aggregate == "mean" else 0.5)
    frames = []
    for c, cls in enumerate(classes):
        weight = summed[c]
        total = np.abs(weight).sum()
        frame = pd.DataFrame({
            "class": cls, "concept": names, "category": category, "sign": np.where(weight >= 0, "+", "-"),
            "weight": weight, "percent": 100 * np.abs(weight) / total if total > 0 else 0.0, "units": n_units,
        })
        frame = frame.iloc[np.argsort(-np.abs(weight), kind="stable")]
        frame["rank"] = frame.groupby("sign").cumcount() + 1
        frames.append(frame.sort_values(["sign", "rank"], kind="stable"))
    if not frames or not len(names):
        return pd.DataFrame(columns=CLASS_COLUMNS)
    return pd.concat(frames, ignore_index=True)[CLASS_COLUMNS]


@dataclass
class ConceptMap(RunResult):
    """Every unit's concept (concepts_units.csv) and every class's concept weights with one head."""

    kind = "concepts"
    main_table = "classes"
    run: str
    units: pd.DataFrame
    classes: pd.DataFrame
    dissection: Dissection
    top: int = 5
    figure_classes: Sequence[str] | None = None  # classes whose figure to draw (None: all)

    @property
    def head(self) -> str:
        return self.dissection.head

    @property
    def probe(self) -> str:
        return self.dissection.probe


    def settings(self) -> ConceptSettings:
        return ConceptSettings(self.dissection, self.top)

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ...plots.concepts import concept_figure

        out = {files.CONCEPTS_UNITS.name(self.head): table(self.units),
               files.CONCEPTS_CLASSES.name(self.head): table(self.classes)}
        if figures:
            classes = list(dict.fromkeys(self.classes["class"]))
            stems = files.class_stems(classes)
            for name in classes if self.figure_classes is None else self.figure_classes:
                if name in stems:
                    out[files.CONCEPTS_PNG.name(self.head, cls=stems[name])] = figure(concept_figure, self.classes,
                                                                                     name, self.top)
        return out

    @classmethod
    def load(cls, run_dir: Path, settings: ConceptSettings) -> "ConceptMap | None":
        """The concept map saved in `run_dir` with `settings` (its results.json entry), or None if never saved."""
        head = settings.dissection.head
        units, classes = cls.load_units(run_dir, head), files.CONCEPTS_CLASSES.read(run_dir, head)
        if units is None or classes is None:
            return None
        return cls(Path(run_dir).name, units, classes, settings.dissection, settings.top)

    @staticmethod
    def load_units(run_dir: Path, head: str = files.DENSE_HEAD) -> pd.DataFrame | None:
        """The saved concept of every unit (concepts_units[@<head>].csv: each dissection's own probe settings), or None
        before dissect-map ran with that head."""
        return files.CONCEPTS_UNITS.read(run_dir, head)

    @staticmethod
    def labels_for(run: Run, head: str) -> pd.DataFrame | None:
        """The unit concepts that label head `head`'s units (files.concept_heads) from a dissection that still
        describes the run, or None before any dissection; a stale one is passed over with a warning."""
        for labelled in files.concept_heads(head):
            units = ConceptMap.load_units(run.dir, labelled)
            reasons = stale(run, ConceptMap.kind + files.head_mark(labelled)) if units is not None else []
            if units is not None and not reasons:
                return units
            if reasons:
                warnings.warn(f"the concepts of '{run.dir}' ({files.CONCEPTS_UNITS.name(labelled)}) are not used: "
                              f"{'; '.join(reasons)}")
        return None


def dissect_run(run: Run, probe_dir: str | Path | None = None, options: DissectOptions = DissectOptions(), *,
                head: str = files.DENSE_HEAD, compute: Compute = Compute(batch_size=16),
                trust_code: bool = False, progress: ProgressFn | None = None) -> ConceptMap:
    """Label every unit with a concept (Network Dissection) and map each class to the concepts its weights favour.

    Args:
        run: a trained single-view NeuroView run on RGB images.
        probe_dir: a Broden-layout probe set (default: the built-in probe of the run's world, cues or else shapes,
            written to a scratch folder).
        options: probe size, quantile, IoU threshold, categories, aggregation, ranking, figure settings.
        head: `dense` or a sparse head's name.
        compute: device, batch size (every layer's maps of a batch are held at once: 16 by default), workers.
        trust_code: allow importing the run's `package.module:function` architecture.
        progress: called as `progress("probe", done, total)` per probe batch.

    Returns:
        A `ConceptMap`: `units` (each unit's concept and IoU) and `classes` (top concepts per class and sign);
        `.save(run.dir)` writes concepts_units.csv, concepts_classes.csv and concepts_<class>.png.
    """
    run.require_neuroview()
    spec = run.spec
    if spec.multiview or spec.input_shape[0] != 3:
        raise NvError(f"dissect-map needs a single-view RGB image run; '{run.dir}' takes "
                      f"{spec.views} view(s) of {spec.input_shape[0]} channel(s)")
    o, device, workers = options, compute.device, compute.workers
    size = o.image_size or spec.input_shape[1]
    chosen = read_head(run, head)
    stats = code_stats(run, device=device, workers=workers, trust_code=trust_code) if needs_codes(o.rank) else None
    model = run.model(resolve_device(device), trust_code=trust_code)
    with scratch_dir("nv-probe-") as tmp:  # removed afterwards; one left by a killed process goes next time
        if probe_dir is None:  # the built-in world's own probe for a run trained on cues, else shapes'
            probe = ProbeOptions(image_size=size, count=o.probe_count)
            world = "cues" if run.config.data.name == "cues" else "shapes"
            probe_dir = (write_cues_probe if world == "cues" else write_probe)(tmp / "probe", probe)
            source = f"built-in {world} probe ({o.probe_count} images, objects at {size} px on {probe.side} px)"
            size = probe.side  # the probe is fed at its own side: its objects are already at the run's scale
        else:
            source = str(probe_dir)
        return concept_map(model, chosen, probe_dir, o, image_size=size, source=source, compute=compute, stats=stats,
                           name=run.name, progress=progress)


def concept_map(model: torch.nn.Module, head: Head, probe_dir: str | Path, options: DissectOptions = DissectOptions(),
                *, image_size: int | None = None, source: str | None = None, compute: Compute = Compute(batch_size=16),
                stats: CodeStats | None = None, name: str = "model",
                progress: ProgressFn | None = None) -> ConceptMap:
    """Label every unit of a NeuroView `model` with a concept of the Broden-layout probe at `probe_dir`, and map each
    class of `head` to the concepts its weights favour (`stats`: the codes' statistics, for rank `importance`)."""
    o = options
    if o.rank == "importance" and stats is None:
        raise NvError("rank importance needs the validation codes' statistics (stats)", param="stats")
    dev = next(model.parameters()).device

    def maps_fn(images: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return model.unit_maps(images.to(dev))

    size = image_size or o.image_size or int(model.codes.input_shape[-1])
    broden = BrodenProbe(probe_dir, categories=o.categories, image_size=size)
    was_training = model.training
    model.eval()
    try:
        table = dissect(maps_fn, broden, o.quantile, o.iou_threshold, batch_size=compute.batch_size,
                        workers=compute.workers, device=dev, progress=progress)
    finally:
        model.train(was_training)
    units = concepts_units(table, head.units)
    settings = Dissection(source or str(probe_dir), o.quantile, o.iou_threshold, o.categories or None, size, head.name,
                          o.rank, o.aggregate)
    return ConceptMap(name, units, concepts_classes(scores(head, o.rank, stats), units, head.classes, o.aggregate),
                      settings, o.top, o.figure_classes)
