"""ModelSpec: everything needed to rebuild a model, as plain JSON, and the function that builds it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from torch import nn

from .archs import build_network, load_network_weights
from .errors import NvError


@dataclass
class ModelSpec:
    """A model as recorded in config.json["model"]."""

    arch: str
    num_classes: int
    input_shape: list[int]  # [C, H, W] of one sample (one view for multi-view models)
    mean: list[float]
    std: list[float]
    code: str = "soft"
    reduce: str = "max"
    baseline: bool = False
    freeze_backbone: bool = False
    views: int = 0  # camera views per sample for multi-view data; 0 for single inputs
    shared_backbone: bool = False
    weights: str | None = None  # a standard network's state_dict loaded before conversion
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise NvError(f"config.json 'model' has unknown key(s) {unknown}; valid keys: {sorted(names)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise NvError(f"config.json 'model' is incomplete: {exc}") from exc

    @property
    def multiview(self) -> bool:
        """Whether each sample is a stack of camera views [V, C, H, W]."""
        return self.views > 0

    @property
    def kind(self) -> str:
        """'neuroview' or 'baseline', with a 'multiview-' prefix for multi-view models."""
        name = "baseline" if self.baseline else "neuroview"
        return f"multiview-{name}" if self.multiview else name


def _network(spec: ModelSpec, load_weights: bool) -> nn.Module:
    network = build_network(spec.arch, spec.num_classes, spec.input_shape[0], min(spec.input_shape[1:]))
    if load_weights and spec.weights:
        load_network_weights(network, spec.weights)
    return network


def build_model(spec: ModelSpec, load_weights: bool = True) -> nn.Module:
    """A model from its spec; `load_weights` loads `spec.weights` (off when a run's model.pt follows)."""
    from .neuroview import NeuroView, Standard

    if spec.multiview:
        from .multiview import MVCNN, MultiViewNeuroView

        if spec.baseline:
            return MVCNN(_network(spec, load_weights), spec.num_classes, input_shape=spec.input_shape,
                         mean=spec.mean, std=spec.std)
        count = 1 if spec.shared_backbone else spec.views
        return MultiViewNeuroView(
            [_network(spec, load_weights) for _ in range(count)], spec.num_classes, views=spec.views,
            code=spec.code, reduce=spec.reduce, input_shape=spec.input_shape, mean=spec.mean, std=spec.std,
            freeze_backbone=spec.freeze_backbone,
        )
    network = _network(spec, load_weights)
    if spec.baseline:
        return Standard(network, spec.mean, spec.std)
    return NeuroView(network, spec.num_classes, code=spec.code, reduce=spec.reduce, input_shape=spec.input_shape,
                     mean=spec.mean, std=spec.std, freeze_backbone=spec.freeze_backbone)
