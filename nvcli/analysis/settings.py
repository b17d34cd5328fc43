"""The typed settings of the analyses and of where they compute, each default declared once.

Importing this module imports neither torch nor pandas: the command line shows these defaults in its help,
and a script builds the same requests. Values are checked once, when a request is made; errors name the
Python parameter (`max_k`), and the command line maps parameters to its flags.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Literal, get_args

from ..errors import NvError, choice_error
from ..schema import JsonRecord
from ..training.config import DEVICES, Device

Rank = Literal["weight", "importance"]
RANKS: tuple[str, ...] = get_args(Rank)
DEFAULT_RANK: Rank = "weight"  # as faithful as importance in the ablations of docs/explanations.md; needs no data
AblationMode = Literal["mean", "zero"]
MODES: tuple[str, ...] = get_args(AblationMode)
Aggregate = Literal["balanced", "mean", "sum"]
AGGREGATES: tuple[str, ...] = get_args(Aggregate)
DEFAULT_AGGREGATE: Aggregate = "balanced"
ChannelChoice = Literal["red", "green", "blue", "all"]  # a colour channel to zero, or each in turn
DEFAULT_FRACTION = 0.01  # the ablation summary's k: this share of the units (at least one)
DEFAULT_MAX_FRACTION = 0.1  # the ablation grid's largest k by default
DEFAULT_QUANTILE = 0.005  # NetDissect's top quantile of activations
DEFAULT_IOU_THRESHOLD = 0.04  # NetDissect's IoU at which a unit is interpretable
DEFAULT_UNITS_PER_CLASS = 10
DEFAULT_GROUP_CORR = 0.99  # |corr| of standardised training codes at which units are near-copies (docs/sparsify.md)
CodeDtype = Literal["float32", "float16"]  # how a code store keeps codes (float16: half the disk, ~1e-3 precision)
CODE_DTYPES: tuple[str, ...] = get_args(CodeDtype)
Split = Literal["train", "val"]  # a run's splits as analyses read them (train without augmentation)
SPLITS: tuple[str, ...] = get_args(Split)
PathSolver = Literal["auto", "memory", "stream"]  # the sparse path's solver: in-memory FISTA or streaming SVRG
PATH_SOLVERS: tuple[str, ...] = get_args(PathSolver)
DEFAULT_PATH_SOLVER: PathSolver = "auto"
MEMORY_BUDGET = 2 << 30  # bytes of float32 training + validation codes up to which `auto` fits them in memory
MAX_PATH_STEPS = 1000  # each step of a sparse path keeps a classes x units head
MAX_COUNT = 100_000  # bound of counts (k, steps, draws): each costs memory or time, larger values are typos


def check_rank(rank: str) -> str:
    """`rank` if it is a known ranking, else a one-line error listing them."""
    if rank not in RANKS:
        raise choice_error("ranking (rank)", rank, RANKS)
    return rank


def _check(checks: list[tuple[bool, str, Any, str]]) -> None:
    """Raise for the first failed check (ok, parameter, value, what would be valid)."""
    for ok, name, value, valid in checks:
        if not ok:
            raise NvError(f"{name} {value} is not valid; use {valid}", param=name)


@dataclass(frozen=True)
class Compute:
    """Where and how an analysis computes: device, inference batch size, loader workers, CPU threads."""

    device: Device = "auto"
    batch_size: int = 128
    workers: int = 0
    threads: int | None = None  # None: torch's choice

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise choice_error("device", self.device, DEVICES)
        _check([(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1"),
                (self.workers >= 0, "workers", self.workers, "an integer >= 0"),
                (self.threads is None or self.threads >= 1, "threads", self.threads, "an integer >= 1")])

    def apply_threads(self) -> None:
        """Set torch's CPU threads, if chosen (first thing a command does)."""
        from ..training.devices import set_threads  # torch: only when a command runs

        set_threads(self.threads)

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Inside: under torchrun, this process is in the group and computes its share of the data (docs/scale.md)."""
        from ..training import distributed
        from ..training.devices import resolve_device

        with distributed.joined(resolve_device(self.device)):
            yield


@dataclass(frozen=True)
class AblationOptions(JsonRecord):
    """What `ablate` removes: ranking, reference code, the k grid, the random draws, the summary's k."""

    classes: tuple[str, ...] | None = None  # None: every class
    rank: Rank = DEFAULT_RANK
    mode: AblationMode = "mean"
    max_k: int | None = None  # None: DEFAULT_MAX_FRACTION of the units
    steps: int = 12
    draws: int = 10
    seed: int = 0
    fraction: float = DEFAULT_FRACTION
    categories: tuple[tuple[str, ...], ...] = ()  # groups of dissection categories, each group's units removed together
    OMITTED = ("categories",)  # recorded only when given

    def __post_init__(self) -> None:
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "categories", tuple(tuple(group) for group in self.categories))
        if any(not group or not all(group) for group in self.categories):
            raise NvError(f"categories {self.categories} is not valid; use groups of category names such as "
                          "(('color', 'texture'), ('object',))", param="categories")
        check_rank(self.rank)
        if self.mode not in MODES:
            raise choice_error("ablation mode (mode)", self.mode, MODES)
        _check([(self.max_k is None or 1 <= self.max_k <= MAX_COUNT, "max_k", self.max_k,
                 f"an integer in [1, {MAX_COUNT}]"),
                (1 <= self.steps <= MAX_COUNT, "steps", self.steps, f"an integer in [1, {MAX_COUNT}]"),
                (1 <= self.draws <= MAX_COUNT, "draws", self.draws, f"an integer in [1, {MAX_COUNT}]"),
                (0 <= self.seed <= 2**31 - 1, "seed", self.seed, "an integer in [0, 2**31 - 1]"),
                (0 < self.fraction < 1, "fraction", self.fraction, "a share of the units in (0, 1)")])

    def summary_k(self, units: int) -> int:
        """The k of the summary: `fraction` of the units, rounded up; refused above an explicit `max_k`."""
        k = max(1, math.ceil(self.fraction * units - 1e-9))
        if self.max_k is not None and k > self.max_k:
            raise NvError(f"fraction {self.fraction} of {units} units is k={k}, above the limit {self.max_k}; the "
                          f"summary's k must be ablated: raise max_k to at least {k} or lower the fraction",
                          param=("fraction", "max_k"))
        return min(k, units)

    def grid(self, units: int) -> list[int]:
        """The k values: about `steps` of them, spaced geometrically from 1 to the largest k (`max_k`, else
        DEFAULT_MAX_FRACTION of the units or the summary's k if larger), the summary's k included."""
        summary = self.summary_k(units)
        default = max(1, summary, round(DEFAULT_MAX_FRACTION * units))
        top = min(units, self.max_k if self.max_k is not None else default)
        ks = {1, top, summary}
        steps = min(self.steps, top)  # more steps than k values would only repeat them
        if steps > 1:
            ratio = top ** (1 / (steps - 1))
            ks |= {int(round(ratio**i)) for i in range(steps)}
        return sorted(k for k in ks if 1 <= k <= top)


@dataclass(frozen=True)
class DissectOptions:
    """How units are dissected and concepts mapped to classes (Network Dissection, then the head's weights)."""

    probe_count: int = 300  # images of the built-in probe set
    quantile: float = DEFAULT_QUANTILE
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    categories: tuple[str, ...] | None = None  # None: every category of the probe
    aggregate: Aggregate = DEFAULT_AGGREGATE
    rank: Rank = DEFAULT_RANK
    image_size: int | None = None  # None: the run's input size
    top: int = 5  # concepts per sign in the table and figures
    figure_classes: tuple[str, ...] | None = None  # classes drawn (None: all)

    def __post_init__(self) -> None:
        for name in ("categories", "figure_classes"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check_rank(self.rank)
        if self.aggregate not in AGGREGATES:
            raise choice_error("concept aggregation (aggregate)", self.aggregate, AGGREGATES)
        _check([(1 <= self.probe_count <= 1_000_000, "probe_count", self.probe_count, "an integer in [1, 1000000]"),
                (0 < self.quantile < 1, "quantile", self.quantile, "a number inside (0, 1); NetDissect's is 0.005"),
                (0 <= self.iou_threshold <= 1, "iou_threshold", self.iou_threshold,
                 "a number in [0, 1]; NetDissect's is 0.04"),
                (self.image_size is None or 16 <= self.image_size <= 4096, "image_size", self.image_size,
                 "an integer in [16, 4096]"),
                (self.top >= 1, "top", self.top, "an integer >= 1")])


@dataclass(frozen=True)
class BiasOptions:
    """What `shape_bias` reads: `per_class` built-in cue-conflict images per shape class."""

    per_class: int = 100

    def __post_init__(self) -> None:
        _check([(1 <= self.per_class <= MAX_COUNT, "per_class", self.per_class, f"an integer in [1, {MAX_COUNT}]")])


@dataclass(frozen=True)
class PathSettings(JsonRecord):
    """How a sparse head's path is fitted: the L1 share `alpha`, `steps` lambdas from lambda_max down to
    `ratio` * lambda_max, early stopping after `patience` steps without a better validation accuracy (None: the
    whole path), and units whose standardised training codes correlate with |r| >= `group_corr` made one feature
    (None: no grouping)."""

    alpha: float = 0.99
    steps: int = 50
    ratio: float = 0.01
    patience: int | None = 10
    group_corr: float | None = DEFAULT_GROUP_CORR

    def __post_init__(self) -> None:
        _check([(0 < self.alpha <= 1, "alpha", self.alpha, "the L1 share of the penalty in (0, 1] (1 = lasso, 0.99 = "
                 "the papers' elastic net)"),
                (2 <= self.steps <= MAX_PATH_STEPS, "steps", self.steps, f"an integer in [2, {MAX_PATH_STEPS}]"),
                (0 < self.ratio < 1, "ratio", self.ratio, "the last lambda as a fraction of lambda_max in (0, 1)"),
                (self.patience is None or self.patience >= 1, "patience", self.patience,
                 "an integer >= 1 (None: fit the whole path)"),
                (self.group_corr is None or 0 < self.group_corr <= 1, "group_corr", self.group_corr,
                 "the |correlation| at which units are one feature, in (0, 1] (0.99 groups near-copies), or None")])


# What each result records as its settings in results.json (`RunResult.settings`): the options that made it, by the
# keys nv has always written, so results saved before still compare equal.


@dataclass(frozen=True)
class HeadSettings(JsonRecord):
    """A result made with one head and nothing else to choose (evaluate, views)."""

    head: str


@dataclass(frozen=True)
class RankedSettings(JsonRecord):
    """A result of one head whose units are ranked by weight or importance (time steps)."""

    OMITTED = ("rank",)
    head: str
    rank: str = DEFAULT_RANK


@dataclass(frozen=True)
class ClassWeightsSettings(JsonRecord):
    """One class's weights of a head, ranked."""

    OMITTED = ("rank",)
    class_: str
    head: str
    rank: str = DEFAULT_RANK


@dataclass(frozen=True)
class HeadSummarySettings(JsonRecord):
    """A head's weights over every class: units per sign, ranked."""

    OMITTED = ("rank",)
    top: int
    head: str
    rank: str = DEFAULT_RANK


@dataclass(frozen=True)
class ExplainSettings(JsonRecord):
    """One input's explanation: the input, the class explained, the head, units per sign, the ranking."""

    OMITTED = ("rank",)
    source: str
    class_: str
    head: str
    top: int
    rank: str = DEFAULT_RANK


@dataclass(frozen=True)
class WhereSettings(JsonRecord):
    """Where maps of one input: the input, the class explained, the head."""

    source: str
    class_: str
    head: str


@dataclass(frozen=True)
class ClassMapSettings(JsonRecord):
    """Where maps over a class's validation images, with one head."""

    class_: str
    head: str


@dataclass(frozen=True)
class PerturbSettings(JsonRecord):
    """The colour channels zeroed, the validation sample shown, the head."""

    channels: tuple[str, ...]
    example: int
    head: str


@dataclass(frozen=True)
class AttributionSettings(JsonRecord):
    """The attribution methods and metrics compared, on how many images drawn with which seed, the head, and the
    steps of each deletion curve."""

    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    count: int
    seed: int
    head: str
    steps: int


@dataclass(frozen=True)
class BiasSettings(JsonRecord):
    """The head, the cue-conflict images per shape class, and where they came from."""

    head: str
    per_class: int
    source: str


@dataclass(frozen=True)
class AblationSettings(JsonRecord):
    """The head and what was removed (`AblationOptions`, its keys beside `head`)."""

    FLATTENED = ("options",)
    head: str
    options: AblationOptions


@dataclass(frozen=True)
class CompareSettings(JsonRecord):
    """The two sides compared (side -> run name, '@<head>' for a sparse head), the k of `top_share`, the ranking, and
    the run directories read."""

    OMITTED = ("rank", "dirs")
    runs: dict[str, str]
    top: int
    rank: str = DEFAULT_RANK
    dirs: dict[str, str] | None = None


@dataclass(frozen=True)
class Dissection(JsonRecord):
    """How a concept map was made: the probe (a name or folder), NetDissect's quantile and IoU threshold, the
    categories, the probe's image size, the head, and how units' concepts are weighed into classes'."""

    probe: str
    quantile: float
    iou_threshold: float
    categories: tuple[str, ...] | None
    image_size: int
    head: str
    rank: str = DEFAULT_RANK
    aggregate: str = DEFAULT_AGGREGATE


@dataclass(frozen=True)
class ConceptSettings(JsonRecord):
    """A concept map's dissection (its keys beside `top`) and the concepts per sign shown."""

    FLATTENED = ("dissection",)
    dissection: Dissection
    top: int
