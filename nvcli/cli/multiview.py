"""`nv multiview`: one NeuroView backbone per camera view, one head; which views drive each class (Figure 5)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import typer

from ..errors import NvError
from ..models.spec import ModelChoice
from ..runs.files import RUNS_DIR
from ..training.config import TrainConfig
from . import options as o
from .render import Format, emit, note
from .requests import Output
from .train import Resume, Train, report, training_request


@dataclass(frozen=True)
class MultiView:
    """Train (or resume) a multi-view run, then show its views' mean head weights per class."""

    parallel: ClassVar[bool] = True  # under torchrun, every process takes its share

    training: Train | Resume

    def execute(self) -> None:
        from ..analysis.head import read_head
        from ..analysis.views import positive_views, view_weights

        training = self.training
        run = training.resumed() if isinstance(training, Resume) else training.run()
        if run is None:
            return
        fmt = training.fmt
        if fmt == Format.table or not run.is_neuroview:  # csv/json print one document: the views table
            report(run, fmt)
        else:
            note(f"run written to {run.dir}")
        if run.is_neuroview:
            result = view_weights(run.name, read_head(run), run.last_val_acc)
            Output(fmt).save(result, run)  # a fresh run: nothing to replace, figures drawn
            note("views with positive mean weight, per class:")
            for name, views in positive_views(result.frame).items():
                note(f"  {name}: {', '.join(map(str, views)) or 'none'}")
            emit(result.frame, fmt, title="Mean head weight per class and view")


def multiview(
    ctx: typer.Context,
    arch: o.Arch = ModelChoice.arch,
    code: o.CodeOpt = ModelChoice.code,
    reduce: o.ReduceOpt = ModelChoice.reduce,
    baseline: o.Baseline = False,
    weights: o.WeightsFile = None,
    freeze_backbone: o.FreezeBackbone = False,
    shared_backbone: o.SharedBackbone = False,
    data: o.DataName = "views",
    data_dir: o.DataDir = None,
    classes: o.Classes = None,
    image_size: o.ImageSize = None,
    on_error: o.OnErrorOpt = None,
    data_option: o.DataOption = None,
    views: o.Views = None,
    epochs: o.Epochs = TrainConfig.epochs,
    batch_size: o.TrainBatch = TrainConfig.batch_size,
    lr: o.Lr = TrainConfig.lr,
    optimizer: o.OptimizerOpt = TrainConfig.optimizer,
    weight_decay: o.WeightDecay = TrainConfig.weight_decay,
    momentum: o.Momentum = TrainConfig.momentum,
    scheduler: o.SchedulerOpt = TrainConfig.scheduler,
    step_size: o.StepSize = TrainConfig.step_size,
    gamma: o.Gamma = TrainConfig.gamma,
    label_smoothing: o.LabelSmoothing = TrainConfig.label_smoothing,
    seed: o.Seed = TrainConfig.seed,
    head_init_scale: o.HeadInitScale = TrainConfig.head_init_scale,
    head_lr_scale: o.HeadLrScale = TrainConfig.head_lr_scale,
    head_weight_decay: o.HeadWd = TrainConfig.head_weight_decay,
    head_l1: o.HeadL1 = TrainConfig.head_l1,
    head_warmup: o.HeadWarmup = TrainConfig.head_warmup,
    amp: o.Amp = False,
    deterministic: o.Deterministic = False,
    device: o.DeviceOpt = TrainConfig.device,
    workers: o.Workers = TrainConfig.workers,
    threads: o.Threads = None,
    name: o.Name = None,
    runs_dir: o.NewRunsDir = RUNS_DIR,
    force: o.Replace = False,
    resume: o.Resume = False,
    run: o.ResumeRun = None,
    init: o.Init = None,
    trust_code: o.NewTrustCode = False,
    fmt: o.FormatOpt = Format.table,
) -> MultiView:
    """`nv multiview`'s options as a MultiView request (its help is in app.COMMANDS; training_request reads the
    model's, the recipe's and the dataset's options by name)."""
    from ..data.registry import dataset_kind, readable

    if not resume and dataset_kind(data) != "views":
        views_data = [e.name for e in readable() if e.kind == "views"]
        raise NvError(f"--data {data} is not multi-view data; use one of {', '.join(views_data)}")
    return MultiView(training_request(ctx, data=data, data_pairs=data_option, name=name, runs_dir=runs_dir,
                                      force=force, resume=resume, run=run, init=init, trust_code=trust_code, fmt=fmt))
