"""Creating runs: convert a network, train one from scratch (or from a converted run), resume one.

One readable path from a request to a run directory: resolve the device and join the process group
once, seed, load the data, build the model, write config.json, units.csv and head_init.pt, train.
"""
from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping

import torch

from ..data.registry import IMAGENET_MEAN, IMAGENET_STD, DataBundle, DataOptions, load_data, options_of
from ..errors import NvError
from ..fs import access
from ..fs.atomic import save_torch
from ..models.build import build_model
from ..models.pretrained import Pretrained, resolve
from ..models.spec import ModelChoice, ModelSpec, WeightsRecord
from ..runs import files, lock
from ..runs.config import DataSection, RunConfig
from ..runs.run import Run, load_run, mark_latest, new_run_dir, write_config, write_units
from . import distributed as dist
from .config import TrainConfig
from .devices import amp_dtype, precision_name, resolve_device, seed_everything, set_threads
from .engine import EpochRow, Trainer, resolve_head_lr, scale_head_init
from .predict import ProgressFn
from .tensorboard import require as require_tensorboard

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)
EpochFn = Callable[[EpochRow], None]
# With init, these model settings apply on top of the converted run; any other must agree with it.
INIT_APPLIES = ("code", "reduce", "freeze_backbone")


def _precision(cfg: TrainConfig) -> str:
    """What training with `cfg` computes in on this process's device: float32, or with amp bfloat16 or float16."""
    return precision_name(amp_dtype(resolve_device(cfg.device), cfg.amp))


def _write_run(run_dir: Path, model: "nn.Module", spec: ModelSpec, data: DataSection,
               train: TrainConfig | None, weights: WeightsRecord | None, *, head_start: bool = True) -> None:
    """config.json, units.csv and, with `head_start` (the model's head is where training starts), the head's starting
    weights; model.pt too for a run nv does not train (converted, or trained elsewhere).

    A training run also records `precision`: what it computes in (float32, bfloat16 or float16); a run whose
    network started from weights records them (`weights`: where they came from and the file's SHA-256).

    A training run writes model.pt only after its first epoch, so a run that fails before then has no
    weights that a later command could mistake for trained ones.
    """
    units = model.units() if hasattr(model, "units") else None
    write_config(run_dir, RunConfig(name=run_dir.name, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), model=spec,
                                    data=data, train=train, kind=spec.kind,
                                    units=None if units is None else len(units),
                                    precision=None if train is None else _precision(train), weights=weights))
    if units is not None:
        write_units(run_dir, units)
    if units is not None and head_start:
        save_torch(run_dir / files.HEAD_INIT, {k: v.detach().cpu().clone() for k, v in model.head.state_dict().items()})
    if train is None:
        save_torch(run_dir / files.MODEL, model.state_dict())


def convert(choice: ModelChoice, *, num_classes: int | None = None, classes: list[str] | None = None,
            image_size: int = 64, in_channels: int = 3, name: str | None = None,
            runs_dir: str | Path = files.RUNS_DIR, force: bool = False) -> tuple[Path, "nn.Module"]:
    """Build the NeuroView variant of a standard network and write an untrained run directory.

    Args:
        choice: the network (architecture, code, reduction, a standard network's `weights` to load).
        num_classes: classes of the new head (named 0..N-1), or
        classes: their names (sets the count).
        image_size: the input side in pixels.
        in_channels: input channels; 3-channel inputs get ImageNet's normalisation (so pretrained weights
            fit), others none.
        name: the run directory's name (default: a timestamp) under `runs_dir`.
        runs_dir: where run directories live.
        force: replace an existing run of that name (only the files nv wrote).

    Returns:
        The run directory and the built network (its `layers` list the units per nonlinear layer).
    """
    if classes and num_classes is not None and num_classes != len(classes):
        raise NvError(f"num_classes {num_classes} disagrees with the {len(classes)} names given by classes",
                      param=("num_classes", "classes"))
    count = len(classes) if classes else num_classes
    if count is None:
        raise NvError("give num_classes N (N >= 2) or classes a,b,...; converting needs the number of classes",
                      param=("num_classes", "classes"))
    if count < 2:
        raise NvError(f"num_classes {count} is not valid; give an integer >= 2 (or classes a,b,...)",
                      param=("num_classes", "classes"))
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if in_channels == 3 else ([0.0] * in_channels, [1.0] * in_channels)
    spec = ModelSpec.of(choice, num_classes=count, input_shape=(in_channels, image_size, image_size), mean=mean,
                        std=std)
    spec, weights = with_weights(spec, resolve(choice.arch, choice.weights) if choice.weights else None)
    model = build_model(spec, trust_code=True)  # the architecture was named on the command line
    with new_run_dir(name, runs_dir, force) as run_dir:
        names = classes or [str(i) for i in range(count)]
        _write_run(run_dir, model, spec, DataSection(name=None, classes=tuple(names)), None, weights)
        mark_latest(run_dir)
    return run_dir, model


def save_model(model: "nn.Module", path: str | Path, *, data: DataBundle, choice: ModelChoice,
               force: bool = False) -> Run:
    """Write a run directory of a NeuroView `model` trained elsewhere (by the caller's own loop) on registry data
    `data` (`load_data`), so that every analysis and command works on it.

    Args:
        model: a NeuroView model (`NeuroView(network, num_classes)`).
        path: the run directory to create (its parent is the runs directory).
        data: the dataset it was trained on, as `load_data` returned it (the run loads it again by name).
        choice: the architecture its network is, by name (as `arch` of convert and train), with its code and
            reduction; checked by rebuilding the model from it and loading its weights.
        force: replace an existing run of that name (only the files nv wrote).

    Returns:
        The run, as `load_run` reads it.
    """
    if data.options is None:
        raise NvError(f"data '{data.name}' was not loaded by load_data, so a run could not load it again; load it "
                      "with load_data(name, options)", param="data")
    codes = getattr(model, "codes", None)
    if codes is None or not hasattr(model, "units"):
        raise NvError(f"{type(model).__name__} is not a NeuroView model; save takes NeuroView(network, num_classes)",
                      param="model")
    choice = replace(choice, code=codes.code, reduce=codes.reduce)
    spec = ModelSpec.of(choice, num_classes=model.head.out_features, input_shape=tuple(codes.input_shape),
                        mean=model.normalize.mean.flatten().tolist(), std=model.normalize.std.flatten().tolist())
    if spec.num_classes != len(data.classes) or list(spec.input_shape) != data.input_shape:
        raise NvError(f"the model takes inputs {list(spec.input_shape)} into {spec.num_classes} classes; data "
                      f"'{data.name}' gives {data.input_shape} in {len(data.classes)} classes", param="data")
    rebuilt = build_model(spec, load_weights=False, trust_code=True)  # the caller named the architecture
    try:
        rebuilt.load_state_dict(model.state_dict())
    except RuntimeError as exc:
        raise NvError(f"arch '{choice.arch}' does not rebuild this model, so a run could not load it again "
                      f"({str(exc).strip().splitlines()[0][:160]}); name the architecture its network is",
                      param="arch") from exc
    path = Path(path)
    with new_run_dir(path.name, path.parent, force) as run_dir:
        section = DataSection(name=data.name, classes=tuple(data.classes), kind=data.kind, cues=data.cues,
                              options=data.options.to_dict(), info=data.info)
        _write_run(run_dir, model, spec, section, None, None, head_start=False)  # its start is not known
        mark_latest(run_dir)
    return load_run(run_dir)


def with_weights(spec: ModelSpec, found: Pretrained | None) -> tuple[ModelSpec, WeightsRecord | None]:
    """`spec` with the normalisation its weights `found` were trained with (where known and their channels match
    the input), and config.json's record of the weights (None without weights)."""
    if found is None:
        return spec, None
    if found.mean is not None and found.std is not None and len(found.mean) == spec.input_shape[0]:
        spec = replace(spec, mean=found.mean, std=found.std)
    return spec, found.record()


def pretrained_image_size(choice: ModelChoice, data: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Dataset settings `values` with the image side `choice`'s named weights were trained with, where the dataset
    takes an image size and `values` give none (a given image_size wins)."""
    values = dict(values)
    if choice.weights and values.get("image_size") is None and "image_size" in dict(options_of(data)):
        size = resolve(choice.arch, choice.weights).crop_size
        if size is not None:
            values["image_size"] = size
    return values


def spec_for(choice: ModelChoice, bundle: DataBundle) -> ModelSpec:
    """The ModelSpec of `choice` on `bundle`: classes, input shape, views and normalisation come from the data."""
    shape = bundle.input_shape
    return ModelSpec.of(choice, num_classes=len(bundle.classes), input_shape=shape[-3:], mean=bundle.mean,
                        std=bundle.std, views=shape[0] if bundle.kind == "views" else 0)


def _from_run(source: Run, bundle: DataBundle, choice: ModelChoice, given: Collection[str],
              trust_code: bool) -> tuple[ModelSpec, "nn.Module"]:
    """A model that starts from `source`'s weights, with the data's input shape and normalisation (the run's own
    where its network started from named weights).

    Model flags in INIT_APPLIES override the converted run's; any other given flag must agree with it.
    """
    if source.config.train is not None:
        raise NvError(f"init takes a run written by convert; '{source.dir}' is a trained run (continue it with "
                      "resume, or convert a network to start from)", param=("init", "resume"))
    old = source.spec
    for flag in sorted(set(given) - set(INIT_APPLIES)):
        if getattr(choice, flag) != getattr(old, flag):
            raise NvError(f"{flag} {getattr(choice, flag)} disagrees with the init run '{source.dir}' "
                          f"({getattr(old, flag)}); from an init run only {', '.join(INIT_APPLIES)} may change "
                          "the model", param=(flag, "init", *INIT_APPLIES))
    fitted = spec_for(replace(old.choice, **{f: getattr(choice, f) for f in given if f in INIT_APPLIES}), bundle)
    if source.config.weights is not None and source.config.weights.named and len(old.mean) == len(fitted.mean):
        fitted = replace(fitted, mean=old.mean, std=old.std)  # what the named weights were trained with
    if old.multiview != fitted.multiview:
        raise NvError(f"init run '{source.dir}' and dataset '{bundle.name}' disagree on multi-view input; "
                      "convert and train on the same kind of data", param="init")
    if old.num_classes != fitted.num_classes:
        raise NvError(f"init run '{source.dir}' has {old.num_classes} classes but dataset '{bundle.name}' "
                      f"has {fitted.num_classes}; convert with num_classes {fitted.num_classes}",
                      param=("init", "num_classes"))
    # Naming the run's package.module:function again as arch is asking for it, like trust_code.
    model = build_model(fitted, load_weights=False, trust_code=trust_code or ("arch" in given and choice.user_code))
    # The data's normalisation replaces the converted run's; every other tensor comes from the run.
    state = {k: v for k, v in source.state().items() if not k.startswith("normalize.")}
    try:
        model.load_state_dict({**model.state_dict(), **state})
    except RuntimeError as exc:
        raise NvError(f"init run '{source.dir}' does not fit this data's input "
                      f"({str(exc).strip().splitlines()[0]})", param="init") from exc
    return fitted, model


def _start(cfg: TrainConfig) -> tuple[torch.device, bool]:
    """Resolve the device and join torchrun's process group, once per process."""
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    distributed = dist.init_from_env(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU under torchrun
    seed_everything(cfg.seed, cfg.deterministic)
    return device, distributed


def _log_dir(run_dir: Path | None, tensorboard: bool, log_dir: str | Path | None) -> Path | None:
    """Where TensorBoard's curves go: `log_dir`, else with `tensorboard` the run's own folder for them (None: none,
    or not on this process)."""
    if run_dir is None or not (tensorboard or log_dir is not None):
        return None
    return Path(log_dir) if log_dir is not None else access.inside(run_dir, files.TENSORBOARD_DIR)


def train(choice: ModelChoice, data: str, options: DataOptions, cfg: TrainConfig, *, name: str | None = None,
          runs_dir: str | Path = files.RUNS_DIR, force: bool = False, init: str | Path | None = None,
          given: Collection[str] = (), trust_code: bool = False, progress: ProgressFn | None = None,
          on_epoch: EpochFn | None = None, tensorboard: bool = False,
          log_dir: str | Path | None = None) -> Run | None:
    """Train a new run of `choice` on dataset `data` and write its run directory.

    Args:
        choice: the model asked for (architecture, code, reduction, baseline ...).
        data: a dataset name of the registry (`nv data list`).
        options: that dataset's settings (`data_options(data, {...})`); its seed must equal `cfg.seed`.
        cfg: the training recipe.
        name: the run directory's name (default: a timestamp) under `runs_dir`.
        runs_dir: where run directories live.
        force: replace an existing run of that name (only the files nv wrote).
        init: start from this run, written by `convert`.
        given: the model settings the user set, which `init` applies or refuses.
        trust_code: allow importing a `package.module:function` architecture named by `init`'s run (one
            named in `choice` is imported: the caller asked for it).
        progress: called as `progress(phase, done, total)` per batch.
        on_epoch: called with each epoch's metrics row.
        tensorboard: also write each epoch's curves for TensorBoard, into the run's `tensorboard` folder (needs the
            tensorboard package; metrics.csv stays the record).
        log_dir: write them into this folder instead (implies tensorboard).

    Returns:
        The trained `Run`; under torchrun rank 0 alone writes and gets it, the others get None.
    """
    if tensorboard or log_dir is not None:
        require_tensorboard()  # before anything is written
    if options.seed != cfg.seed:
        raise NvError(f"the data options' seed ({options.seed}) and the training seed ({cfg.seed}) differ; "
                      "give both the same seed")
    found = resolve(choice.arch, choice.weights) if choice.weights and init is None else None  # before the data
    device, distributed = _start(cfg)
    try:
        bundle = load_data(data, options)
        if init is not None:
            source = load_run(init)
            spec, model = _from_run(source, bundle, choice, given, trust_code)
            weights = source.config.weights  # the converted run's network started from them
        else:
            spec, weights = with_weights(spec_for(choice, bundle), found)
            model = build_model(spec, trust_code=trust_code or choice.user_code)
        scale_head_init(model, cfg.head_init_scale)  # before head_init.pt records where the head starts
        cfg = resolve_head_lr(cfg, model)  # config.json records the number the head trains with
        # Rank 0 alone creates, writes and locks the run directory, for the whole of training.
        with new_run_dir(name, runs_dir, force) if dist.is_main() else nullcontext() as run_dir:
            if run_dir is not None:
                section = DataSection(name=data, classes=tuple(bundle.classes), kind=bundle.kind, cues=bundle.cues,
                                      options=options.to_dict(), info=bundle.info)
                _write_run(run_dir, model, spec, section, cfg, weights)
                mark_latest(run_dir)
            trainer = Trainer(model, bundle.train, bundle.val, cfg, run_dir, device=device, distributed=distributed,
                              progress=progress, on_epoch=on_epoch, log_dir=_log_dir(run_dir, tensorboard, log_dir))
            trainer.fit()
    finally:
        dist.cleanup()
    return load_run(run_dir) if run_dir is not None else None


def resume(run: Run, *, device: str | None = None, workers: int | None = None, threads: int | None = None,
           trust_code: bool = False, progress: ProgressFn | None = None, on_epoch: EpochFn | None = None,
           tensorboard: bool = False, log_dir: str | Path | None = None) -> Run | None:
    """Continue an interrupted run from its checkpoint with the recipe in its config.json.

    Args:
        run: the run to continue (`load_run`).
        device: where to train now (None: as recorded); it changes where the run trains, not what.
        workers: DataLoader worker processes (None: as recorded).
        threads: CPU threads for torch (None: as recorded).
        trust_code: allow importing the run's `package.module:function` architecture.
        progress: called as `progress(phase, done, total)` per batch.
        on_epoch: called with each epoch's metrics row.
        tensorboard: add the epochs trained now to the run's TensorBoard curves (as `train`).
        log_dir: write them into this folder instead (implies tensorboard).

    Returns:
        The run, trained to its recorded epochs (None on torchrun ranks other than 0).
    """
    if tensorboard or log_dir is not None:
        require_tensorboard()
    if run.config.train is None:
        raise NvError(f"run '{run.dir}' was never trained (convert only); train it first, starting from this run "
                      "(init)", param="init")
    cfg = run.config.train
    where = {"device": device, "workers": workers, "threads": threads}
    cfg = replace(cfg, **{k: v for k, v in where.items() if v is not None})
    device, distributed = _start(cfg)
    main = dist.is_main()
    precision = _precision(cfg)
    if main and run.config.precision not in (None, precision):
        log.warning("run '%s' trained in %s; on %s it continues in %s", run.dir, run.config.precision, device,
                    precision)
    try:
        with lock.holding(run.dir) if main else nullcontext():
            bundle = run.data()
            model = build_model(run.spec, load_weights=False, trust_code=trust_code)
            trainer = Trainer(model, bundle.train, bundle.val, cfg, run.dir if main else None, device=device,
                              distributed=distributed, progress=progress, on_epoch=on_epoch,
                              log_dir=_log_dir(run.dir if main else None, tensorboard, log_dir))
            trainer.resume(run.path(files.CHECKPOINT))
            trainer.fit()
    finally:
        dist.cleanup()
    return load_run(run.dir) if main else None
