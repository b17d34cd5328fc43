"""Two NeuroView runs of one architecture side by side (paper case studies 2 and 3, Figure 3 c-d):
their accuracy, and how each head spreads its positive and negative weight over the layers. Each side reads
one head: the dense one (default) or a sparse head (`nv sparsify`), so a run can be compared with itself.

Shares (not raw sums) are compared, so two heads trained to different weight scales stay comparable;
the runs may have different classes (e.g. trained on different datasets), the units must be the same.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import NvError, choice_error
from ..models.unit_table import layer_keys
from ..runs import files, provenance
from ..runs.results import RunResult, Writer, figure, table
from ..runs.run import Run
from ..training.predict import ProgressFn
from .categories import category_shares, labelled_categories
from .evaluate import current_evaluation, evaluate
from .head import DEFAULT_TOP, OVERALL, head_names, read_head
from .importance import check_rank, code_stats, needs_codes, ranked_head
from .settings import CompareSettings, Compute
from .weights import layer_summary

log = logging.getLogger(__name__)

SIDES = ("a", "b")
ACCURACY_COLUMNS = ["side", "run", "head", "network", "dataset", "classes", "accuracy", "source"]
SHARES = ["pos_share", "neg_share", "top_share"]
DENSE_BOTH = (files.DENSE_HEAD, files.DENSE_HEAD)  # the head each side reads, unless told


@dataclass
class Comparison(RunResult):
    """Run A against run B: accuracy, per-layer weight statistics (long), and the overall shares (wide)."""

    kind = "compare"
    main_table = "accuracy"
    accuracy: pd.DataFrame  # ACCURACY_COLUMNS, one row per side
    layers: pd.DataFrame  # side, run, head, class, [view,] layer, node, LAYER_STATS
    overall: pd.DataFrame  # [view,] layer, node, units, unit_share, pos_share_a, pos_share_b, ..., top_share_b
    names: dict[str, str]  # side -> run name, with '@<head>' for a sparse head
    top: int = DEFAULT_TOP
    rank: str = "weight"  # what the shares are of: head weight, or importance (weight x code std)
    dirs: dict[str, str] | None = None  # side -> the run directory read: a run's identity, where names may repeat
    categories: pd.DataFrame | None = None  # per concept category: units and shares of each side (both dissected)
    sources: dict[str, str] | None = None  # what it was computed from (provenance.made_from), when computed

    def settings(self) -> CompareSettings:
        return CompareSettings(self.names, self.top, self.rank, self.dirs)

    def made_from(self, run: Run) -> dict[str, str]:
        if self.sources is None:
            raise ValueError("a comparison read back from its files cannot be saved again")
        return self.sources

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.compare import compare_figure

        out = {files.COMPARE_ACCURACY.name(): table(self.accuracy), files.COMPARE_LAYERS.name(): table(self.layers),
               files.COMPARE.name(): table(self.overall)}
        if self.categories is not None:
            out[files.COMPARE_CATEGORIES.name()] = table(self.categories)
        if figures:
            accuracy = dict(zip(self.accuracy["side"], self.accuracy["accuracy"]))
            out[files.COMPARE_PNG.name()] = figure(compare_figure, self.overall, self.names, accuracy, self.rank)
        return out

    @classmethod
    def load(cls, folder: Path, settings: CompareSettings) -> "Comparison | None":
        """The comparison saved in `folder` with `settings` (its results.json entry), or None if never saved."""
        tables = [a.read(folder) for a in (files.COMPARE_ACCURACY, files.COMPARE_LAYERS, files.COMPARE)]
        if any(t is None for t in tables):
            return None
        accuracy, layers, overall = tables
        return cls(accuracy, layers, overall, settings.runs, settings.top, settings.rank, settings.dirs,
                   files.COMPARE_CATEGORIES.read(folder))


def _structure(run: Run) -> list[tuple]:
    units = run.units()
    keys = [k for k in layer_keys(units) if k != "label"]  # runs from before labels existed compare with newer ones
    return [(*key, len(part)) for key, part in units.groupby(keys, sort=False)]


def check_comparable(a: Run, b: Run, heads: tuple[str, str] = DENSE_BOTH) -> None:
    """Refuse baseline runs, runs whose architectures or unit tables differ, and heads a run does not have."""
    for run, head in zip((a, b), heads):
        run.require_neuroview()
        if head not in head_names(run):
            raise choice_error(f"head of run '{run.name}'", head, head_names(run))
    if a.spec.arch != b.spec.arch or a.spec.views != b.spec.views:
        raise NvError(f"cannot compare different architectures: '{a.name}' is {a.spec.label}, '{b.name}' is "
                      f"{b.spec.label}; a comparison needs two runs of the same architecture")
    sa, sb = _structure(a), _structure(b)
    if sa != sb:
        raise NvError(f"cannot compare runs with different units: '{a.name}' has {sum(s[-1] for s in sa)} units in "
                      f"{len(sa)} layers, '{b.name}' has {sum(s[-1] for s in sb)} in {len(sb)}")


def run_accuracy(run: Run, head: str = files.DENSE_HEAD, *, compute: Compute = Compute(), trust_code: bool = False,
                 progress: ProgressFn | None = None) -> tuple[float, str]:
    """The validation accuracy of the run's head `head` and where it came from: its saved evaluation when that was
    made from the present weights and validation files, else evaluated now."""
    saved = current_evaluation(run, head)
    if saved is not None:
        return float(saved.summary.accuracy), files.EVAL.name(head)
    log.info("no current saved evaluation of head '%s' in '%s'; evaluating", head, run.dir)
    result = evaluate(run, head=head, compute=compute, trust_code=trust_code,
                      progress=progress)
    return float(result.summary.accuracy), "computed"


def compare(a: Run, b: Run, *, heads: tuple[str, str] = DENSE_BOTH, top: int = DEFAULT_TOP, rank: str = "weight",
            compute: Compute = Compute(), trust_code: bool = False, progress: ProgressFn | None = None) -> Comparison:
    """Compare how two runs of one architecture spread their head's weight over the layers.

    Args:
        a: run A (e.g. trained on the original images).
        b: run B with the same units (e.g. trained on stylised images).
        heads: the head of A and the head of B (`dense` or sparse heads' names).
        top: the k of `top_share` (units of largest |weight|).
        rank: `weight` or `importance` (shares of importance; reads each run's validation codes).
        compute: where and how: device (auto: cuda > mps > cpu), inference batch size, loader workers.
        trust_code: allow importing the run's `package.module:function` architecture (runs its code).
        progress: called as `progress(phase, done, total)` while batches are computed.

    Returns:
        A `Comparison`: `accuracy` (each side), `layers` (per class and layer) and `overall` (per layer) shares;
        `.save(directory)` writes compare.csv, compare_layers.csv, compare_accuracy.csv and compare.png.
    """
    check_comparable(a, b, heads)
    check_rank(rank)
    accuracy, layers, shares = [], [], []
    for side, run, head in zip(SIDES, (a, b), heads):
        acc, source = run_accuracy(run, head, compute=compute,
                                   trust_code=trust_code, progress=progress)
        accuracy.append({"side": side, "run": run.name, "head": head, "network": run.spec.label,
                         "dataset": run.config.data.name, "classes": len(run.classes), "accuracy": acc,
                         "source": source})
        stats = code_stats(run, device=compute.device, batch_size=compute.batch_size, workers=compute.workers,
                           trust_code=trust_code,
                           progress=progress) if needs_codes(rank) else None
        ranked = ranked_head(read_head(run, head), rank, stats)
        summary = layer_summary(ranked, top)
        categories = labelled_categories(run, head)
        shares.append(None if categories is None else category_shares(ranked.weight, categories))
        summary.insert(0, "head", head)
        summary.insert(0, "run", run.name)
        summary.insert(0, "side", side)
        layers.append(summary)
    layers_frame = pd.concat(layers, ignore_index=True)
    keys = layer_keys(layers_frame)
    overall = layers_frame[layers_frame["class"] == OVERALL]
    wide = overall[overall["side"] == "a"][[*keys, "units"]].reset_index(drop=True)
    wide["unit_share"] = wide["units"] / wide["units"].sum()  # what a head indifferent to layers would give
    for share in SHARES:
        for side in SIDES:
            wide[f"{share}_{side}"] = overall.loc[overall["side"] == side, share].to_numpy()
    names = {side: run.name + files.head_mark(head) for side, run, head in zip(SIDES, (a, b), heads)}
    dirs = {side: str(run.dir) for side, run in zip(SIDES, (a, b))}
    sources = provenance.made_from(a, head=heads[0], splits=("val",), others=[(b, heads[1])])
    return Comparison(pd.DataFrame(accuracy, columns=ACCURACY_COLUMNS), layers_frame, wide, names, top, rank, dirs,
                      _side_by_side(shares), sources)


def _side_by_side(shares: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    """Both sides' concept-category shares in one table (`category`, then each column with `_a` and `_b`), or None
    unless both runs were dissected."""
    if any(s is None for s in shares):
        return None
    a, b = (s.set_index("category") for s in shares)  # type: ignore[union-attr]
    wide = a.add_suffix("_a").join(b.add_suffix("_b"), how="outer").fillna(0)
    wide[["units_a", "units_b"]] = wide[["units_a", "units_b"]].astype(int)
    columns = [f"{c}_{side}" for c in a.columns for side in SIDES]
    return wide[columns].reset_index()


def output_dir(out: str | Path | None, a: Run, b: Run, heads: tuple[str, str] = DENSE_BOTH) -> Path:
    """The directory `nv compare A B` writes into, created if needed: by default A/compare_<B>/, with '@<head>'
    after 'compare' for a sparse head of A and after B's name for one of B (A/compare_A@sparse10/)."""
    marks = [files.head_mark(h) for h in heads]
    # Inside a run, a link could send the results anywhere: `inside` refuses one.
    path = Path(out) if out is not None else a.path(f"compare{marks[0]}_{b.name}{marks[1]}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NvError(f"cannot create output directory '{path}': {exc.strerror}") from exc
    return path


