"""`nv train`: train a NeuroView network (or its standard baseline) and write a run directory."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Optional, TypeVar

import typer

from ..data.registry import PATH_SETTINGS
from ..errors import NvError
from ..models.spec import ModelChoice
from ..runs.files import RUNS_DIR
from ..training.config import TrainConfig
from . import options as o
from .interrupt import on_interrupt
from .render import Format, emit, note, progress
from .requests import open_run

if TYPE_CHECKING:
    from ..data.registry import DataOptions
    from ..runs.config import RunConfig
    from ..runs.run import Run
    from ..training.engine import EpochRow

MODEL_FIELDS = tuple(f.name for f in fields(ModelChoice))
RECIPE_FIELDS = tuple(f.name for f in fields(TrainConfig))
# Dataset settings a training command may have as options (None: the dataset's default).
DATA_SETTINGS = ("data_dir", "classes", "image_size", "on_error", "stylize", "val_fold", "cache_dir", "sample_rate",
                 "n_mels", "views")
T = TypeVar("T")
# Options that say where a run is and how to run it, not what to train: --resume takes any value of them.
WHERE = ("run", "runs_dir", "trust_code", "device", "workers", "threads", "resume", "fmt", "tensorboard", "log_dir")
TensorBoard = Annotated[bool, typer.Option("--tensorboard", rich_help_panel=o.OUTPUT, help="Also write each epoch's "
                                           "curves for TensorBoard into RUN/tensorboard (pip install "
                                           "'nvcli[tensorboard]'); metrics.csv stays the record.")]
LogDir = Annotated[Optional[Path], typer.Option("--log-dir", rich_help_panel=o.OUTPUT, help="Write the TensorBoard "
                                                "curves into this folder instead (implies --tensorboard).")]


def given_names(ctx: typer.Context) -> tuple[str, ...]:
    """The parameters the user gave on the command line (not defaults), in the command's order."""
    return tuple(name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE")


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, 'a,b' -> ['a', 'b'], else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.split(",") if "," in text else text


def dataset_values(flagged: dict[str, Any], pairs: list[str] | None) -> dict[str, Any]:
    """Dataset settings from data options (None: not given) and -D KEY=VALUE pairs; a key set twice is an error."""
    values = {k: v for k, v in flagged.items() if v is not None}
    if "classes" in values:
        values["classes"] = list(o.split_list(values["classes"]) or [])
    for key in PATH_SETTINGS:
        if key in values:
            values[key] = str(values[key])
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise NvError(f"--data-option '{pair}' is not KEY=VALUE")
        if key in values or key == "seed":
            raise NvError(f"-D {key} repeats a setting given by a flag or another -D; set it once "
                          f"({'--seed' if key == 'seed' else '--' + key.replace('_', '-')})")
        values[key] = parse_value(text)
    return values


def _epoch_line(row: EpochRow) -> None:
    note(f"epoch {row.epoch:>3}  train loss {row.train_loss:.4f} acc {row.train_acc:.3f}  "
         f"val loss {row.val_loss:.4f} acc {row.val_acc:.3f}  lr {row.lr:.2e}  {row.seconds:.1f}s")


def report(run: "Run", fmt: Format) -> None:
    """Print where a finished run lives and its last epoch's metrics."""
    from ..fs import access
    from ..runs import files

    note(f"run written to {run.dir}")
    emit(access.read_csv(run.dir, files.METRICS).tail(1), fmt, title=f"{run.name}: final epoch")


@dataclass(frozen=True)
class Train:
    """A new run: the model, the dataset and its settings, the recipe, and where the run goes."""

    parallel: ClassVar[bool] = True  # under torchrun, every process takes its share

    choice: ModelChoice
    data: str
    options: "DataOptions"
    recipe: TrainConfig
    name: str | None = None
    runs_dir: Path = RUNS_DIR
    force: bool = False
    init: Path | None = None
    given: tuple[str, ...] = ()  # the model fields given on the command line (--init applies or refuses them)
    trust_code: bool = False
    fmt: Format = Format.table
    tensorboard: bool = False
    log_dir: Path | None = None

    def run(self) -> "Run | None":
        """Train; the run (None on other ranks than 0 under torchrun). Training sets the recipe's threads."""
        from ..training.recipes import train  # torch, once every option has been checked

        where = self.runs_dir / self.name if self.name else "<the new run>"
        on_interrupt(f"interrupted; every file written so far is complete (resume with: nv train --resume --run "
                     f"{where})")
        with progress("training") as bar:
            return train(self.choice, self.data, self.options, self.recipe, name=self.name, runs_dir=self.runs_dir,
                         force=self.force, init=self.init, given=self.given, trust_code=self.trust_code, progress=bar,
                         on_epoch=_epoch_line, tensorboard=self.tensorboard, log_dir=self.log_dir)

    def execute(self) -> None:
        run = self.run()
        if run is not None:
            report(run, self.fmt)


@dataclass(frozen=True)
class Resume:
    """Continue a run from its checkpoint; `given` (what the user repeated of the recipe) must equal the record."""

    parallel: ClassVar[bool] = True  # under torchrun, every process takes its share

    run: Path | None
    runs_dir: Path
    device: str | None = None  # None: as recorded
    workers: int | None = None
    threads: int | None = None
    given: tuple[tuple[str, str, Any], ...] = ()  # (parameter, as typed, value) given besides WHERE
    trust_code: bool = False
    fmt: Format = Format.table
    tensorboard: bool = False
    log_dir: Path | None = None

    def resumed(self) -> "Run | None":
        """Continue the run; None when it is already complete (or on ranks other than 0)."""
        run = open_run(self.run, self.runs_dir, write=False)  # resume locks the run itself
        differing = [f"{shown} (the run has {recorded})" for name, shown, value in self.given
                     for recorded in [_recorded(run.config, name)] if not _same(name, value, recorded)]
        if differing:
            raise NvError(f"--resume continues '{run.dir}' with the recipe in its config.json; "
                          f"{'; '.join(differing)} would change it (start a new run with --name instead)")
        if run.complete:
            note(f"run '{run.dir}' is already complete ({run.epochs_done} of {run.config.train.epochs} epochs); "
                 "nothing to do")
            return None
        from ..training.recipes import resume  # torch, once the run is known to need it

        on_interrupt(f"interrupted; every file written so far is complete (resume with: nv train --resume --run "
                     f"{run.dir})")
        with progress("training") as bar:
            return resume(run, device=self.device, workers=self.workers, threads=self.threads,
                          trust_code=self.trust_code, progress=bar, on_epoch=_epoch_line,
                          tensorboard=self.tensorboard, log_dir=self.log_dir)

    def execute(self) -> None:
        run = self.resumed()
        if run is not None:
            report(run, self.fmt)


def _recorded(config: RunConfig, name: str) -> Any:
    """What config.json records for parameter `name` (model, recipe, dataset or its settings)."""
    if name in ("data", "name"):
        return config.data.name if name == "data" else config.name
    if name in MODEL_FIELDS:
        return getattr(config.model, name)
    if name in RECIPE_FIELDS:
        return None if config.train is None else getattr(config.train, name)
    return config.data.options.get(name)


def _same(name: str, given: Any, recorded: Any) -> bool:
    """Whether a value given on the command line equals the recorded one (paths compared resolved)."""
    if name in (*PATH_SETTINGS, "weights"):
        return recorded is not None and Path(given).expanduser().resolve() == Path(recorded).expanduser().resolve()
    if isinstance(given, (list, tuple)) and isinstance(recorded, (list, tuple)):
        return list(given) == list(recorded)
    return bool(given == recorded)


def from_options(kind: type[T], ctx: typer.Context, **values: Any) -> T:
    """A `kind` (ModelChoice, TrainConfig) of the command's options named as its fields; `values` replace options, and
    a field the command has no option for keeps its default."""
    return kind(**{**{f.name: ctx.params[f.name] for f in fields(kind) if f.name in ctx.params}, **values})


def training_request(ctx: typer.Context, *, data: str, data_pairs: list[str] | None, name: str | None, runs_dir: Path,
                     force: bool, resume: bool, run: Path | None, init: Path | None, trust_code: bool,
                     fmt: Format, tensorboard: bool = False, log_dir: Path | None = None) -> Train | Resume:
    """The request of `nv train` and `nv multiview`: resume a run, or train a new one. The model, the recipe and the
    dataset settings are the command's options named as ModelChoice's, TrainConfig's and DATA_SETTINGS' fields (a
    resumed run's model is its record, which the model flags given must equal)."""
    recipe = from_options(TrainConfig, ctx)
    data_settings = {key: ctx.params[key] for key in DATA_SETTINGS if key in ctx.params}
    given = given_names(ctx)
    if resume:
        spelled = {p.name: p.opts[0] for p in ctx.command.params if p.opts}
        new_run = [spelled[n] for n in given if n in ("force", "init")]
        if new_run:
            raise NvError(f"{' and '.join(new_run)} start a new run; --resume continues the one recorded in --run")
        repeated = [(n, f"{spelled[n]} {ctx.params[n]}", recorded_form(n, ctx.params[n])) for n in given
                    if n not in WHERE and n != "data_option"]
        repeated += [(k, f"--data-option {k}={v}", v) for k, v in dataset_values({}, data_pairs).items()]
        return Resume(run, runs_dir, recipe.device if "device" in given else None,
                      recipe.workers if "workers" in given else None, recipe.threads, tuple(repeated), trust_code, fmt,
                      tensorboard, log_dir)
    if run is not None:
        raise NvError("--run only selects the run to continue with --resume; name a new run with --name")
    model = from_options(ModelChoice, ctx, weights=ctx.params["weights"] or None)
    if model.baseline and init is not None:
        raise NvError("--baseline trains the standard network; it cannot start from an --init run")
    from ..data.registry import data_options
    from ..runs.run import check_name

    values = dataset_values(data_settings, data_pairs)
    if model.weights and init is None:  # an init run's network already holds its weights
        from ..training.recipes import pretrained_image_size  # torch and torchvision, for weights only

        values = pretrained_image_size(model, data, values)
    options = data_options(data, {**values, "seed": recipe.seed})
    return Train(model, data, options, recipe, check_name(name) if name else None, runs_dir, force, init,
                 tuple(n for n in given if n in MODEL_FIELDS), trust_code, fmt, tensorboard, log_dir)


def recorded_form(name: str, value: Any) -> Any:
    """A parsed option as config.json records it (classes as a list, paths as text)."""
    if name == "classes":
        return list(o.split_list(value) or [])
    return str(value) if isinstance(value, Path) else value


def train(
    ctx: typer.Context,
    arch: o.Arch = ModelChoice.arch,
    code: o.CodeOpt = ModelChoice.code,
    reduce: o.ReduceOpt = ModelChoice.reduce,
    baseline: o.Baseline = False,
    weights: o.WeightsFile = None,
    freeze_backbone: o.FreezeBackbone = False,
    shared_backbone: o.SharedBackbone = False,
    hidden_size: o.HiddenSize = ModelChoice.hidden_size,
    rnn_layers: o.RnnLayers = ModelChoice.rnn_layers,
    bidirectional: o.Bidirectional = False,
    time_units: o.TimeUnitsOpt = ModelChoice.time_units,
    data: o.DataName = "shapes",
    data_dir: o.DataDir = None,
    classes: o.Classes = None,
    image_size: o.ImageSize = None,
    on_error: o.OnErrorOpt = None,
    data_option: o.DataOption = None,
    stylize: o.Stylize = None,
    val_fold: o.ValFold = None,
    cache_dir: o.CacheDir = None,
    sample_rate: o.SampleRate = None,
    n_mels: o.NMels = None,
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
    tensorboard: TensorBoard = False,
    log_dir: LogDir = None,
) -> Train | Resume:
    """`nv train`'s options as a Train or Resume request (its help is in app.COMMANDS; training_request reads the
    model's, the recipe's and the dataset's options by name)."""
    return training_request(ctx, data=data, data_pairs=data_option, name=name, runs_dir=runs_dir, force=force,
                            resume=resume, run=run, init=init, trust_code=trust_code, fmt=fmt, tensorboard=tensorboard,
                            log_dir=log_dir)
