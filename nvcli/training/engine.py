"""The training engine: epochs, checkpoints with everything needed to resume exactly, NaN stop."""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, NotRequired, TypedDict

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import StateDict
from torch.utils.data import Dataset

from ..errors import NvError, describe
from ..fs import access
from ..fs.atomic import load_torch, save_figure, save_torch, write_csv
from ..runs import files
from ..schema import JsonRecord, Measure
from . import distributed as dist
from .config import TrainConfig
from .devices import amp_dtype, precision_name
from .loaders import batches, make_loader
from .predict import ProgressFn, tally
from .tensorboard import Curves, head_statistics

log = logging.getLogger(__name__)


class ParamGroup(TypedDict):
    """A parameter group as torch's optimizers take it: its parameters, learning rate and weight decay."""

    params: list[nn.Parameter]
    lr: float
    weight_decay: float


class RngState(TypedDict):
    """The random generators' states a checkpoint restores (CUDA's where there is one)."""

    torch: torch.Tensor
    python: tuple[object, ...]
    cuda: NotRequired[list[torch.Tensor]]


class Checkpoint(TypedDict):
    """checkpoint.pt: the model, optimizer, scheduler and loss scaler states, the epochs done, their metrics rows
    (`EpochRow.to_json`) and the random states, all that resuming needs to continue exactly."""

    model: StateDict
    optimizer: StateDict
    scheduler: StateDict
    scaler: StateDict
    epoch: int
    history: list[dict[str, object]]
    rng: RngState


CHECKPOINT_KEYS = tuple(Checkpoint.__annotations__)


@dataclass(frozen=True)
class EpochRow(JsonRecord):
    """One epoch's row of metrics.csv (its columns, in order), also kept in checkpoint.pt's history."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: Measure  # NaN without validation samples
    val_acc: Measure
    lr: float  # of the first parameter group, during the epoch
    seconds: float


METRIC_COLUMNS = [f.name for f in fields(EpochRow)]


def head_of(model: nn.Module) -> nn.Linear | None:
    """The NeuroView head (`model.head`); None for a baseline network."""
    head = getattr(model, "head", None)
    return head if isinstance(head, nn.Linear) else None


@torch.no_grad()
def scale_head_init(model: nn.Module, scale: float) -> None:
    """Multiply the head's initial weight and bias by `scale` (0: a zero head); a baseline is left alone."""
    head = head_of(model)
    if head is not None and scale != 1.0:
        for p in head.parameters():
            p.mul_(scale)


def resolve_head_lr(cfg: TrainConfig, model: nn.Module) -> TrainConfig:
    """`cfg` with the head's learning-rate scale as a number (the default depends on the head's width).

    A baseline has no NeuroView head: its scale stays None.
    """
    head = head_of(model)
    return cfg if head is None else replace(cfg, head_lr_scale=cfg.head_lr_scale_for(head.in_features))


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[ParamGroup]:
    """The trainable parameters: one group, or the backbone and then the head when its lr or decay differ.

    One group when they agree keeps the optimizer state of checkpoints written before heads had settings.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    head = head_of(model)
    decay = cfg.weight_decay if cfg.head_weight_decay is None else cfg.head_weight_decay
    scale = 1.0 if head is None else cfg.head_lr_scale_for(head.in_features)
    if head is None or (scale == 1 and decay == cfg.weight_decay):
        return [ParamGroup(params=params, lr=cfg.lr, weight_decay=cfg.weight_decay)]
    head_ids = {id(p) for p in head.parameters()}
    groups = [ParamGroup(params=[p for p in params if id(p) not in head_ids], lr=cfg.lr, weight_decay=cfg.weight_decay),
              ParamGroup(params=[p for p in params if id(p) in head_ids], lr=cfg.lr * scale, weight_decay=decay)]
    return [g for g in groups if g["params"]]


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def soft_threshold(weight: torch.Tensor, threshold: float) -> None:
    """The proximal step of threshold * sum|W|: shrink every entry towards 0 by `threshold`, exact zeros inside."""
    weight.copy_(weight.sign() * (weight.abs() - threshold).clamp_(min=0))


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


class Trainer:
    """Trains one model on one dataset, writing metrics.csv, model.pt and checkpoint.pt after every epoch (and, with
    `log_dir`, TensorBoard's curves there)."""

    def __init__(self, model: nn.Module, train_set: Dataset, val_set: Dataset, cfg: TrainConfig,
                 run_dir: Path | None, *, device: torch.device, distributed: bool = False,
                 progress: ProgressFn | None = None,
                 on_epoch: Callable[[EpochRow], None] | None = None, log_dir: Path | None = None) -> None:
        self.cfg, self.run_dir, self.progress, self.on_epoch = cfg, run_dir, progress, on_epoch
        self.log_dir = log_dir
        self.device, self.distributed = device, distributed
        self.model = model.to(self.device)
        self.net: nn.Module = self.model
        if self.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.train_set, self.val_set = train_set, val_set
        self.optimizer = _optimizer(self.model, cfg)
        self.scheduler = _scheduler(self.optimizer, cfg)
        head = head_of(self.model)
        # What head_warmup holds still (nothing in a baseline, which has no NeuroView head).
        head_ids = {id(p) for p in head.parameters()} if head is not None else set()
        self.backbone = [p for p in self.model.parameters()
                         if id(p) not in head_ids and p.requires_grad] if head is not None else []
        # Which optimizer group holds the head's weight: its (scheduled) lr sets the L1 step. An index, not the
        # group: loading a checkpoint replaces the group dicts. None: no L1 step.
        groups = enumerate(self.optimizer.param_groups)
        self.head_group = next((i for i, g in groups if any(p is head.weight for p in g["params"])), None) \
            if cfg.head_l1 and head is not None else None
        self.dtype = amp_dtype(self.device, cfg.amp)
        # Loss scaling only for float16, whose narrow exponent range underflows small gradients.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        if cfg.amp:
            log.info("mixed precision: %s autocast on %s", precision_name(self.dtype), self.device)
        self.epoch = 0
        self.history: list[EpochRow] = []

    # -- checkpoints ---------------------------------------------------------------------------
    def state(self) -> Checkpoint:
        rng = RngState(torch=torch.get_rng_state(), python=random.getstate())
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return Checkpoint(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                          scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(), epoch=self.epoch,
                          history=[row.to_json() for row in self.history], rng=rng)

    def resume(self, path: Path) -> None:
        """Restore model, optimizer, scheduler, scaler, epoch, metrics and RNG state from a checkpoint."""
        if not path.is_file():
            raise NvError(f"cannot resume: '{path}' does not exist (the run never finished an epoch)")
        state = load_torch(path, f"cannot resume: '{path}' is not a readable checkpoint; it is damaged or is not "
                                 "a training checkpoint of nv")
        missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
        if missing:
            raise NvError(f"cannot resume: checkpoint '{path}' lacks {', '.join(missing)}; it is not a training "
                          "checkpoint of nv")
        try:
            epoch = int(state["epoch"])
            history = [EpochRow.from_json(row, f"cannot resume: checkpoint '{path}': epoch {i + 1}")
                       for i, row in enumerate(state["history"])]
            if not 0 <= epoch <= self.cfg.epochs or len(history) != epoch:
                raise NvError(f"cannot resume: checkpoint '{path}' says epoch {epoch} with {len(history)} recorded "
                              f"epoch(s); this run trains {self.cfg.epochs} epochs")
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:  # empty when the run computed without loss scaling (fp32 or bfloat16)
                self.scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"]["torch"])
            random.setstate(_as_tuple(state["rng"]["python"]))
            if "cuda" in state["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise NvError(f"cannot resume: checkpoint '{path}' does not fit this run's model and recipe "
                          f"({describe(exc)})") from exc
        self.epoch, self.history = epoch, history
        if self.run_dir is not None and dist.is_main():
            self._write_metrics()  # an interruption may have come between the checkpoint and metrics.csv
        log.info("resumed from epoch %d", self.epoch)

    def _save(self) -> None:
        if self.run_dir is None or not dist.is_main():
            return
        # The checkpoint commits an epoch: model.pt is never behind it, metrics.csv never ahead of it.
        save_torch(self.run_dir / files.MODEL, self.model.state_dict())
        save_torch(self.run_dir / files.CHECKPOINT, self.state())
        self._write_metrics()

    def _write_metrics(self) -> None:
        write_csv(self.run_dir / files.METRICS, self.metrics())

    def _draw_metrics(self) -> None:
        """metrics.png: the training curves so far (drawn once at the end, not every epoch: it takes a while)."""
        from ..plots.metrics import metrics_figure

        frame = self.metrics()
        save_figure(self.run_dir / files.METRICS_PNG, metrics_figure(frame, f"{self.run_dir.name}: training curves"))

    # -- loops ---------------------------------------------------------------------------------
    def _train_epoch(self) -> tuple[float, float]:
        cfg = self.cfg
        loader = make_loader(self.train_set, cfg.batch_size, shuffle=True, workers=cfg.workers, seed=cfg.seed,
                             epoch=self.epoch, distributed=self.distributed, pin_memory=self.device.type == "cuda")
        self.net.train()
        warming = self.epoch < cfg.head_warmup
        if not self.distributed:  # DDP fixes which parameters take gradients when it wraps the model
            for p in self.backbone:  # no backward pass through a backbone that takes no step
                p.requires_grad_(not warming)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        for step, (x, y) in enumerate(batches(loader, self.device), 1):
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                logits = self.net(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if warming and self.distributed:
                for p in self.backbone:
                    p.grad = None  # the optimizer skips a parameter without a gradient: no step, no decay
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self._shrink_head()
            loss_sum += loss.detach().float() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if step % 20 == 0 or step == len(loader):
                self._check_finite(loss_sum.item(), step)
            if self.progress:
                self.progress("train", step, len(loader))
        total_loss, total_correct, total_seen = dist.all_sum([loss_sum.item(), correct.item(), seen], self.device)
        return total_loss / total_seen, total_correct / total_seen

    def _shrink_head(self) -> None:
        """The head L1 penalty's proximal step, at the head's current learning rate (the bias is not penalised)."""
        if self.head_group is not None:
            soft_threshold(self.model.head.weight,
                           self.optimizer.param_groups[self.head_group]["lr"] * self.cfg.head_l1)

    def _check_finite(self, value: float, step: int) -> None:
        if not math.isfinite(value):
            kept = f"the checkpoint of epoch {self.epoch} is kept" if self.epoch else "no epoch had finished"
            raise NvError(f"training loss became {value} at epoch {self.epoch + 1}, step {step}; stopped, "
                          f"{kept}; try a lower lr (now {self.cfg.lr})", param="lr")

    def _validate(self) -> tuple[float, float]:
        """Validation loss and accuracy; under torchrun every process validates its share and the counts add up."""
        for buffer in self.model.buffers():
            # DDP copies rank 0's buffers (batch-norm statistics) at each forward; since the last one every
            # process updated its own. Validate what model.pt will hold: rank 0's.
            dist.broadcast_(buffer)
        counted = tally(self.model, self.val_set, batch_size=self.cfg.batch_size, device=self.device,
                        workers=self.cfg.workers, progress=self.progress)["none"]
        return counted.loss, counted.accuracy

    # -- TensorBoard ---------------------------------------------------------------------------
    def _learning_rates(self) -> dict[str, float]:
        """Each optimizer group's learning rate, by what it trains: the backbone, the head, or all parameters (also a
        baseline's, which has no NeuroView head)."""
        head = head_of(self.model)
        if head is None:
            return {"all": self.optimizer.param_groups[0]["lr"]}
        head_ids = {id(p) for p in head.parameters()}
        rates = {}
        for group in self.optimizer.param_groups:
            inside = {id(p) in head_ids for p in group["params"]}
            rates["head" if inside == {True} else "backbone" if inside == {False} else "all"] = group["lr"]
        return rates

    def _head_start(self) -> "torch.Tensor | None":
        """The head's weights before training (head_init.pt of the run, read through the run's rules), or None."""
        if self.run_dir is None or head_of(self.model) is None or not access.is_file(self.run_dir, files.HEAD_INIT):
            return None
        path = access.inside(self.run_dir, files.HEAD_INIT)
        return load_torch(path, f"cannot read '{path}'").get("weight")

    def fit(self, stop_after: int | None = None) -> pd.DataFrame:
        """Train until cfg.epochs (or `stop_after` more epochs); return the metrics table."""
        last = self.cfg.epochs if stop_after is None else min(self.cfg.epochs, self.epoch + stop_after)
        if self.epoch == 0 and self.run_dir is not None and dist.is_main():
            self._write_metrics()  # the header: a run interrupted in its first epoch still has a readable file
        curves = Curves(self.log_dir) if self.log_dir is not None and dist.is_main() else None
        start_weight = self._head_start() if curves is not None else None  # read once, compared every epoch
        try:
            while self.epoch < last:
                start = time.perf_counter()
                lr, rates = self.optimizer.param_groups[0]["lr"], self._learning_rates() if curves else {}
                train_loss, train_acc = self._train_epoch()
                self.scheduler.step()
                val_loss, val_acc = self._validate()
                self.epoch += 1
                row = EpochRow(self.epoch, train_loss, train_acc, val_loss, val_acc, lr, time.perf_counter() - start)
                self.history.append(row)
                self._save()
                if curves is not None:
                    head = head_of(self.model)
                    curves.epoch(row, rates, {} if head is None else head_statistics(head.weight, start_weight))
                dist.barrier()
                if self.on_epoch and dist.is_main():
                    self.on_epoch(row)
        finally:
            if curves is not None:
                curves.close()
        if self.run_dir is not None and dist.is_main():
            self._draw_metrics()
        return self.metrics()

    def metrics(self) -> pd.DataFrame:
        """metrics.csv: one row per epoch trained so far (just the header before the first)."""
        return pd.DataFrame([row.to_json() for row in self.history], columns=METRIC_COLUMNS)


def _as_tuple(value: Any) -> Any:
    """random.setstate needs tuples; a checkpoint round trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
