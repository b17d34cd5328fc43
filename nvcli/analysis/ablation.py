"""Unit ablation (`nv ablate`): does removing the units a class's ranking puts first hurt that class?

The head is linear in the codes, so the codes `z` of the validation split are computed once (and cached);
removing a set S of units replaces their codes by a reference (the validation mean, or zero) and changes
every logit by `-sum_{u in S} W[:, u] * (z_u - reference_u)`: each ablation is a matrix product over the
removed units, never another pass of the network. Per class, on that class's validation samples:

- top-k: remove the k units whose scores for the class are largest in magnitude: a unit matters to a class
  through either sign (removing a unit with a negative weight that is silent on the class's inputs takes
  away evidence *for* the class, since its code rises to the mean);
- bottom-k: remove the k units of smallest magnitude (the ranking says they do not matter);
- random-k: remove k units drawn at random (several draws: the control);
- keep-top-k: remove every unit but the top k;
- multi-view runs also remove one view's units (drop-view) or all other views' (keep-view);
- recurrent runs also remove whole time steps (every unit at a step): the k steps of the class's largest weight
  mass (top-steps) and k random steps (random-steps, the control); k counts steps (nvcli/analysis/timesteps.py).
- with `categories` (a dissected run), every unit of a group of concept categories (drop-category: e.g. all colour
  and texture units, paper case study 2); k counts the units removed.

Reported: the class's accuracy (recall) and mean logit margin (own logit minus the best other class's).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, astuple, dataclass, field, fields
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from ..errors import NvError
from ..runs import files
from ..runs.results import RunResult, Writer, figure, table
from ..runs.run import Run
from ..training import distributed as dist
from ..training.predict import ProgressFn
from .categories import labelled_categories
from .code_cache import Codes, split_codes
from .head import Head, read_head
from .importance import CodeStats, scores
from .settings import AblationOptions, AblationSettings, Compute
from .timesteps import step_grid, step_order

COLUMNS = ["class", "ranking", "policy", "k", "accuracy", "margin", "draw"]  # + `view` (multi-view), `category`
CATEGORY_COLUMNS = ["class", "category", "units", "accuracy", "removed_accuracy", "margin", "removed_margin"]


@dataclass(frozen=True)
class ClassCost:
    """A class's row of the ablation summary: its accuracy and margin without ablation, after removing its top k
    units and k random ones (mean and sd of the draws), and the top-k drop over the random-k drop of each."""

    class_: str
    k: int
    accuracy: float
    top_accuracy: float
    random_accuracy: float
    random_accuracy_sd: float
    accuracy_drop_ratio: float
    margin: float
    top_margin: float
    random_margin: float
    random_margin_sd: float
    margin_drop_ratio: float


SUMMARY_COLUMNS = [f.name.removesuffix("_") for f in fields(ClassCost)]


@dataclass
class Ablation(RunResult):
    """ablation.csv (every ablation), ablation_summary.csv (per class: top vs random at the summary's k), the figure."""

    kind = "ablation"
    main_table = "summary"
    run: str
    head: str
    frame: pd.DataFrame  # COLUMNS (+ view, category)
    summary: pd.DataFrame  # SUMMARY_COLUMNS
    options: AblationOptions
    units: int
    samples: int
    accuracy: float  # the whole split's accuracy without ablation
    figure_classes: list[str] | None = field(default=None)  # classes drawn (None: all)


    def settings(self) -> AblationSettings:
        return AblationSettings(self.head, self.options)

    def data_splits(self) -> tuple[str, ...]:
        return ("val",)

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.ablation import ablation_figure

        h = self.head
        out = {files.ABLATION.name(h): table(self.frame), files.ABLATION_SUMMARY.name(h): table(self.summary)}
        if figures:
            o = self.options
            title = (f"{self.run}: class accuracy as units are removed (ranking: {o.rank}, removed code := "
                     f"{'validation mean' if o.mode == 'mean' else 'zero'}" + ("" if files.is_dense(h)
                                                                                else f", head {h}") + ")")
            out[files.ABLATION_PNG.name(h)] = figure(ablation_figure, self.frame, title, self.figure_classes)
        return out

    @classmethod
    def load(cls, run_dir: Path, settings: AblationSettings) -> "Ablation | None":
        """The ablation saved in `run_dir` with `settings` (its results.json entry), or None if never saved."""
        head = settings.head
        frame, summary = files.ABLATION.read(run_dir, head), files.ABLATION_SUMMARY.read(run_dir, head)
        if frame is None or summary is None:
            return None
        return cls(Path(run_dir).name, head, frame, summary, settings.options, 0, 0, float("nan"))


def _outcome(logits: np.ndarray, c: int) -> tuple[int, float]:
    """How many rows of class c's logits [n, classes] it wins, and the sum of its margins over them."""
    own = logits[:, c]
    others = np.delete(logits, c, axis=1)
    best_other = others.max(1) if others.shape[1] else np.full(len(own), -np.inf)
    return int((own > best_other).sum()), float((own - best_other).sum())


def _removed(z: np.ndarray, weight: np.ndarray, reference: np.ndarray, units: np.ndarray) -> np.ndarray:
    """The logits' change [n, classes] that removing `units` undoes: sum_u (z_u - reference_u) W[:, u]."""
    if not len(units):
        return np.zeros((len(z), weight.shape[0]))
    return (z[:, units] - reference[units]) @ weight[:, units].T


def _nested(z: np.ndarray, weight: np.ndarray, reference: np.ndarray, order: np.ndarray,
            ks: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(k, the part of the logits carried by order[:k]) for every k of `ks`, growing the set chunk by chunk."""
    total = np.zeros((len(z), weight.shape[0]))
    done = 0
    for k in ks:
        total = total + _removed(z, weight, reference, order[done:k])
        done = k
        yield k, total


@dataclass(frozen=True)
class Outcome:
    """One ablation of one class on this process's share of its samples: what was removed (`policy`, k units, the
    random draw, the view or category), how many samples it still wins and the sum of their margins."""

    policy: str
    k: int
    correct: int
    margin_sum: float
    draw: int = 0
    view: int | str = ""  # multi-view heads: the view dropped or kept ('' for the other policies)
    category: str = ""  # the categories removed together ('+'-joined), for drop-category


def _class_rows(z: np.ndarray, weight: np.ndarray, bias: np.ndarray, reference: np.ndarray, score: np.ndarray,
                c: int, options: AblationOptions, ks: list[int], views: np.ndarray | None,
                rng: np.random.Generator, steps: np.ndarray | None = None,
                categories: np.ndarray | None = None) -> list[Outcome]:
    """Every ablation of class c, on the codes z [n, units] of its own samples (`correct` and `margin_sum` over
    them, which shares of the samples add up)."""
    logits = z @ weight.T + bias
    everything = logits - _removed(z, weight, reference, np.arange(z.shape[1]))  # all units at the reference
    rows = []

    def add(policy: str, k: int, changed: np.ndarray, draw: int = 0, view: int | str = "", category: str = "") -> None:
        rows.append(Outcome(policy, k, *_outcome(changed, c), draw, view, category))

    add("none", 0, logits)
    order = np.argsort(-np.abs(score), kind="stable")
    for k, part in _nested(z, weight, reference, order, ks):
        add("top", k, logits - part)
        add("keep-top", k, everything + part)
    for k, part in _nested(z, weight, reference, order[::-1], ks):
        add("bottom", k, logits - part)
    for draw in range(options.draws):
        for k, part in _nested(z, weight, reference, rng.permutation(z.shape[1]), ks):
            add("random", k, logits - part, draw)
    if steps is not None:
        for policy, orders in (("top-steps", [step_order(score, steps)]),
                               ("random-steps", [rng.permutation(int(steps.max()) + 1) for _ in range(options.draws)])):
            for draw, order in enumerate(orders):
                for k in step_grid(int(steps.max()) + 1):
                    add(policy, k, logits - _removed(z, weight, reference, np.flatnonzero(np.isin(steps, order[:k]))),
                        draw)
    if views is not None:
        for v in np.unique(views):
            part = _removed(z, weight, reference, np.flatnonzero(views == v))
            add("drop-view", int((views == v).sum()), logits - part, view=int(v))
            add("keep-view", int((views == v).sum()), everything + part, view=int(v))
    for group in options.categories if categories is not None else ():
        units = np.flatnonzero(np.isin(categories, group))
        add("drop-category", len(units), logits - _removed(z, weight, reference, units), category="+".join(group))
    return rows


def ablation_frame(z: np.ndarray, labels: np.ndarray, head: Head, stats: CodeStats,
                   options: AblationOptions, categories: np.ndarray | None = None) -> pd.DataFrame:
    """Every ablation of every chosen class (columns: COLUMNS, plus `view` for multi-view heads and `category` with
    `categories`, each unit's concept category, for `options.categories`)."""
    weight, bias = head.weight, head.bias
    reference = stats.mean if options.mode == "mean" else np.zeros_like(stats.mean)
    score = scores(head, options.rank, stats)
    units = weight.shape[1]
    ks = options.grid(units)
    views = head.units["view"].to_numpy() if "view" in head.units.columns else None
    steps = head.units["step"].to_numpy() if "step" in head.units.columns else None
    rng = np.random.default_rng(options.seed)  # the same draws in every process: they consume it alike
    frames = []
    for name in options.classes or head.classes:
        c = head.class_index(name)
        rows = np.flatnonzero(labels == c)
        if not len(rows):
            raise NvError(f"class '{name}' has no sample in the validation split; nothing to ablate")
        own = np.asarray(z[rows[dist.my_share(len(rows))]], dtype=np.float64)  # this process's share
        part = pd.DataFrame([asdict(row) for row in _class_rows(own, weight, bias, reference, score[c], c, options,
                                                                 ks, views, rng, steps, categories)])
        part.insert(0, "samples", len(rows))
        part.insert(0, "ranking", options.rank)
        part.insert(0, "class", name)
        frames.append(part)
    frame = pd.concat(frames, ignore_index=True)
    sums = dist.sum_(torch.from_numpy(frame[["correct", "margin_sum"]].to_numpy(np.float64))).numpy()
    frame["accuracy"], frame["margin"] = sums[:, 0] / frame["samples"], sums[:, 1] / frame["samples"]
    columns = COLUMNS + ([] if views is None else ["view"]) + ([] if categories is None else ["category"])
    return frame[columns]


def category_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per class and group of categories removed (drop-category rows): its units, and the class's accuracy and margin
    before and after; columns: CATEGORY_COLUMNS (empty without such rows)."""
    if "category" not in frame.columns:
        return pd.DataFrame(columns=CATEGORY_COLUMNS)
    clean = frame[frame["policy"] == "none"].set_index("class")
    removed = frame[frame["policy"] == "drop-category"]
    return pd.DataFrame({"class": removed["class"], "category": removed["category"], "units": removed["k"],
                         "accuracy": clean.loc[removed["class"], "accuracy"].to_numpy(),
                         "removed_accuracy": removed["accuracy"],
                         "margin": clean.loc[removed["class"], "margin"].to_numpy(),
                         "removed_margin": removed["margin"]}, columns=CATEGORY_COLUMNS).reset_index(drop=True)


def ablation_summary(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per class: accuracy and margin without ablation, after removing the top k and a random k (mean, sd of
    the draws); a ratio is the top-k drop over the random-k drop (empty when the random drop is not positive)."""
    rows = []
    for name, part in frame.groupby("class", sort=False):
        clean = part[part["policy"] == "none"].iloc[0]
        top = part[(part["policy"] == "top") & (part["k"] == k)].iloc[0]
        random = part[(part["policy"] == "random") & (part["k"] == k)]
        rows.append(ClassCost(name, k, *_cost(clean, top, random, "accuracy"), *_cost(clean, top, random, "margin")))
    return pd.DataFrame([astuple(row) for row in rows], columns=SUMMARY_COLUMNS)


def _cost(clean: pd.Series, top: pd.Series, random: pd.DataFrame,
          what: str) -> tuple[float, float, float, float, float]:
    """Of measure `what`: its value without ablation, after the top k, after k random units (mean, sd of the draws),
    and the top-k drop over the random-k drop (NaN when the random drop is not positive)."""
    drawn = random[what].to_numpy(float)
    spread = np.ptp(drawn) > 0  # equal draws: their own value, not a mean with rounding error
    mean = drawn.mean() if spread else drawn[0]
    top_drop, random_drop = clean[what] - top[what], clean[what] - mean
    return (clean[what], top[what], mean, drawn.std(ddof=1) if spread and len(drawn) > 1 else 0.0,
            top_drop / random_drop if random_drop > 0 else float("nan"))


def ablate(run: Run, options: AblationOptions | None = None, *, head: str = files.DENSE_HEAD,
           compute: Compute = Compute(), trust_code: bool = False, progress: ProgressFn | None = None) -> Ablation:
    """Remove each class's top-, bottom- and random-ranked units and measure what the class loses.

    The validation codes are computed once (and cached in the run); every ablation is a product over them.

    Args:
        run: a trained NeuroView run.
        options: the ranking, removed code, k grid, random draws and summary k (`AblationOptions()` if None).
        head: `dense` or a sparse head's name.
        compute: where and how: device (auto: cuda > mps > cpu), inference batch size, loader workers.
        trust_code: allow importing the run's `package.module:function` architecture (runs its code).
        progress: called as `progress(phase, done, total)` while batches are computed.

    Returns:
        An `Ablation`: `frame` (every ablation; `category_summary(frame)` gives the drop-category rows per class),
        `summary` (per class: top vs random at the summary's k), `accuracy` of the whole split; `.save(run.dir)`
        writes ablation.csv, ablation_summary.csv, ablation.png.
    """
    options = options or AblationOptions()
    chosen = read_head(run, head)
    for name in options.classes or []:
        chosen.class_index(name)  # an unknown class fails before any data is read
    categories = _unit_categories(run, head, options.categories) if options.categories else None
    codes = split_codes(run, "val", device=compute.device, batch_size=compute.batch_size, workers=compute.workers,
                        trust_code=trust_code, progress=progress)
    return ablation(codes, chosen, options, name=run.name, categories=categories)


def ablation(codes: Codes, head: Head, options: AblationOptions, *, name: str,
             categories: np.ndarray | None = None) -> Ablation:
    """The ablations of `options` over `codes` (one split's) with `head`; `name` titles the figure; `categories`:
    each unit's concept category, for removing by category."""
    frame = ablation_frame(codes.z, codes.labels, head, CodeStats.of(codes), options, categories)
    units = head.weight.shape[1]
    accuracy = _split_accuracy(codes.z, codes.labels, head)
    return Ablation(name, head.name, frame, ablation_summary(frame, options.summary_k(units)), options, units,
                    len(codes.labels), accuracy)


def _unit_categories(run: Run, head: str, groups: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """Each unit's concept category from the run's dissection; a category asked for that no unit has is removed as
    zero units, with a warning (the same groups on two runs stay comparable; a misspelt name does not pass unseen)."""
    categories = labelled_categories(run, head)
    if categories is None:
        raise NvError(f"removing units by concept category needs a current dissection of '{run.dir}' "
                      "(dissect_run, saved into the run) first", param="categories")
    known = sorted(set(categories))
    for name in sorted({name for group in groups for name in group} - set(known)):
        warnings.warn(f"no unit of '{run.dir}' has concept category '{name}' (its units' categories: "
                      f"{', '.join(known)}); removing it removes no unit", stacklevel=2)
    return categories


def _split_accuracy(z: np.ndarray, labels: np.ndarray, head: Head) -> float:
    """The head's accuracy over the whole split, from the codes (in chunks: z may be memory-mapped; under torchrun
    each process counts its share)."""
    correct = 0
    mine = dist.my_share(len(z))
    for start in range(mine.start, mine.stop, 4096):
        stop = min(start + 4096, mine.stop)
        logits = np.asarray(z[start:stop], dtype=np.float64) @ head.weight.T + head.bias
        correct += int((logits.argmax(1) == labels[start:stop]).sum())
    return dist.all_sum([correct], torch.device("cpu"))[0] / max(1, len(z))
