"""The training engine: epochs, checkpoints, resume, evaluation and batched prediction."""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from . import distributed as dist
from .atomic import save_torch, write_csv
from .errors import NvError, choice_error

log = logging.getLogger("nvcli")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "step", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
# progress(phase, done, total): phase is "train" or "val"; called after every batch.
ProgressFn = Callable[[str, int, int], None]


@dataclass
class TrainConfig:
    """Every knob of the training recipe, as recorded in config.json["train"]."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "cosine"
    step_size: int = 30
    gamma: float = 0.1
    label_smoothing: float = 0.0
    seed: int = 0
    amp: bool = False
    workers: int = 0
    device: str = "auto"
    deterministic: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs", self.epochs, "an integer >= 1"),
            (self.batch_size >= 1, "batch size", self.batch_size, "an integer >= 1"),
            (self.lr > 0 and math.isfinite(self.lr), "learning rate", self.lr, "a positive number"),
            (self.weight_decay >= 0, "weight decay", self.weight_decay, "a number >= 0"),
            (0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)"),
            (0 <= self.label_smoothing < 1, "label smoothing", self.label_smoothing, "a number in [0, 1)"),
            (self.workers >= 0, "workers", self.workers, "an integer >= 0"),
            (self.step_size >= 1, "step size", self.step_size, "an integer >= 1"),
            (0 < self.gamma <= 1, "gamma", self.gamma, "a number in (0, 1]"),
        ]
        for ok, what, value, valid in checks:
            if not ok:
                raise NvError(f"{what} {value} is out of range; use {valid}")
        for value, valid, what in ((self.optimizer, OPTIMIZERS, "optimizer"), (self.scheduler, SCHEDULERS, "scheduler"),
                                   (self.device, DEVICES, "device")):
            if value not in valid:
                raise choice_error(what, value, valid)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an unavailable explicit choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NvError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise NvError("--device mps was asked for but MPS is not available; use --device cpu or auto")
    if name not in DEVICES:
        raise choice_error("device", name, DEVICES)
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python and torch; `deterministic` also forbids nondeterministic kernels."""
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, workers: int = 0, seed: int = 0,
                epoch: int = 0, distributed: bool = False) -> DataLoader:
    """A DataLoader whose order depends only on (seed, epoch), so a resumed run sees the same batches."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    sampler = None
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed)
        sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, generator=generator, persistent_workers=False,
                      pin_memory=False, drop_last=False)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def _autocast(device: torch.device, enabled: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


def _batches(loader: DataLoader, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, *, batch_size: int = 128, device: torch.device | str = "cpu",
            workers: int = 0, transforms: dict[str, Callable[[Tensor], Tensor]] | None = None,
            progress: ProgressFn | None = None) -> tuple[dict[str, Tensor], Tensor]:
    """Logits for every sample under each named input transform, in one pass over the data.

    Returns ({name: logits [N, classes]}, labels [N]); with no transforms, the one name is "none".
    """
    device = torch.device(device)
    transforms = transforms or {"none": lambda x: x}
    model.eval()
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers)
    outputs: dict[str, list[Tensor]] = {name: [] for name in transforms}
    labels = []
    for step, (x, y) in enumerate(_batches(loader, device), 1):
        for name, fn in transforms.items():
            outputs[name].append(model(fn(x)).float().cpu())
        labels.append(y.cpu())
        if progress:
            progress("val", step, len(loader))
    return {k: torch.cat(v) for k, v in outputs.items()}, torch.cat(labels)


class Trainer:
    """Trains one model on one dataset, writing metrics.csv, model.pt and checkpoint.pt after every epoch."""

    def __init__(self, model: nn.Module, train_set: Dataset, val_set: Dataset, cfg: TrainConfig,
                 run_dir: Path | None, progress: ProgressFn | None = None,
                 on_epoch: Callable[[dict[str, float]], None] | None = None) -> None:
        self.cfg, self.run_dir, self.progress, self.on_epoch = cfg, run_dir, progress, on_epoch
        self.device = resolve_device(cfg.device)
        self.distributed = dist.init_from_env(self.device)  # a no-op when the caller already joined
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU under torchrun
        self.model = model.to(self.device)
        self.net: nn.Module = self.model
        if self.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.train_set, self.val_set = train_set, val_set
        self.optimizer = _optimizer(self.model, cfg)
        self.scheduler = _scheduler(self.optimizer, cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and self.device.type == "cuda")
        self.epoch = 0
        self.history: list[dict[str, float]] = []

    # -- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": self.epoch, "history": self.history, "rng": rng}

    def resume(self, path: Path) -> None:
        """Restore model, optimizer, scheduler, scaler, epoch, metrics and RNG state from a checkpoint."""
        if not path.is_file():
            raise NvError(f"cannot resume: '{path}' does not exist (the run never finished an epoch)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise NvError(f"checkpoint '{path}' does not fit this run's model ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0]})") from exc
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(_as_tuple(state["rng"]["python"]))
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        log.info("resumed from epoch %d", self.epoch)

    def _save(self) -> None:
        if self.run_dir is None or not dist.is_main():
            return
        save_torch(self.run_dir / "checkpoint.pt", self.state())
        write_csv(self.run_dir / "metrics.csv", pd.DataFrame(self.history, columns=METRIC_COLUMNS))
        save_torch(self.run_dir / "model.pt", self.model.state_dict())

    # -- loops ---------------------------------------------------------------------------------
    def _train_epoch(self) -> tuple[float, float]:
        cfg = self.cfg
        loader = make_loader(self.train_set, cfg.batch_size, shuffle=True, workers=cfg.workers, seed=cfg.seed,
                             epoch=self.epoch, distributed=self.distributed)
        self.net.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        for step, (x, y) in enumerate(_batches(loader, self.device), 1):
            with _autocast(self.device, cfg.amp):
                logits = self.net(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_sum += loss.detach().float() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if step % 20 == 0 or step == len(loader):
                self._check_finite(loss_sum.item(), step)
            if self.progress:
                self.progress("train", step, len(loader))
        total_loss, total_correct, total_seen = dist.all_sum([loss_sum.item(), correct.item(), seen], self.device)
        return total_loss / total_seen, total_correct / total_seen

    def _check_finite(self, value: float, step: int) -> None:
        if not math.isfinite(value):
            kept = f"the checkpoint of epoch {self.epoch} is kept" if self.epoch else "no epoch had finished"
            raise NvError(f"training loss became {value} at epoch {self.epoch + 1}, step {step}; stopped, "
                          f"{kept}; try a lower --lr (now {self.cfg.lr})")

    def _validate(self) -> tuple[float, float]:
        logits, labels = predict(self.model, self.val_set, batch_size=self.cfg.batch_size, device=self.device,
                                 workers=self.cfg.workers, progress=self.progress)
        logits = logits["none"]
        return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()

    def fit(self, stop_after: int | None = None) -> pd.DataFrame:
        """Train until cfg.epochs (or `stop_after` more epochs); return the metrics table."""
        last = self.cfg.epochs if stop_after is None else min(self.cfg.epochs, self.epoch + stop_after)
        while self.epoch < last:
            start = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_acc = self._train_epoch()
            self.scheduler.step()
            if dist.is_main():
                val_loss, val_acc = self._validate()
            else:
                val_loss = val_acc = float("nan")
            self.epoch += 1
            row = {"epoch": self.epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                   "val_acc": val_acc, "lr": lr, "seconds": time.perf_counter() - start}
            self.history.append(row)
            self._save()
            dist.barrier()
            if self.on_epoch and dist.is_main():
                self.on_epoch(row)
        return pd.DataFrame(self.history, columns=METRIC_COLUMNS)


def _as_tuple(value: Any) -> Any:
    """random.setstate needs tuples; a checkpoint round trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
