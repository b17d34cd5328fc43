"""Two NeuroView runs of one architecture side by side (paper case studies 2 and 3, Figure 3 c-d):
their accuracy, and how each head spreads its positive and negative weight over the layers.

Shares (not raw sums) are compared, so two heads trained to different weight scales stay comparable;
the runs may have different classes (e.g. trained on different datasets), the units must be the same.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import NvError
from ..models.unit_table import layer_keys
from ..runs import files
from ..runs.results import RunResult, Writer, figure, table
from ..runs.run import Run
from ..training.predict import ProgressFn
from .evaluate import Evaluation, evaluate
from .head import DEFAULT_TOP, OVERALL, read_head
from .importance import check_rank, code_stats, needs_codes, ranked_head
from .weights import layer_summary

log = logging.getLogger("nvcli")

SIDES = ("a", "b")
ACCURACY_COLUMNS = ["side", "run", "network", "dataset", "classes", "accuracy", "source"]
SHARES = ["pos_share", "neg_share", "top_share"]


@dataclass
class Comparison(RunResult):
    """Run A against run B: accuracy, per-layer weight statistics (long), and the overall shares (wide)."""

    kind = "compare"
    accuracy: pd.DataFrame  # ACCURACY_COLUMNS, one row per side
    layers: pd.DataFrame  # side, run, class, [view,] layer, node, LAYER_STATS
    overall: pd.DataFrame  # [view,] layer, node, units, unit_share, pos_share_a, pos_share_b, ..., top_share_b
    names: dict[str, str]  # side -> run name
    top: int = DEFAULT_TOP
    rank: str = "weight"  # what the shares are of: head weight, or importance (weight x code std)

    def settings(self) -> dict[str, Any]:
        return {"runs": self.names, "top": self.top, **({} if self.rank == "weight" else {"rank": self.rank})}

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.compare import compare_figure

        out = {files.COMPARE_ACCURACY.name(): table(self.accuracy), files.COMPARE_LAYERS.name(): table(self.layers),
               files.COMPARE.name(): table(self.overall)}
        if figures:
            accuracy = dict(zip(self.accuracy["side"], self.accuracy["accuracy"]))
            out[files.COMPARE_PNG.name()] = figure(compare_figure, self.overall, self.names, accuracy, self.rank)
        return out

    @classmethod
    def load(cls, folder: Path, settings: dict[str, Any]) -> "Comparison | None":
        """The comparison saved in `folder` with `settings` (its results.json entry), or None if never saved."""
        paths = [files.COMPARE_ACCURACY.path(folder), files.COMPARE_LAYERS.path(folder), files.COMPARE.path(folder)]
        names = settings.get("runs")
        if not all(p.is_file() for p in paths) or not isinstance(names, dict):
            return None
        accuracy, layers, overall = (pd.read_csv(p, keep_default_na=False) for p in paths)
        return cls(accuracy, layers, overall, {k: str(v) for k, v in names.items()}, int(settings.get("top", DEFAULT_TOP)),
                   str(settings.get("rank", "weight")))


def _structure(run: Run) -> list[tuple]:
    units = run.units()
    keys = [k for k in layer_keys(units) if k != "label"]  # runs from before labels existed compare with newer ones
    return [(*key, len(part)) for key, part in units.groupby(keys, sort=False)]


def check_comparable(a: Run, b: Run) -> None:
    """Refuse baseline runs and runs whose architectures or unit tables differ."""
    a.require_neuroview("compare")
    b.require_neuroview("compare")
    if a.spec.arch != b.spec.arch or a.spec.views != b.spec.views:
        raise NvError(f"cannot compare different architectures: '{a.name}' is {a.spec.label}, '{b.name}' is "
                      f"{b.spec.label}; nv compare needs two runs of the same architecture")
    sa, sb = _structure(a), _structure(b)
    if sa != sb:
        raise NvError(f"cannot compare runs with different units: '{a.name}' has {sum(s[-1] for s in sa)} units in "
                      f"{len(sa)} layers, '{b.name}' has {sum(s[-1] for s in sb)} in {len(sb)}")


def run_accuracy(run: Run, *, device: str = "auto", batch_size: int = 128, workers: int = 0,
                 trust_code: bool = False, progress: ProgressFn | None = None) -> tuple[float, str]:
    """The run's validation accuracy and where it came from: its saved evaluation, or computed now."""
    saved = Evaluation.load(run.dir)
    if saved is not None:
        return float(saved.summary["accuracy"]), files.EVAL.name()
    log.info("no saved evaluation in '%s'; evaluating", run.dir)
    result = evaluate(run, device=device, batch_size=batch_size, workers=workers, trust_code=trust_code,
                      progress=progress)
    return float(result.summary["accuracy"]), "computed"


def compare(a: Run, b: Run, *, top: int = DEFAULT_TOP, rank: str = "weight", device: str = "auto",
            batch_size: int = 128, workers: int = 0, trust_code: bool = False,
            progress: ProgressFn | None = None) -> Comparison:
    """Compare run `a` with run `b` (same architecture and units); rank `importance` compares shares of importance."""
    check_comparable(a, b)
    check_rank(rank)
    accuracy, layers = [], []
    for side, run in zip(SIDES, (a, b)):
        acc, source = run_accuracy(run, device=device, batch_size=batch_size, workers=workers,
                                   trust_code=trust_code, progress=progress)
        accuracy.append({"side": side, "run": run.name, "network": run.spec.label,
                         "dataset": run.config["data"]["name"], "classes": len(run.classes), "accuracy": acc,
                         "source": source})
        stats = code_stats(run, device=device, batch_size=batch_size, workers=workers, trust_code=trust_code,
                           progress=progress) if needs_codes(rank) else None
        summary = layer_summary(ranked_head(read_head(run, "compare"), rank, stats), top)
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
    return Comparison(pd.DataFrame(accuracy, columns=ACCURACY_COLUMNS), layers_frame, wide,
                      {"a": a.name, "b": b.name}, top, rank)


def output_dir(out: str | Path | None, a: Run, b: Run) -> Path:
    """The directory `nv compare A B` writes into (default A/compare_<B's name>/), created if needed."""
    path = Path(out) if out is not None else a.dir / f"compare_{b.name}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NvError(f"cannot create output directory '{path}': {exc.strerror}") from exc
    return path


