"""`nv train`: train a NeuroView network (or its standard baseline) and write a run directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd
import typer

from ..core.engine import TrainConfig
from ..core.errors import NvError
from ..core.neuroview import CODES, REDUCES
from ..core.runs import Run
from ..core.train import resume as resume_run
from ..core.train import train as train_run
from .app import app
from .options import DataOptionOpt, FormatOpt, RunOpt, RunsDirOpt, data_options, split_list
from .render import Format, emit, note, progress


def _epoch_line(row: dict[str, Any]) -> None:
    note(f"epoch {row['epoch']:>3}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f}  "
         f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s")


def report(run: Run | None, fmt: Format = Format.table) -> None:
    """Print where a finished run lives and its final metrics (only the process that wrote it)."""
    if run is None:
        return
    metrics = pd.read_csv(run.dir / "metrics.csv")
    note(f"run written to {run.dir}")
    emit(metrics.tail(1), fmt, title=f"{run.name}: final epoch")


def run_training(*, arch: str, data: str, data_dir: Optional[str], classes: Optional[str], image_size: Optional[int],
                 code: str, reduce: str, baseline: bool, weights: Optional[Path], freeze_backbone: bool,
                 init: Optional[Path], cfg: TrainConfig, name: Optional[str], runs_dir: Path, force: bool,
                 extra_data: dict[str, Any], shared_backbone: bool = False) -> Run | None:
    """Resolve the options of `nv train` / `nv multiview` and train."""
    if code not in CODES:
        raise NvError(f"--code '{code}' is not valid; use one of {', '.join(CODES)}")
    if reduce not in REDUCES:
        raise NvError(f"--reduce '{reduce}' is not valid; use one of {', '.join(REDUCES)}")
    if baseline and (freeze_backbone or init):
        raise NvError("--baseline trains the standard network; it cannot be combined with --freeze-backbone or --init")
    options = {"data_dir": data_dir, "classes": split_list(classes), "image_size": image_size, **extra_data}
    spec_args = {"arch": arch, "code": code, "reduce": reduce, "baseline": baseline,
                 "weights": str(weights) if weights else None, "freeze_backbone": freeze_backbone,
                 "shared_backbone": shared_backbone}
    with progress("training") as bar:
        return train_run(spec_args, data, options, cfg, name=name, runs_dir=runs_dir, force=force,
                         init=str(init) if init else None, progress=bar, on_epoch=_epoch_line)


@app.command()
def train(
    arch: str = typer.Option("alexnet", "--arch", "-a", help="alexnet, vgg11..19[_bn], resnet18/34/50, densenet121, "
                             "smallcnn, or package.module:function (runs your code)."),
    data: str = typer.Option("shapes", "--data", "-d", help="Dataset name (nv data list); default: built-in shapes."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Dataset root on disk (real datasets)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated subset of classes."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Image side in pixels (default 64)."),
    code: str = typer.Option("soft", "--code", help="Unit code: soft (sigmoid), hard (step, straight-through), raw."),
    reduce: str = typer.Option("max", "--reduce", help="Reduce each unit's code map by max or mean."),
    baseline: bool = typer.Option(False, "--baseline", help="Train the standard network instead (Table 1)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Load a standard network's state_dict first."),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone", help="Train only the linear head."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from a run written by nv convert."),
    epochs: int = typer.Option(10, "--epochs", "-e"),
    batch_size: int = typer.Option(64, "--batch-size", "-b"),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate."),
    opt: str = typer.Option("adamw", "--opt", help="adamw, adam or sgd."),
    weight_decay: float = typer.Option(1e-4, "--weight-decay", "--wd"),
    momentum: float = typer.Option(0.9, "--momentum", help="SGD momentum."),
    sched: str = typer.Option("cosine", "--sched", help="cosine, step or none (per epoch)."),
    step_size: int = typer.Option(30, "--step-size", help="Epochs between decays for --sched step."),
    gamma: float = typer.Option(0.1, "--gamma", help="Decay factor for --sched step."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (float16 on CUDA, bfloat16 on CPU)."),
    workers: int = typer.Option(0, "--workers", "-j", help="DataLoader worker processes."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Use only deterministic kernels."),
    resume: bool = typer.Option(False, "--resume", help="Continue --run (default latest) from its checkpoint."),
    run: Optional[Path] = RunOpt,
    name: Optional[str] = typer.Option(None, "--name", help="Run directory name (default: a timestamp)."),
    runs_dir: Path = RunsDirOpt,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing run directory of that name."),
    val_fold: Optional[int] = typer.Option(None, "--val-fold", help="UrbanSound8K: validation fold (default 10)."),
    on_error: Optional[str] = typer.Option(None, "--on-error", help="Undecodable files: fail (default) or skip."),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Sound: spectrogram cache directory."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", help="Sound: resample to this rate."),
    n_mels: Optional[int] = typer.Option(None, "--n-mels", help="Sound: mel bands of the spectrogram."),
    data_option: Optional[list[str]] = DataOptionOpt,
    fmt: Format = FormatOpt,
) -> None:
    """Train a NeuroView network jointly from scratch (or --baseline: the standard network)."""
    options = dict(locals())
    report(execute(**{k: v for k, v in options.items() if k != "fmt"}), fmt)


def execute(*, resume: bool, run: Optional[Path], runs_dir: Path, epochs: int, batch_size: int, lr: float, opt: str,
            weight_decay: float, momentum: float, sched: str, step_size: int, gamma: float, label_smoothing: float,
            seed: int, amp: bool, workers: int, device: str, deterministic: bool, on_error: Optional[str],
            val_fold: Optional[int], cache_dir: Optional[str], sample_rate: Optional[int], n_mels: Optional[int],
            data_option: Optional[list[str]], views: Optional[int] = None, **model_and_data: Any) -> Run | None:
    """Resume, or check the options of `nv train` / `nv multiview` and train; returns the run (rank 0)."""
    if resume:
        with progress("training") as bar:
            return resume_run(run, runs_dir, progress=bar, on_epoch=_epoch_line)
    if run is not None:
        raise NvError("--run only selects the run to continue with --resume; name a new run with --name")
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=opt, weight_decay=weight_decay,
                      momentum=momentum, scheduler=sched, step_size=step_size, gamma=gamma,
                      label_smoothing=label_smoothing, seed=seed, amp=amp, workers=workers, device=device,
                      deterministic=deterministic)
    if on_error not in (None, "fail", "skip"):
        raise NvError(f"--on-error '{on_error}' is not valid; use fail or skip")
    extra = {"val_fold": val_fold, "on_error": on_error, "cache_dir": cache_dir, "sample_rate": sample_rate,
             "n_mels": n_mels, "views": views, **data_options(data_option)}
    return run_training(cfg=cfg, runs_dir=runs_dir, extra_data=extra, **model_and_data)
