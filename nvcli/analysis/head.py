"""A run's linear head `logits = W z + b` over its unit codes: the dense head trained with the network, or a
sparse head fitted later (`nv sparsify`, stored as heads/<name>.pt), with its unit table and class names.

Weights are handed out as float64 copies of the float32 parameters, so CSVs round-trip the exact stored values.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import NvError, choice_error
from ..fs import access
from ..models.unit_table import unit_columns
from ..runs import files
from ..runs.run import Run
from .sparse.groups import UnitGroups
from .sparse.record import SparseHeadRecord

DEFAULT_TOP = 10
OVERALL = "overall"  # the `class` value of rows that pool every class


@dataclass
class Head:
    """A linear classifier over a run's units: weight [classes, units], bias [classes], units and class names."""

    weight: np.ndarray
    bias: np.ndarray
    units: pd.DataFrame  # units.csv: unit, [view,] layer, node, channel
    classes: list[str]
    name: str = files.DENSE_HEAD
    groups: UnitGroups | None = None  # a sparse head's groups of near-copy units (weight on each representative)

    @classmethod
    def from_tensors(cls, weight: torch.Tensor, bias: torch.Tensor, units: pd.DataFrame, classes: list[str],
                     name: str = files.DENSE_HEAD, source: str = "", groups: UnitGroups | None = None) -> "Head":
        """A head from its weight [classes, units] and bias, checked against the unit table and class list and for
        finite values; `source` (the file it was read from) is named in the error; `groups`: its near-copy units."""
        where = f" in '{source}'" if source else ""
        weight = weight.detach().cpu().double().numpy()
        bias = bias.detach().cpu().double().numpy()
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise NvError(f"head '{name}'{where} has weight {list(weight.shape)} and bias {list(bias.shape)}; "
                          "expected [classes, units] and [classes]")
        if not np.array_equal(units["unit"].to_numpy(), np.arange(len(units))):
            raise NvError(f"units.csv does not list units 0..{len(units) - 1} in order; the run directory is "
                          "inconsistent")
        if len(units) != weight.shape[1]:
            raise NvError(f"head '{name}'{where} has {weight.shape[1]} inputs but the run has {len(units)} units "
                          "(units.csv); it is not a head of this run")
        if len(classes) != weight.shape[0]:
            raise NvError(f"head '{name}'{where} has {weight.shape[0]} outputs but the run has {len(classes)} class "
                          f"names ({', '.join(classes)}); it is not a head of this run")
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise NvError(f"head '{name}'{where} holds NaN or infinite weights; it cannot classify anything "
                          "(fit the sparse head again)")
        return cls(weight, bias, units.reset_index(drop=True), list(classes), name, groups)

    @classmethod
    def of(cls, model: nn.Module, classes: Sequence[str] | None = None) -> "Head":
        """A NeuroView model's own (dense) head over its units; its classes named `classes` (default 0..C-1)."""
        if not (isinstance(getattr(model, "head", None), nn.Linear) and hasattr(model, "units")):
            raise NvError(f"{type(model).__name__} is not a NeuroView model (a linear `head` over its `units()`); "
                          "convert the network first (NeuroView(network, num_classes))", param="model")
        count = model.head.out_features
        names = [str(i) for i in range(count)] if classes is None else list(classes)
        return cls.from_tensors(model.head.weight, model.head.bias, model.units(), names, files.DENSE_HEAD,
                                f"{type(model).__name__}.head")

    def class_index(self, name: str) -> int:
        """The row of class `name`; an unknown name lists the valid ones and suggests the closest."""
        if name not in self.classes:
            raise choice_error("class", name, self.classes)
        return self.classes.index(name)

    @property
    def unit_columns(self) -> list[str]:
        """The unit-table columns present in this run."""
        return unit_columns(self.units)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The head as an `nn.Linear` state_dict (float32)."""
        return {"weight": torch.from_numpy(self.weight).float(), "bias": torch.from_numpy(self.bias).float()}


def head_names(run: Run) -> list[str]:
    """Every head of a run: dense first, then the sparse heads saved in heads/."""
    folder = run.path(files.HEADS_DIR)
    return [files.DENSE_HEAD] + sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else [files.DENSE_HEAD]


def read_head(run: Run, head: str = files.DENSE_HEAD) -> Head:
    """One head of a NeuroView run (a baseline run is refused), checked against the run's units and classes.

    Args:
        run: a NeuroView run (`load_run`).
        head: `dense` (trained with the network) or a sparse head's name (`sparse_head`).

    Returns:
        A `Head`: `weight` [classes, units], `bias`, `units` (units.csv), `classes`, and a sparse head's
        `groups` of near-copy units.
    """
    run.require_neuroview()
    if files.is_dense(head):
        name, keys = files.MODEL, ("head.weight", "head.bias")
        run.head_init()  # read with the head it started: a damaged head_init.pt stops a command before it writes
    else:
        names = head_names(run)
        if head not in names:
            raise choice_error(f"head of run '{run.name}'", head, names)
        name, keys = files.SPARSE_HEAD.name(name=head), ("weight", "bias")
    state = run.tensors(name)
    if not all(k in state for k in keys):
        raise NvError(f"'{run.dir / name}' has no {keys[0]}/{keys[1]} for head '{head}'; it is not a NeuroView head")
    units = run.units()
    groups = None if files.is_dense(head) else _sparse_groups(run, head, len(units))
    return Head.from_tensors(state[keys[0]], state[keys[1]], units, run.classes, head, str(run.dir / name), groups)


def _sparse_record(run: Run, head: str) -> SparseHeadRecord:
    """heads/<name>.json of sparse head `head`, checked to describe this run's head: fitted on the run's present
    model.pt (the record's `made_from`) and saved with the weights in heads/<name>.pt (their digest)."""
    name = files.SPARSE_HEAD_INFO.name(name=head)
    where = run.dir / name
    if not access.is_file(run.dir, name):
        raise NvError(f"head '{head}' of run '{run.name}' has no record '{where}' of what it was fitted on; fit it "
                      "again (sparsify)")
    try:
        values = json.loads(access.read_text(run.dir, name))
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise NvError(f"'{where}' is not valid JSON ({str(exc)[:80]}); fit head '{head}' again (sparsify)") from exc
    sources = values.get("made_from") if isinstance(values, dict) else None
    if not isinstance(sources, dict) or not isinstance(sources.get(files.MODEL), str):
        raise NvError(f"'{where}' does not record the model.pt head '{head}' was fitted on (fitted before nv 0.5, or "
                      "edited); fit it again (sparsify)")
    record = SparseHeadRecord.from_json(values, f"'{where}'")
    fitted_on, present = sources[files.MODEL], run.sha256(files.MODEL)
    if fitted_on != present:
        raise NvError(f"head '{head}' was fitted on other weights than run '{run.name}' has: '{where}' records "
                      f"model.pt {fitted_on[:12]}, the run's model.pt is {present[:12]}; fit it again (sparsify)")
    weights = files.SPARSE_HEAD.name(name=head)
    if record.weights_sha256 != run.sha256(weights):
        raise NvError(f"'{run.dir / weights}' is not the head saved with '{where}' (its SHA-256 differs from the "
                      f"recorded {str(record.weights_sha256)[:12]}); fit head '{head}' again (sparsify)")
    return record


def _sparse_groups(run: Run, head: str, units: int) -> UnitGroups | None:
    """The groups of near-copy units recorded with sparse head `head` (None for a head stored without them)."""
    members = _sparse_record(run, head).group_members
    try:
        return UnitGroups.from_record(units, [list(group) for group in members])
    except (ValueError, TypeError) as exc:
        where = run.dir / files.SPARSE_HEAD_INFO.name(name=head)
        raise NvError(f"cannot read the groups of head '{head}' from '{where}': {exc}") from exc


def head_model(run: Run, head: str, device: torch.device, *, trust_code: bool = False) -> nn.Module:
    """The run's network with `head` as its classifier: the dense head is its own; a sparse head is read from heads/."""
    model = run.model(device, trust_code=trust_code)
    return model if files.is_dense(head) else with_head(model, read_head(run, head))


def with_head(model: nn.Module, head: Head) -> nn.Module:
    """`model` with its linear head replaced by `head` (the dense head is the model's own)."""
    if not files.is_dense(head.name):
        model.head.load_state_dict({k: v.to(model.head.weight.device) for k, v in head.state_dict().items()})
    return model


def ranks(values: np.ndarray) -> np.ndarray:
    """1 for the largest value, 2 for the next, ...; ties keep unit order."""
    order = np.argsort(-values, kind="stable")
    out = np.empty(len(values), dtype=np.int64)
    out[order] = np.arange(1, len(values) + 1)
    return out


def extremes(frame: pd.DataFrame, column: str, k: int) -> pd.DataFrame:
    """The `k` rows with the largest positive values of `column`, then the `k` most negative ones."""
    ordered = frame.sort_values(column, ascending=False, kind="stable")
    top = ordered[ordered[column] > 0].head(k)
    bottom = ordered[ordered[column] < 0].tail(k).iloc[::-1]
    return pd.concat([top, bottom], ignore_index=True)
