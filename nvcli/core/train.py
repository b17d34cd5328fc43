"""Creating runs: convert a network, train one from scratch (or from a converted run), resume one."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from torch import nn

from . import distributed as dist
from .atomic import save_torch
from .build import ModelSpec, build_model
from .data import DataBundle, load_data
from .engine import ProgressFn, Trainer, TrainConfig, resolve_device, seed_everything
from .errors import NvError
from .runs import RUNS_DIR, Run, load_run, mark_latest, new_run_dir, write_config, write_units

log = logging.getLogger("nvcli")


def model_units(model: nn.Module) -> pd.DataFrame | None:
    """The unit table of a NeuroView model (None for a baseline)."""
    units = getattr(model, "units", None)
    return units() if callable(units) else None


def _write_run(run_dir: Path, model: nn.Module, spec: ModelSpec, data: dict[str, Any], train: dict[str, Any]) -> None:
    """config.json and units.csv; model.pt too for an untrained (converted) run.

    A training run writes model.pt only after its first epoch, so a run that fails before then has no
    weights that a later command could mistake for trained ones.
    """
    units = model_units(model)
    config = {"name": run_dir.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": spec.to_dict(),
              "data": data, "train": train, "kind": spec.kind,
              "units": None if units is None else len(units)}
    write_config(run_dir, config)
    if units is not None:
        write_units(run_dir, units)
    if not train:
        save_torch(run_dir / "model.pt", model.state_dict())


def convert(spec: ModelSpec, *, classes: list[str] | None = None, name: str | None = None,
            runs_dir: str | Path = RUNS_DIR, force: bool = False) -> tuple[Path, nn.Module]:
    """Build the NeuroView variant of a standard network and write an untrained run directory."""
    model = build_model(spec)
    run_dir = new_run_dir(name, runs_dir, force)
    classes = classes or [str(i) for i in range(spec.num_classes)]
    _write_run(run_dir, model, spec, {"name": None, "classes": classes, "options": {}}, {})
    mark_latest(run_dir)
    return run_dir, model


def data_spec(bundle: DataBundle, *, arch: str, code: str, reduce: str, baseline: bool, weights: str | None,
              freeze_backbone: bool, shared_backbone: bool = False) -> ModelSpec:
    """The ModelSpec that fits `bundle`: classes, input shape, views and normalisation come from the data."""
    shape = list(bundle.train[0][0].shape) if len(bundle.train) else []
    if not shape:
        raise NvError(f"dataset '{bundle.name}' has no training samples")
    views = shape[0] if bundle.kind == "views" else 0
    return ModelSpec(arch=arch, num_classes=len(bundle.classes), input_shape=shape[-3:], mean=bundle.mean,
                     std=bundle.std, code=code, reduce=reduce, baseline=baseline, freeze_backbone=freeze_backbone,
                     views=views, shared_backbone=shared_backbone, weights=weights)


def recorded_options(data_options: dict[str, Any], seed: int) -> dict[str, Any]:
    """Loader options as config.json keeps them: the seed included, paths absolute, unset ones dropped.

    Every later command (eval, perturb, resume, ...) reloads the data from exactly these.
    """
    options = {k: v for k, v in data_options.items() if v is not None}
    for key in ("data_dir", "cache_dir"):
        if key in options:
            options[key] = str(Path(options[key]).resolve())
    return {**options, "seed": seed}


def _from_run(source: Run, bundle: DataBundle) -> tuple[ModelSpec, nn.Module]:
    """A model that starts from `source`'s weights, with the input shape and normalisation of `bundle`."""
    fitted = data_spec(bundle, arch=source.spec.arch, code=source.spec.code, reduce=source.spec.reduce,
                       baseline=source.spec.baseline, weights=None, freeze_backbone=source.spec.freeze_backbone)
    if source.spec.multiview != fitted.multiview:
        raise NvError(f"--init run '{source.dir}' and dataset '{bundle.name}' disagree on multi-view input; "
                      "convert and train on the same kind of data")
    if source.spec.num_classes != fitted.num_classes:
        raise NvError(f"--init run '{source.dir}' has {source.spec.num_classes} classes but dataset '{bundle.name}' "
                      f"has {fitted.num_classes}; convert with --num-classes {fitted.num_classes}")
    spec = replace(source.spec, input_shape=fitted.input_shape, mean=fitted.mean, std=fitted.std)
    model = build_model(spec, load_weights=False)
    # The data's normalisation replaces the converted run's; every other tensor comes from the run.
    state = {k: v for k, v in source.model().state_dict().items() if not k.startswith("normalize.")}
    model.load_state_dict({**model.state_dict(), **state})
    return spec, model


def train(spec_args: dict[str, Any], data: str, data_options: dict[str, Any], cfg: TrainConfig, *,
          name: str | None = None, runs_dir: str | Path = RUNS_DIR, force: bool = False, init: str | None = None,
          progress: ProgressFn | None = None, on_epoch: Callable[[dict], None] | None = None) -> Run | None:
    """Train a new run; `spec_args` are ModelSpec fields not taken from the data (arch, code, reduce, ...).

    With `init`, the model (spec and weights) starts from that run, e.g. one written by `convert`.
    Under torchrun every process trains; rank 0 alone writes and gets the Run, the others get None.
    """
    dist.init_from_env(resolve_device(cfg.device))
    seed_everything(cfg.seed, cfg.deterministic)
    options = recorded_options(data_options, cfg.seed)
    bundle = load_data(data, **options)
    if init:
        spec, model = _from_run(load_run(init), bundle)
    else:
        spec = data_spec(bundle, **spec_args)
        model = build_model(spec)
    run_dir = new_run_dir(name, runs_dir, force) if dist.is_main() else None
    data_section = {"name": data, "classes": bundle.classes, "kind": bundle.kind, "cues": bundle.cues,
                    "options": options, "info": bundle.info}
    if run_dir is not None:
        _write_run(run_dir, model, spec, data_section, cfg.to_dict())
        mark_latest(run_dir)
    trainer = Trainer(model, bundle.train, bundle.val, cfg, run_dir, progress, on_epoch)
    try:
        trainer.fit()
    finally:
        dist.cleanup()
    return load_run(run_dir) if run_dir is not None else None


def resume(run: str | Path | None, runs_dir: str | Path = RUNS_DIR, *, progress: ProgressFn | None = None,
           on_epoch: Callable[[dict], None] | None = None) -> Run | None:
    """Continue an interrupted run from its checkpoint with the settings in its config.json."""
    source = load_run(run, runs_dir)
    if not source.config["train"]:
        raise NvError(f"run '{source.dir}' was never trained (convert only); use 'nv train --init {source.dir}'")
    cfg = TrainConfig.from_dict(source.config["train"])
    dist.init_from_env(resolve_device(cfg.device))
    seed_everything(cfg.seed, cfg.deterministic)
    bundle = source.data()
    model = build_model(source.spec, load_weights=False)
    trainer = Trainer(model, bundle.train, bundle.val, cfg, source.dir if dist.is_main() else None, progress, on_epoch)
    trainer.resume(source.dir / "checkpoint.pt")
    if trainer.epoch >= cfg.epochs:
        log.info("run '%s' already finished all %d epochs", source.dir, cfg.epochs)
    main = dist.is_main()
    try:
        trainer.fit()
    finally:
        dist.cleanup()
    return load_run(source.dir) if main else None

