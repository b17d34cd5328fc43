"""Building a model from its spec: the network by name, converted to NeuroView (single- or multi-view) or not."""
from __future__ import annotations

from torch import nn

from ..errors import NvError
from .archs import build_network, load_network_weights
from .multiview import MVCNN, MultiViewNeuroView
from .neuroview import NeuroView, Standard
from .pretrained import resolve
from .recurrent import RecurrentBaseline, RecurrentNeuroView
from .spec import ModelSpec


def build_model(spec: ModelSpec, *, load_weights: bool = True, trust_code: bool = False) -> nn.Module:
    """The model a spec describes: NeuroView or the standard network, single- or multi-view.

    Args:
        spec: the model as config.json records it (`ModelSpec.of(choice, ...)` or `run.spec`).
        load_weights: load `spec.weights` (a standard network's state_dict file, or torchvision's or timm's
            weights by name: `pretrained.resolve`) before conversion; off when a run's model.pt is loaded next.
        trust_code: allow importing a `package.module:function` architecture; a run read from disk must not
            run code that the user did not name.

    Returns:
        The freshly built `nn.Module`.
    """
    if spec.user_code and not trust_code:
        raise NvError(f"the architecture '{spec.arch}' is user code (package.module:function); nv imports it only "
                      "with trust_code (reading a run never runs code on its own)", param="trust_code")

    if spec.recurrent:
        return _recurrent(spec)

    def network() -> nn.Module:
        net = build_network(spec.arch, spec.num_classes, spec.input_shape[0], min(spec.input_shape[1:]))
        if load_weights and spec.weights:
            load_network_weights(net, resolve(spec.arch, spec.weights).path)
        return net

    if spec.multiview:
        if spec.baseline:
            return MVCNN(network(), spec.num_classes, input_shape=spec.input_shape, mean=spec.mean, std=spec.std)
        return MultiViewNeuroView(
            [network() for _ in range(1 if spec.shared_backbone else spec.views)], spec.num_classes,
            views=spec.views, code=spec.code, reduce=spec.reduce, input_shape=spec.input_shape, mean=spec.mean,
            std=spec.std, freeze_backbone=spec.freeze_backbone)
    if spec.baseline:
        return Standard(network(), spec.mean, spec.std)
    return NeuroView(network(), spec.num_classes, code=spec.code, reduce=spec.reduce, input_shape=spec.input_shape,
                     mean=spec.mean, std=spec.std, freeze_backbone=spec.freeze_backbone)


def _recurrent(spec: ModelSpec) -> nn.Module:
    """NeuroView-RNN or the standard RNN classifier for sequences [C, 1, T] or spectrograms [1, F, T] (docs/rnn.md)."""
    if spec.multiview or (spec.input_shape[1] != 1 and spec.input_shape[0] != 1):
        raise NvError(f"{spec.arch} takes sequences ([channels, 1, steps], e.g. datasets ucr or sequences) or "
                      f"spectrograms ([1, bands, frames]); the data gives inputs {list(spec.input_shape)}"
                      + (f" in {spec.views} views" if spec.multiview else ""), param="arch")
    shape = dict(input_shape=spec.input_shape, hidden_size=spec.hidden_size, layers=spec.rnn_layers,
                 bidirectional=spec.bidirectional, mean=spec.mean, std=spec.std)
    if spec.baseline:
        return RecurrentBaseline(spec.arch, spec.num_classes, **shape)
    return RecurrentNeuroView(spec.arch, spec.num_classes, time_units=spec.time_units, code=spec.code,
                              freeze_backbone=spec.freeze_backbone, **shape)
