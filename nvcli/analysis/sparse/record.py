"""heads/<name>.json as typed records: the rule that chose a sparse head, how sparse and accurate it is, per class and
layer, and what it was fitted on. Torch-free, so the report reads it without loading torch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ...errors import NvError
from ...schema import JsonRecord, Measure
from ..settings import DEFAULT_UNITS_PER_CLASS, PathSettings

if TYPE_CHECKING:
    from .solver import PathResult


@dataclass(frozen=True)
class Selection(JsonRecord):
    """How the head is chosen: at most `units_per_class` units for every class (each class's first K groups along
    the path, refitted; budget.py), or the sparsest step whose validation accuracy is at most `max_drop` below the
    dense head's."""

    units_per_class: int | None = DEFAULT_UNITS_PER_CLASS
    max_drop: float | None = None

    def __post_init__(self) -> None:
        if (self.units_per_class is None) == (self.max_drop is None):
            raise NvError("give one rule for choosing the head, units_per_class K or max_drop X, not both",
                          param=("units_per_class", "max_drop"))
        if self.units_per_class is not None and self.units_per_class < 1:
            raise NvError(f"units_per_class {self.units_per_class} is not valid; give an integer >= 1",
                          param="units_per_class")
        if self.max_drop is not None and not 0 <= self.max_drop < 1:
            raise NvError(f"max_drop {self.max_drop} is not valid; give the accuracy a head may lose as a fraction "
                          "in [0, 1) (0.03 = 3 points)", param="max_drop")

    def to_json(self) -> dict[str, object]:
        """The rule as recorded in results.json and heads/<name>.json: its one key."""
        return {"units_per_class": self.units_per_class} if self.max_drop is None else {"max_drop": self.max_drop}

    @classmethod
    def from_json(cls, values: Mapping[str, Any], where: str) -> Selection:
        """The rule `to_json` wrote (one key; the other is unset, not its default)."""
        return super().from_json({"units_per_class": None, **values} if isinstance(values, Mapping) else values,
                                 where)

    def choose(self, path: PathResult, dense_acc: float) -> int:
        """The index of the step `max_drop` picks (steps are ordered from the sparsest, lambda_max, to the densest)."""
        if self.max_drop is None:
            raise ValueError("a budget of units per class is not one step of the path; see budget.class_budget")
        steps = path.steps
        floor = dense_acc - self.max_drop
        # A head without units (the first step) predicts the class prior: it explains nothing, whatever the drop.
        within = [i for i, s in enumerate(steps) if s.units > 0 and s.val_acc >= floor - 1e-12]
        if not within:
            best = steps[path.best]
            raise NvError(f"no head with units on the path is within max_drop {self.max_drop} of the dense head's "
                          f"validation accuracy {dense_acc:.4f}: the best reaches {best.val_acc:.4f} with "
                          f"{best.nonzero_mean:.1f} units per class; allow a larger drop, or fit further with a "
                          "smaller ratio or no patience", param=("max_drop", "ratio", "patience"))
        return within[0]


@dataclass(frozen=True)
class KeptUnit(JsonRecord):
    """A unit a sparse head keeps for a class: its position, layer label, weight and how many near-copies it stands
    for."""

    unit: int
    layer: str
    weight: float
    group_size: int


@dataclass(frozen=True)
class ClassRecord(JsonRecord):
    """One class in heads/<name>.json: its units, the path step its last one entered (budget rule), its validation
    accuracy with this head and the dense one, and the units it keeps."""

    class_: str
    units: int
    entered: int | None
    val_acc: Measure
    dense_val_acc: Measure
    kept: tuple[KeptUnit, ...]


@dataclass(frozen=True)
class LayerKept(JsonRecord):
    """How many units a sparse head keeps from one layer (of one view in multi-view runs), with the layer's key
    columns in units.csv."""

    OMITTED = ("view", "label")
    layer: int
    node: str
    units: int
    view: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class Refit(JsonRecord):
    """The unpenalised refit of a sparse head: iterations (epochs when streaming), its limit and tolerance, whether
    it converged, and the penalised head's accuracies before it."""

    iterations: int
    max_iterations: int
    tol: float
    converged: bool
    penalised_train_acc: Measure
    penalised_val_acc: Measure


@dataclass(frozen=True)
class SparseHeadRecord(JsonRecord):
    """heads/<name>.json: how a sparse head was chosen on its path, how sparse and accurate it is, per class and
    layer, its near-copy groups, and (once saved) what it was fitted on and its weights' digest."""

    OMITTED = ("units_per_view", "made_from", "weights_sha256")
    name: str
    run: str
    step: int
    lambda_: float
    lambda_max: float
    alpha: float
    rule: Selection
    units_per_class_mean: float
    units_per_class_max: int
    units: int
    train_acc: Measure
    val_acc: Measure
    val_acc_min: Measure
    dense_train_acc: Measure
    dense_val_acc: Measure
    per_class: tuple[ClassRecord, ...]
    finetune: Refit | None
    kept: tuple[LayerKept, ...]
    group_corr: float | None
    groups: int
    group_members: tuple[tuple[int | float, ...], ...]  # UnitGroups.as_record
    solver: str
    units_per_view: dict[str, int] | None = None  # multi-view heads
    made_from: dict[str, str] | None = None  # provenance.made_from, set when saved
    weights_sha256: str | None = None  # the SHA-256 of heads/<name>.pt, set when written


@dataclass(frozen=True)
class SparseHeadSettings(JsonRecord):
    """A sparse head's path settings (their keys beside the others), its rule (`Selection.to_json`) and whether it
    was refitted without penalty."""

    FLATTENED = ("path",)
    path: PathSettings
    rule: Selection
    finetune: bool
