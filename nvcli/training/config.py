"""The training recipe as recorded in config.json["train"]; importing it does not import torch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..errors import NvError, choice_error
from ..schema import JsonRecord, typed_record

Optimizer = Literal["adamw", "adam", "sgd"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
Scheduler = Literal["cosine", "step", "none"]
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
Device = Literal["auto", "cpu", "cuda", "mps"]  # auto: cuda > mps > cpu
DEVICES: tuple[str, ...] = get_args(Device)
MAX_SEED = 2**31 - 1  # seeds are combined with offsets and epochs; this keeps every derived seed in range
# A head reading more codes than this trains at lr * HEAD_REFERENCE_UNITS / units by default. Every step moves a
# logit by about lr * sum(z) (Adam steps each weight by ~lr; soft codes are all positive), so a wider head at the
# same lr takes a larger step in what it computes and diverges (docs/head-recipe.md#wide-heads). 1152 is the
# demo's AlexNet head, the widest on which the recipe experiments validated the default lr: it trains unchanged.
HEAD_REFERENCE_UNITS = 1152


@dataclass
class TrainConfig(JsonRecord):
    """Every knob of the training recipe, as recorded in config.json["train"]."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: Optimizer = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: Scheduler = "cosine"
    step_size: int = 30
    gamma: float = 0.1
    label_smoothing: float = 0.0
    seed: int = 0
    amp: bool = False
    workers: int = 0
    device: Device = "auto"
    deterministic: bool = False
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    # The NeuroView head (`model.head`): it starts at PyTorch's default init times head_init_scale
    # (0: zeros), trains at lr * head_lr_scale (None: by its width, see head_lr_scale_for; a run records the
    # number) with its own weight decay (None: weight_decay), and after every step its weights are
    # soft-thresholded by (its lr) * head_l1, the proximal step of an L1 penalty head_l1 * sum|W| (0: none).
    # docs/head-recipe.md has the experiments behind the defaults.
    head_init_scale: float = 1.0
    head_lr_scale: float | None = None
    head_weight_decay: float | None = None
    head_l1: float = 0.0
    head_warmup: int = 0  # epochs at the start in which only the head trains

    def __post_init__(self) -> None:
        checks = [  # (in range, what, the field, what is valid)
            (self.epochs >= 1, "epochs", "epochs", "an integer >= 1"),
            (self.batch_size >= 1, "batch size", "batch_size", "an integer >= 1"),
            (self.lr > 0 and math.isfinite(self.lr), "learning rate", "lr", "a positive number"),
            (self.weight_decay >= 0, "weight decay", "weight_decay", "a number >= 0"),
            (0 <= self.momentum < 1, "momentum", "momentum", "a number in [0, 1)"),
            (0 <= self.label_smoothing < 1, "label smoothing", "label_smoothing", "a number in [0, 1)"),
            (self.workers >= 0, "workers", "workers", "an integer >= 0"),
            (self.step_size >= 1, "step size", "step_size", "an integer >= 1"),
            (0 < self.gamma <= 1, "gamma", "gamma", "a number in (0, 1]"),
            (0 <= self.seed <= MAX_SEED, "seed", "seed", f"an integer in [0, {MAX_SEED}]"),
            (self.threads is None or self.threads >= 1, "threads", "threads", "an integer >= 1"),
            (0 <= self.head_init_scale < math.inf, "head init scale", "head_init_scale", "a number >= 0"),
            (self.head_lr_scale is None or 0 < self.head_lr_scale < math.inf, "head learning-rate scale",
             "head_lr_scale", "a positive number"),
            (self.head_weight_decay is None or 0 <= self.head_weight_decay < math.inf, "head weight decay",
             "head_weight_decay", "a number >= 0"),
            (0 <= self.head_l1 < math.inf, "head L1 penalty", "head_l1", "a number >= 0"),
            (0 <= self.head_warmup < self.epochs, "head warm-up", "head_warmup",
             f"an integer in [0, epochs - 1 = {self.epochs - 1}]"),
        ]
        for ok, what, key, valid in checks:
            if not ok:
                raise NvError(f"{what} {getattr(self, key)} is out of range; use {valid}", param=key)
        for value, valid, what in ((self.optimizer, OPTIMIZERS, "optimizer"), (self.scheduler, SCHEDULERS, "scheduler"),
                                   (self.device, DEVICES, "device")):
            if value not in valid:
                raise choice_error(what, value, valid)

    def head_lr_scale_for(self, units: int) -> float:
        """The head's learning-rate scale for a head reading `units` codes: as set, else min(1, 1152 / units)."""
        if self.head_lr_scale is not None:
            return self.head_lr_scale
        return min(1.0, HEAD_REFERENCE_UNITS / units)

    @classmethod
    def from_dict(cls, data: Any, where: str = "config.json") -> "TrainConfig":
        """A recipe from config.json["train"] (`where` names the file), every key checked: a message names the key
        at fault."""
        return typed_record(cls, data, f"{where} 'train'", complete=True)
