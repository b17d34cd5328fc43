"""Unit discovery: every call of a ReLU-type nonlinearity in a network's feature extractor.

The network is traced with torch.fx; a node counts by what it calls (an `nn.ReLU` module,
`F.relu`, `torch.relu`, `Tensor.relu`, ...), never by its name, and a module called twice
counts twice. The feature extractor is everything before the original head, which starts at
the first flatten or linear call in execution order.
"""
from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import NvError

RELU_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.leaky_relu, F.leaky_relu_}
RELU_METHODS = {"relu", "relu_"}
HEAD_MODULES = (nn.Flatten, nn.Linear)
HEAD_FUNCTIONS = {torch.flatten, F.linear}
HEAD_METHODS = {"flatten"}
CONV_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
ADD_CALLS = {operator.add, operator.iadd, torch.add, "add", "add_"}  # a residual sum: its first input is the branch
STOP_CALLS = {torch.cat, torch.stack, "cat"}  # a concatenation joins several layers: no single convolution to name
_INPLACE_FUNCTIONS = {F.relu_, torch.relu_, F.leaky_relu_}
_NAME = "nv_node_name"  # node.meta key of the name `trace` gives a node


@dataclass(frozen=True)
class Layer:
    """One nonlinearity call: its index in execution order, graph name, width, unit offset and a reader's label."""

    index: int
    node: str
    channels: int
    offset: int
    label: str = ""  # e.g. conv3, layer2.1 conv2 (see `readable_names`); the node name when none was found

    @property
    def units(self) -> range:
        """The global unit indices of this layer's channels."""
        return range(self.offset, self.offset + self.channels)


def trace(model: nn.Module) -> fx.GraphModule:
    """Trace `model` into an fx graph, every node named as torchvision's feature extraction names it (`node_names`),
    with a clear error when its Python control flow defeats tracing."""
    from torchvision.models.feature_extraction import NodePathTracer

    tracer = NodePathTracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises many types; all mean "this model cannot be traced"
        raise NvError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {exc}); "
            "units are found by tracing, so the model's forward must be traceable"
        ) from exc
    for node, name in tracer.node_to_qualname.items():
        node.meta[_NAME] = name
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _modules(gm: fx.GraphModule) -> dict[str, nn.Module]:
    return dict(gm.named_modules())


def _calls(node: fx.Node, modules: dict[str, nn.Module], kinds: tuple[tuple, set, set]) -> bool:
    """Whether `node` calls one of (module types, functions, method names)."""
    module_types, functions, methods = kinds
    if node.op == "call_module":
        return isinstance(modules[node.target], module_types)
    if node.op == "call_function":
        return node.target in functions
    return node.op == "call_method" and node.target in methods


def is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether `node` calls a ReLU-type nonlinearity."""
    return _calls(node, modules, (RELU_MODULES, RELU_FUNCTIONS, RELU_METHODS))


def is_head_start(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether `node` is the first operation of a classifier head (flatten or linear)."""
    return _calls(node, modules, (HEAD_MODULES, HEAD_FUNCTIONS, HEAD_METHODS))


def relu_nodes(gm: fx.GraphModule) -> tuple[list[fx.Node], fx.Node | None]:
    """The ReLU calls of the feature extractor in execution order, and the node where the head starts."""
    modules = _modules(gm)
    found: list[fx.Node] = []
    for node in gm.graph.nodes:
        if is_head_start(node, modules):
            return found, node
        if is_relu(node, modules):
            found.append(node)
    return found, None


def network_trunk(network: nn.Module) -> fx.GraphModule:
    """`network` up to its classifier head (the input of its first flatten or linear call)."""
    gm = trace(network)
    _, head = relu_nodes(gm)
    if head is None:
        return gm
    output = next(n for n in gm.graph.nodes if n.op == "output")
    output.args = (head.args[0],)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm


def node_names(nodes: list[fx.Node]) -> list[str]:
    """Each node's name in torchvision's feature extraction (`get_graph_node_names`, `create_feature_extractor`):
    the module path, with `_N` for the N-th repeated call."""
    return [node.meta[_NAME] for node in nodes]


def _conv_names(gm: fx.GraphModule, modules: dict[str, nn.Module]) -> dict[str, str]:
    """A reader's name for every convolution module called: `conv<k>` (k-th convolution called) for those in
    a numbered container (AlexNet's and VGG's `features.3`), else its path with a top-level `features.` dropped
    and the last part set off by a space (`layer2.1 conv2`, `denseblock2.denselayer3 conv1`)."""
    names: dict[str, str] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], CONV_MODULES) and node.target not in names:
            path = str(node.target).split(".")
            if path[-1].isdigit():
                names[node.target] = f"conv{len(names) + 1}"
            else:
                if path[0] == "features" and len(path) > 1:
                    path = path[1:]
                names[node.target] = " ".join(filter(None, (".".join(path[:-1]), path[-1])))
    return names


def _target(node: fx.Node) -> object:
    return node.target if node.op in ("call_function", "call_method") else None


def _follows(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str | None, str | None]:
    """The convolution whose output reaches ReLU `node` through single-input steps (normalisation, pooling,
    the branch of a residual sum), and the first module passed on the way."""
    first_module = None
    current = node.args[0] if node.args else node.kwargs.get("input")
    while isinstance(current, fx.Node) and current.op != "placeholder" and not is_relu(current, modules):
        if current.op == "call_module":
            if isinstance(modules[current.target], CONV_MODULES):
                return str(current.target), first_module
            first_module = first_module or str(current.target)
        elif _target(current) in STOP_CALLS:
            break
        current = current.args[0] if current.args else None
    return None, first_module


def _feeds(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The convolution that ReLU `node` alone feeds through single-input steps (pre-activation designs: DenseNet)."""
    current = node
    while len(current.users) == 1:
        current = next(iter(current.users))
        if is_relu(current, modules) or is_head_start(current, modules) or _target(current) in STOP_CALLS | ADD_CALLS:
            return None
        if current.op == "call_module" and isinstance(modules[current.target], CONV_MODULES):
            return str(current.target)
    return None


def readable_names(gm: fx.GraphModule, nodes: list[fx.Node]) -> list[str]:
    """Names a reader knows for the unit layers `nodes` (ReLU calls), unique: the convolution each follows
    (`conv3`, `layer2.1 conv2`) or, in a pre-activation network (DenseNet: some ReLU follows no convolution
    but feeds one), the one it feeds (`denseblock2.denselayer3 conv1`, `transition1 conv`); else
    `<module before it> relu`, else the node name."""
    modules = _modules(gm)
    convs = _conv_names(gm, modules)
    follows = [_follows(node, modules) for node in nodes]
    feeds = [_feeds(node, modules) for node in nodes]
    pre_activation = any(before is None and fed is not None for (before, _), fed in zip(follows, feeds))
    labels = []
    for name, (before, passed), fed in zip(node_names(nodes), follows, feeds):
        conv = (fed or before) if pre_activation else (before or fed)
        if conv is not None:
            labels.append(convs[conv])
        elif passed is not None:
            labels.append(f"{passed.removeprefix('features.')} relu")
        else:
            labels.append(name)
    seen: Counter[str] = Counter()
    unique = []
    for label in labels:
        seen[label] += 1
        unique.append(label if labels.count(label) == 1 else f"{label} ({seen[label]})")
    return unique


def is_inplace(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether a ReLU-type node overwrites its input."""
    if node.op == "call_module":
        return bool(getattr(modules[node.target], "inplace", False))
    if node.op == "call_function":
        return node.target in _INPLACE_FUNCTIONS or bool(node.kwargs.get("inplace"))
    return node.op == "call_method" and node.target == "relu_"


def mutates_live_input(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """An in-place ReLU whose input is read again later: its side effect matters even if its result is unused."""
    if not is_relu(node, modules) or not is_inplace(node, modules) or not node.args:
        return False
    source = node.args[0]
    return isinstance(source, fx.Node) and any(user is not node and node < user for user in source.users)
