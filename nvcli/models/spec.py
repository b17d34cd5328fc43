"""What a model is, as plain JSON: the user's choices (`ModelChoice`) plus what the data fixes (`ModelSpec`).

Importing this module does not import torch, so the command line can show choices and defaults fast.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from ..errors import NvError, choice_error
from ..schema import JsonRecord, typed_record

BUILTIN_ARCHS = ("smallcnn",)
RECURRENT = ("rnn", "gru", "lstm")  # sequence models (docs/rnn.md): units are (layer, time step, hidden unit)
TORCHVISION = (
    "alexnet",
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "resnet18", "resnet34", "resnet50",
    "densenet121",
)
TIMM = "timm/"  # timm/<model>: any model of timm's registry (the optional extra nvcli[timm])
Code = Literal["soft", "hard", "raw"]  # sigmoid, straight-through step, ReLU output
CODES: tuple[str, ...] = get_args(Code)
# Bounds that keep a hostile or mistyped config.json from allocating without limit when the model is built.
MAX_CLASSES = 1_000_000
MAX_INPUT = 1 << 26  # values in one input (3 x 4096 x 4096 is 50 M)
MAX_VIEWS = 1000
Reduce = Literal["max", "mean"]
REDUCES: tuple[str, ...] = get_args(Reduce)
TimeUnits = Literal["all", "last"]  # recurrent NeuroView: every layer's hidden states feed the head, or the last's
TIME_UNITS: tuple[str, ...] = get_args(TimeUnits)
MAX_HIDDEN, MAX_RNN_LAYERS = 65_536, 64
MAX_RNN_UNITS = 1 << 24  # a recurrent head's inputs: layers x steps x hidden units x directions


def arch_error(arch: str) -> NvError:
    """The error for an architecture name nv does not know, with the closest valid one."""
    return choice_error("architecture", arch, [*BUILTIN_ARCHS, *RECURRENT, *TORCHVISION, f"{TIMM}<model>",
                                                 "package.module:function"])


@dataclass(frozen=True)
class ModelChoice:
    """The model the user asks for, before any data is seen."""

    arch: str = "alexnet"
    code: Code = "soft"
    reduce: Reduce = "max"
    baseline: bool = False
    weights: str | None = None  # a standard network's state_dict file or pretrained weights' name, loaded first
    freeze_backbone: bool = False
    shared_backbone: bool = False  # multi-view: one backbone for every view
    hidden_size: int = 32  # recurrent archs: hidden units per layer and direction
    rnn_layers: int = 1  # recurrent archs: stacked layers
    bidirectional: bool = False  # recurrent archs
    time_units: TimeUnits = "all"  # recurrent NeuroView: the hidden states of every layer, or of the last only

    def __post_init__(self) -> None:
        if not (self.user_code or self.timm) and self.arch not in BUILTIN_ARCHS + RECURRENT + TORCHVISION:
            raise arch_error(self.arch)  # before any data or torch loads
        self._check_recurrent()
        if self.code not in CODES:
            raise choice_error("unit code", self.code, CODES)
        if self.reduce not in REDUCES:
            raise choice_error("reduction", self.reduce, REDUCES)
        if self.baseline and self.freeze_backbone:
            raise NvError("baseline trains the standard network; it cannot be combined with freeze_backbone",
                          param=("baseline", "freeze_backbone"))

    def _check_recurrent(self) -> None:
        """Recurrent settings: in range, and only for a recurrent architecture."""
        if self.time_units not in TIME_UNITS:
            raise choice_error("time units", self.time_units, TIME_UNITS, param="time_units")
        if not 1 <= self.hidden_size <= MAX_HIDDEN or not 1 <= self.rnn_layers <= MAX_RNN_LAYERS:
            raise NvError(f"hidden_size {self.hidden_size} / rnn_layers {self.rnn_layers} out of range; use "
                          f"1..{MAX_HIDDEN} / 1..{MAX_RNN_LAYERS}", param=("hidden_size", "rnn_layers"))
        changed = [k for k, v in RECURRENT_DEFAULTS.items() if getattr(self, k) != v]
        if changed and not self.recurrent:
            raise NvError(f"{', '.join(changed)}: a setting of the recurrent architectures ({', '.join(RECURRENT)}) "
                          f"only, not of {self.arch}", param=tuple(changed))
        if self.recurrent and (self.weights or self.shared_backbone):
            raise NvError(f"{self.arch} is a recurrent sequence model: it takes no weights or shared_backbone",
                          param=("weights", "shared_backbone"))

    @property
    def recurrent(self) -> bool:
        """Whether the architecture is a recurrent sequence model (rnn, gru, lstm)."""
        return self.arch in RECURRENT

    @property
    def activation(self) -> str:
        """The head's input as tables show it: code/reduce (a recurrent code is not reduced), '-' for a baseline."""
        return "-" if self.baseline else self.code if self.recurrent else f"{self.code}/{self.reduce}"

    @property
    def timm(self) -> bool:
        """Whether the architecture is a timm model (`timm/<model>`)."""
        return self.arch.startswith(TIMM) and len(self.arch) > len(TIMM)

    @property
    def user_code(self) -> bool:
        """Whether the architecture is a user's `package.module:function` (importing it runs their code)."""
        return ":" in self.arch


@dataclass(frozen=True)
class ModelSpec(ModelChoice):
    """A model as recorded in config.json["model"]: the choice plus the data's classes, input and normalisation."""

    num_classes: int = 2
    input_shape: tuple[int, ...] = (3, 64, 64)  # [C, H, W] of one sample (one view for multi-view models)
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    views: int = 0  # camera views per sample for multi-view data; 0 for single inputs

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if not 2 <= self.num_classes <= MAX_CLASSES:
            raise NvError(f"a classifier needs 2..{MAX_CLASSES} classes, got {self.num_classes}")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise NvError(f"input shape {list(self.input_shape)} is not [channels, height, width]")
        if math.prod(self.input_shape) > MAX_INPUT or not 0 <= self.views <= MAX_VIEWS:
            raise NvError(f"input shape {list(self.input_shape)} with {self.views} views is too large (at most "
                          f"{MAX_INPUT} values per view and {MAX_VIEWS} views)")
        units = self.rnn_layers * self.input_shape[2] * self.hidden_size * (2 if self.bidirectional else 1)
        if self.recurrent and units > MAX_RNN_UNITS:
            raise NvError(f"{self.rnn_layers} layer(s) x {self.input_shape[2]} steps x {self.hidden_size} hidden units "
                          f"make {units} units; nv builds at most {MAX_RNN_UNITS}", param=("hidden_size", "rnn_layers"))
        if not len(self.mean) == len(self.std) == self.input_shape[0] or min(self.std) <= 0:
            raise NvError(f"normalisation mean {list(self.mean)} / std {list(self.std)} does not fit "
                          f"{self.input_shape[0]} input channel(s) with positive std")

    @classmethod
    def of(cls, choice: ModelChoice, **data: Any) -> "ModelSpec":
        """The spec of `choice` for data with these classes, input shape, normalisation and views."""
        return cls(**asdict(choice), **data)

    @property
    def choice(self) -> ModelChoice:
        """The user's part of this spec."""
        return ModelChoice(**{f.name: getattr(self, f.name) for f in fields(ModelChoice)})

    def to_dict(self) -> dict[str, Any]:
        """The spec as config.json records it; the recurrent settings only for a recurrent architecture (so a run
        of any other reads and writes as before they existed)."""
        data = {k: v for k, v in asdict(self).items() if self.recurrent or k not in RECURRENT_DEFAULTS}
        return {**data, "input_shape": list(self.input_shape), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "config.json") -> "ModelSpec":
        """A spec from config.json["model"] (`where` names the file), every key checked: a message names the key at
        fault.

        Runs written before the recurrent settings existed lack them: they get their (non-recurrent) defaults.
        """
        if isinstance(data, dict):
            data = {**RECURRENT_DEFAULTS, **data}
        return typed_record(cls, data, f"{where} 'model'", complete=True)

    @property
    def multiview(self) -> bool:
        """Whether each sample is a stack of camera views [V, C, H, W]."""
        return self.views > 0

    @property
    def kind(self) -> str:
        """'neuroview' or 'baseline', with a 'multiview-' prefix for multi-view models."""
        name = "baseline" if self.baseline else "neuroview"
        return f"multiview-{name}" if self.multiview else name

    @property
    def label(self) -> str:
        """'NeuroView vgg11' or 'vgg11' (the network column of Table 1)."""
        views = f" MV{self.views}" if self.multiview else ""
        return f"{'' if self.baseline else 'NeuroView '}{self.arch}{views}"


RECURRENT_DEFAULTS = {name: getattr(ModelChoice, name) for name in ("hidden_size", "rnn_layers", "bidirectional",
                                                                     "time_units")}


@dataclass(frozen=True, kw_only=True)
class WeightsRecord(JsonRecord):
    """What config.json records under `weights`: where the pretrained weights a network started from came from (a
    file, torchvision or timm), the library's full name and URL, the file and its SHA-256, and the image sides they
    were trained with (the library's facts only where known)."""

    OMITTED = ("resolved", "url", "crop_size", "resize_size")
    source: str
    name: str
    resolved: str | None = None
    url: str | None = None
    file: str
    sha256: str
    crop_size: int | None = None
    resize_size: int | None = None

    @property
    def named(self) -> bool:
        """Whether a library named the weights (so their normalisation is known), not a file of the user's."""
        return self.source != "file"
