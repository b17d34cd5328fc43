"""Multi-view models: NeuroView over all views' units (paper case study 3), the MVCNN baseline, view analysis.

`MultiViewNeuroView` runs one feature extractor per view (or one shared by all), concatenates every
view's unit codes into one `z` and classifies with one linear head, so each class's weights say how
much it relies on each view (Figure 5). `MVCNN` is the baseline of Table 1: a shared trunk,
element-wise max pooling across views, a linear classifier.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from ..errors import NvError
from .neuroview import FreezableBackbone, Normalize, UnitCodes
from .unit_table import units_frame
from .units import Layer, network_trunk

Networks = Callable[[], nn.Module] | Sequence[nn.Module] | nn.Module


def _check_views(x: Tensor, views: int | None) -> None:
    if x.dim() != 5 or (views is not None and x.shape[1] != views):
        want = f"[batch, {views if views is not None else 'views'}, channels, height, width]"
        raise NvError(f"a multi-view model takes inputs {want}; got {list(x.shape)}")


def _networks(networks: Networks, views: int, shared_backbone: bool) -> list[nn.Module]:
    if isinstance(networks, nn.Module) and not isinstance(networks, nn.ModuleList):
        networks = [networks]
    elif not isinstance(networks, (Sequence, nn.ModuleList)):
        return [networks() for _ in range(1 if shared_backbone else views)]
    networks = list(networks)
    if len(networks) not in (1, views) or (shared_backbone and len(networks) != 1):
        raise ValueError(f"give one network (shared backbone) or one per view ({views}); got {len(networks)}")
    return networks


class MultiViewNeuroView(FreezableBackbone):
    """NeuroView for multi-view inputs [B, V, C, H, W]: every unit of every view feeds one linear head.

    `networks` is a factory (called once per view, or once with `shared_backbone`), one network (shared)
    or one network per view. Units are numbered view-major: view 0's units, then view 1's, ...; a shared
    backbone's units appear once per view, so the head always has one weight per (view, unit).
    """

    def __init__(self, networks: Networks, num_classes: int, *, views: int = 12, shared_backbone: bool = False,
                 code: str = "soft", reduce: str = "max", input_shape: Sequence[int] = (3, 64, 64),
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25),
                 freeze_backbone: bool = False) -> None:
        super().__init__()
        nets = _networks(networks, views, shared_backbone)
        self.views = views
        self.shared_backbone = len(nets) == 1
        self.normalize = Normalize(mean, std)
        self.codes = nn.ModuleList(UnitCodes(net, code, reduce, input_shape) for net in nets)
        self._view_layers: list[list[Layer]] = []
        offset = 0
        for v in range(views):
            extractor = self._extractor(v)
            self._view_layers.append([replace(layer, offset=layer.offset + offset) for layer in extractor.layers])
            offset += extractor.num_units
        self.head = nn.Linear(offset, num_classes)
        self.freeze(freeze_backbone)

    def _extractor(self, view: int) -> UnitCodes:
        return self.codes[0 if self.shared_backbone else view]

    @property
    def num_units(self) -> int:
        """The head's input width: the units of all views."""
        return self.head.in_features

    @property
    def layers(self) -> list[Layer]:
        """Every (view, layer) in unit order (view-major) with global offsets."""
        return [layer for view in self._view_layers for layer in view]

    def units(self) -> pd.DataFrame:
        """The unit table `unit,view,layer,node,label,channel`, view-major."""
        return pd.concat([units_frame(layers, view=v) for v, layers in enumerate(self._view_layers)],
                         ignore_index=True)

    def _normalized(self, x: Tensor) -> Tensor:
        _check_views(x, self.views)
        return self.normalize(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def features(self, x: Tensor) -> Tensor:
        """The head's input `z` [B, views * units] for pixel-space inputs [B, V, C, H, W]."""
        x = self._normalized(x)
        if self.shared_backbone:
            return self.codes[0](x.flatten(0, 1)).view(x.shape[0], -1)
        return torch.cat([codes(x[:, v]) for v, codes in enumerate(self.codes)], dim=1)

    def unit_maps(self, x: Tensor) -> list[Tensor]:
        """Pre-activation maps, one tensor per entry of `layers` (view-major)."""
        x = self._normalized(x)
        return [m for v in range(self.views) for m in self._extractor(v).maps(x[:, v])]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class MVCNN(nn.Module):
    """The MVCNN baseline: a shared trunk per view, element-wise max over views, one linear classifier."""

    def __init__(self, network: nn.Module, num_classes: int, *, input_shape: Sequence[int] = (3, 64, 64),
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25)) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.trunk = network_trunk(network)
        was_training = self.trunk.training
        self.trunk.eval()
        try:
            with torch.no_grad():
                width = self.trunk(torch.zeros(2, *input_shape)).flatten(1).shape[1]
        except RuntimeError as exc:
            raise NvError(f"the network cannot process inputs of shape {list(input_shape)} ({exc}); "
                          "try a larger image_size", param="image_size") from exc
        finally:
            self.trunk.train(was_training)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        _check_views(x, None)
        features = self.trunk(self.normalize(x.flatten(0, 1)))
        return self.classifier(features.unflatten(0, x.shape[:2]).amax(dim=1).flatten(1))
