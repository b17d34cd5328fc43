"""Standard networks by name: torchvision's, timm's, a small fast CNN, or a user's own factory."""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Callable

import torch
from torch import nn

from ..errors import NvError, choice_error, describe
from ..fs.atomic import load_torch
from .spec import TIMM, TORCHVISION, arch_error


class SmallCNN(nn.Module):
    """A three-block CNN (16, 32, 64 units) that trains in seconds on CPU; for tests and quick looks."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        w = width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(in_channels, w), nn.MaxPool2d(2),
            *block(w, 2 * w), nn.MaxPool2d(2),
            *block(2 * w, 4 * w),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


BUILTIN: dict[str, Callable[..., nn.Module]] = {"smallcnn": SmallCNN}  # the names are spec.BUILTIN_ARCHS
# torchvision's DenseNet files keep the old names 'denselayer1.norm.1.weight' for 'norm1'; torchvision renames them
# as it loads them, and so does nv.
_OLD_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                               r"([12]\.(?:weight|bias|running_mean|running_var))$")


def timm_module(arch: str) -> ModuleType:
    """The timm package, or an NvError naming the extra that installs it."""
    try:
        import timm
    except ImportError as exc:
        raise NvError(f"arch {arch} is a timm model and timm is not installed; install the extra: "
                      "pip install 'nvcli[timm]'", param="arch") from exc
    return timm


def timm_name(arch: str) -> str:
    """The timm model name of `timm/<model>`, checked against timm's registry."""
    timm, name = timm_module(arch), arch.removeprefix(TIMM)
    if not timm.is_model(name):
        raise choice_error("timm model", name, timm.list_models(), param="arch")
    return name


def _factory(arch: str) -> Callable[..., nn.Module]:
    if arch.startswith(TIMM):
        name = timm_name(arch)
        return lambda num_classes: timm_module(arch).create_model(name, pretrained=False, num_classes=num_classes)
    if ":" in arch:
        module_name, _, fn_name = arch.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise NvError(f"cannot import '{module_name}' for arch {arch}: {exc}", param="arch") from exc
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            raise NvError(f"'{module_name}' has no callable '{fn_name}' (from arch {arch})", param="arch")
        return fn
    if arch in BUILTIN:
        return BUILTIN[arch]
    if arch in TORCHVISION:
        import torchvision.models

        return getattr(torchvision.models, arch)
    raise arch_error(arch)


def first_conv(network: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """The first Conv2d in module order, with its parent and attribute name (to replace it)."""
    for name, module in network.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            return network.get_submodule(parent_name), attr, module
    raise NvError(f"{type(network).__name__} has no Conv2d layer to take the input")


def adapt_input_channels(network: nn.Module, in_channels: int) -> None:
    """Give the first convolution `in_channels` inputs (1 for spectrograms), keeping every other setting."""
    parent, attr, conv = first_conv(network)
    if conv.in_channels == in_channels:
        return
    setattr(parent, attr, nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
    ))


def adapt_small_inputs(arch: str, network: nn.Module, size: int) -> None:
    """Let AlexNet run on images below 63 px: its 3x3 max-pools get padding 1 (no parameters change)."""
    if arch == "alexnet" and size < 63:
        for module in network.features:
            if isinstance(module, nn.MaxPool2d):
                module.padding = 1


def build_network(arch: str, num_classes: int, in_channels: int = 3, input_size: int = 64) -> nn.Module:
    """A freshly initialised standard network (no pretrained weights are downloaded).

    Args:
        arch: alexnet, vgg11..19[_bn], resnet18/34/50, densenet121, smallcnn, `timm/<model>` (timm's registry),
            or `package.module:function` (imports and calls it: your code).
        num_classes: outputs of the classifier.
        in_channels: input channels (the first convolution is adapted when not 3).
        input_size: the input side in pixels, for networks whose classifier depends on it.

    Returns:
        The `nn.Module`; `NeuroView(network, num_classes)` turns it into its NeuroView variant.
    """
    fn = _factory(arch)
    params = inspect.signature(fn).parameters
    kwargs = {"num_classes": num_classes} if "num_classes" in params or ":" not in arch else {}
    if arch in TORCHVISION:
        kwargs["weights"] = None
    network = fn(**kwargs)
    if not isinstance(network, nn.Module):
        raise NvError(f"arch {arch} returned {type(network).__name__}, not a torch.nn.Module", param="arch")
    adapt_input_channels(network, in_channels)
    adapt_small_inputs(arch, network, input_size)
    return network


def load_network_weights(network: nn.Module, path: str | Path) -> list[str]:
    """Load a standard network's state_dict from `path`; head tensors of another shape are skipped.

    A 3-channel first convolution is averaged over colour for a 1-channel network. Returns the names of
    skipped tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise NvError(f"weights file '{path}' does not exist", param="weights")
    state = _read_weights(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise NvError(f"weights file '{path}' does not hold a state_dict")
    state = {_OLD_DENSENET_KEY.sub(r"\1\2", k.removeprefix("module.")): v for k, v in state.items()}
    own = network.state_dict()
    _, _, conv = first_conv(network)
    conv_key = next(k for k, v in network.named_parameters() if v is conv.weight)
    if conv_key in state and state[conv_key].shape[1] != conv.in_channels and conv.in_channels == 1:
        state[conv_key] = state[conv_key].mean(dim=1, keepdim=True)
    # Files saved before BatchNorm counted its batches (torchvision's own) lack num_batches_tracked: it stays 0.
    missing = [k for k in own if k not in state and not k.endswith(".num_batches_tracked")]
    if len(missing) == len(own):
        raise NvError(f"weights file '{path}' shares no tensor names with this architecture (e.g. '{next(iter(own))}')")
    linear = {name for name, m in network.named_modules() if isinstance(m, nn.Linear)}
    skipped = [k for k in own if k in state and state[k].shape != own[k].shape]
    misfits = missing + [k for k in skipped if k.rpartition(".")[0] not in linear]
    if misfits:
        raise NvError(
            f"weights file '{path}' does not fit this architecture: {len(misfits)} tensor(s) "
            f"missing or of another shape, e.g. '{misfits[0]}'"
        )
    network.load_state_dict({k: v for k, v in state.items() if k in own and k not in skipped}, strict=False)
    return skipped


def _read_weights(path: Path) -> object:
    """A weights file's content, read without running code: safetensors (timm's hub files) or a torch file."""
    if path.suffix != ".safetensors":
        return load_torch(path, f"cannot read weights file '{path}' as a state_dict")
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise NvError(f"weights file '{path}' is a safetensors file and safetensors is not installed; install it "
                      "(pip install safetensors, which nvcli[timm] brings)", param="weights") from exc
    try:
        return load_file(path, device="cpu")
    except Exception as exc:  # a damaged or foreign file: safetensors raises several types
        raise NvError(f"cannot read weights file '{path}' as safetensors ({describe(exc)})", param="weights") from exc
