"""NeuroView networks: every unit's code, reduced over space, feeds one wide linear classifier."""
from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd
import torch
import torch.fx as fx
from torch import Tensor, nn

from ..errors import NvError, choice_error
from .codes import reduce_code
from .spec import CODES, REDUCES
from .unit_table import units_frame
from .units import Layer, mutates_live_input, node_names, readable_names, relu_nodes, trace


def _tap_graph(network: nn.Module, tap: Callable[[fx.Node], tuple]) -> tuple[fx.GraphModule, list[str], list[str]]:
    """Trace `network` into a GraphModule returning, for every unit layer, `tap(pre-activation)`.

    `tap` gives (function, args) for the node that reads a pre-activation. Also returns each layer's node
    name and reader's label (read from the whole graph, before the head is cut off).
    """
    gm = trace(network)
    relus, _ = relu_nodes(gm)
    if not relus:
        raise NvError(
            f"{type(network).__name__} has no ReLU-type nonlinearity before its classifier head; "
            "NeuroView needs at least one (nn.ReLU, F.relu, torch.relu, ReLU6, LeakyReLU)"
        )
    names, labels = node_names(relus), readable_names(gm, relus)
    graph = gm.graph
    outputs = []
    for node in relus:
        pre = node.args[0] if node.args else node.kwargs["input"]
        # The tap runs just before the ReLU, so an in-place ReLU (kept for speed and memory) cannot
        # clobber what the tap reads, and autograd never needs the pre-activation itself afterwards.
        with graph.inserting_before(node):
            outputs.append(graph.call_function(*tap(pre)))
    output = next(n for n in graph.nodes if n.op == "output")
    output.args = (tuple(outputs),)
    modules = dict(gm.named_modules())
    graph.eliminate_dead_code(lambda n: n.is_impure() or mutates_live_input(n, modules))
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm, names, labels


class Normalize(nn.Module):
    """Per-channel (x - mean) / std; the first step of every nv model, so data stays in pixel space."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class UnitCodes(nn.Module):
    """A traced feature extractor that returns `z`: the reduced code of every unit, early layers first."""

    def __init__(self, network: nn.Module, code: str = "soft", reduce: str = "max",
                 input_shape: Sequence[int] = (3, 64, 64)) -> None:
        super().__init__()
        if code not in CODES:
            raise choice_error("code", code, CODES)
        if reduce not in REDUCES:
            raise choice_error("reduce", reduce, REDUCES)
        self.code, self.reduce, self.input_shape = code, reduce, tuple(input_shape)
        self.body, names, labels = _tap_graph(network, lambda pre: (reduce_code, (pre, code, reduce)))
        # Kept out of the module tree: the same parameters must not appear twice in state_dict.
        self.__dict__["_network"] = network
        self.__dict__["_maps"] = None
        self.layers = self._layers(names, labels)

    def _layers(self, names: list[str], labels: list[str]) -> list[Layer]:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                outs = self.body(torch.zeros(2, *self.input_shape))
        except RuntimeError as exc:
            raise NvError(
                f"the network cannot process inputs of shape {list(self.input_shape)} ({exc}); "
                "try a larger image_size",
                param="image_size",
            ) from exc
        finally:
            self.train(was_training)
        layers, offset = [], 0
        for index, (name, label, out) in enumerate(zip(names, labels, outs)):
            layers.append(Layer(index, name, int(out.shape[1]), offset, label))
            offset += int(out.shape[1])
        return layers

    @property
    def num_units(self) -> int:
        """Total number of units (the head's input width)."""
        return sum(layer.channels for layer in self.layers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(self.body(x), dim=1)

    def maps(self, x: Tensor) -> list[Tensor]:
        """Each layer's pre-activation maps [B, C, ...], for dissection.

        The code is a monotonic function of the pre-activation, so both select the same top-quantile
        regions; the pre-activation keeps them apart where a float32 sigmoid saturates at 1.
        """
        if self._maps is None:
            self.__dict__["_maps"], _, _ = _tap_graph(self._network, lambda pre: (torch.clone, (pre,)))
        return list(self._maps(x))


class FreezableBackbone(nn.Module):
    """A model whose `codes` can be frozen: no gradients, and batch-norm statistics fixed in train mode too."""

    codes: nn.Module

    def freeze(self, frozen: bool) -> None:
        """Freeze (or not) every unit-producing parameter; the head always trains."""
        self.freeze_backbone = frozen
        self.codes.requires_grad_(not frozen)

    def train(self, mode: bool = True) -> "FreezableBackbone":
        super().train(mode)
        if self.freeze_backbone:
            self.codes.eval()
        return self


class NeuroView(FreezableBackbone):
    """The NeuroView variant of a network: normalise, unit codes `z`, one linear classifier `W z + b`."""

    def __init__(self, network: nn.Module, num_classes: int, *, code: str = "soft", reduce: str = "max",
                 input_shape: Sequence[int] = (3, 64, 64), mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.25, 0.25, 0.25), freeze_backbone: bool = False) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.codes = UnitCodes(network, code, reduce, input_shape)
        self.head = nn.Linear(self.codes.num_units, num_classes)
        self.freeze(freeze_backbone)

    @property
    def layers(self) -> list[Layer]:
        return self.codes.layers

    def units(self) -> pd.DataFrame:
        """The unit table `unit,layer,node,label,channel`."""
        return units_frame(self.codes.layers)

    def features(self, x: Tensor) -> Tensor:
        """The head's input `z` for pixel-space inputs."""
        return self.codes(self.normalize(x))

    def unit_maps(self, x: Tensor) -> list[Tensor]:
        """Per-layer pre-activation maps for pixel-space inputs."""
        return self.codes.maps(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class Standard(nn.Module):
    """The unmodified network (the baseline of Table 1) behind the same normalisation."""

    def __init__(self, network: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        return self.network(self.normalize(x))
