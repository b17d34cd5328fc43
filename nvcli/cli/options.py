"""The options commands share, declared once as `Annotated` types; a command's signature lists the ones it takes.

A choice is a `Literal` of the core (the help shows `[soft|hard|raw]`; `choice` declares it); a default is the
core's own (a request dataclass's field), written in the command's signature. Options that fill a dataset's
settings default to None: each dataset has its own defaults (`nv data info NAME`). Every integer option has an upper
bound (below), or tests/test_cli_contract.py says why it needs none. Nothing here imports torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional, get_args

import typer

from ..analysis.settings import MAX_COUNT as MAX_COUNT  # the bound of counts the analyses check
from ..analysis.settings import Rank
from ..data.registry import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, OnError
from ..models.spec import MAX_CLASSES as MAX_CLASSES  # checked when a model is built, not when parsed
from ..models.spec import Code, Reduce, TimeUnits
from ..training.config import MAX_SEED, Device, Optimizer, Scheduler
from .render import Format

MODEL, DATA, SOUND, VIEWS, RECIPE = "Model", "Data", "Sound data", "Multi-view data", "Recipe"
EXECUTION, NEW_RUN, RUN, HEAD, RESULTS, OUTPUT = "Execution", "Run directory", "Run", "Head", "Results", "Output"


# Upper bounds of integer options the core does not bound itself (it does ablate's counts, the loaders' workers and
# more, in its own words). Issue 31: `--threads 99999` started 32,364 threads. Fixed, not the machine's core count,
# so a command line means the same everywhere; no real use comes near them.
MAX_THREADS = 1024  # torch's CPU threads: more than the largest single machines have hardware threads
MAX_BATCH = 65_536  # samples per batch: a batch is allocated at once, on the device
MAX_EPOCHS = 100_000  # epochs, and epochs between learning-rate decays
MAX_CHANNELS = 4096  # input channels of a converted network: more than any sensor has bands
MAX_MELS = 1024  # mel bands: beyond the frequency bins of common FFT sizes (the filter bank is built at once)


def _option(*names: str, help: str, panel: str, **settings: object) -> typer.models.OptionInfo:
    return typer.Option(*names, help=help, rich_help_panel=panel, **settings)  # type: ignore[arg-type]


def number(kind: type[int] | type[float], *names: str, help: str, panel: str | None = None, min: float | None = None,
           max: float | None = None, **settings: object) -> typer.models.OptionInfo:
    """An integer or real option within min..max: another value is refused in one line naming it and the range, in the
    same words whatever Typer's release (Typer 0.29 words its own range check without the value)."""
    span = (f"{min}<=x<={max}" if min is not None and max is not None else f"x>={min}" if min is not None
            else f"x<={max}" if max is not None else "")
    label = "integer" if kind is int else "float"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not a valid {label}.") from None
        if (min is not None and value < min) or (max is not None and value > max):
            raise typer.BadParameter(f"{value} is not in the range {span}.")
        return value

    settings.setdefault("rich_help_panel", panel)
    return typer.Option(*names, help=help, parser=parse, metavar=f"{label.upper()} [{span}]" if span else label.upper(),
                        **settings)  # type: ignore[call-overload]


def choice(kind: Any, *names: str, help: str, panel: str | None = None, **settings: object) -> typer.models.OptionInfo:
    """An option whose value is one of `kind`'s (a Literal, or an Enum of strings): the help lists them, and any other
    value is refused in one line naming the valid ones and the closest."""
    values = [str(getattr(v, "value", v)) for v in (kind if isinstance(kind, type) else get_args(kind))]

    def parse(text: str) -> Any:
        if str(text) not in values:
            from ..errors import choice_error

            raise choice_error(f"{names[0]} value", text, values)
        return kind(str(text)) if isinstance(kind, type) else str(text)

    return typer.Option(*names, help=help, rich_help_panel=panel, parser=parse,  # type: ignore[call-overload]
                        metavar=f"[{'|'.join(values)}]", **settings)


# Model
Arch = Annotated[str, _option("--arch", "-a", panel=MODEL, help="alexnet, vgg11..19[_bn], resnet18/34/50, "
                              "densenet121, smallcnn, rnn/gru/lstm (sequences), or package.module:function (imports "
                              "and runs your code).")]
CodeOpt = Annotated[Code, choice(Code, "--code", panel=MODEL,
                                  help="Unit code: sigmoid, straight-through step, ReLU output.")]
ReduceOpt = Annotated[Reduce, choice(Reduce, "--reduce", panel=MODEL,
                                     help="Reduce each unit's code map by max or mean.")]
Baseline = Annotated[bool, _option("--baseline", panel=MODEL, help="Train the standard network instead (Table 1).")]
WeightsFile = Annotated[Optional[str], _option("--weights", panel=MODEL, metavar="FILE|NAME", help="Start from "
                                               "these weights: a state_dict FILE, or a name: DEFAULT, torchvision's "
                                               "(IMAGENET1K_V1), a timm tag.")]
FreezeBackbone = Annotated[bool, _option("--freeze-backbone", panel=MODEL, help="Train only the linear head.")]
SharedBackbone = Annotated[bool, _option("--shared-backbone", panel=MODEL,
                                         help="Multi-view data: one backbone shared by all views.")]
HiddenSize = Annotated[int, number(int, "--hidden-size", panel=MODEL, min=1,
                                    help="rnn/gru/lstm: hidden units per layer and direction.")]
RnnLayers = Annotated[int, number(int, "--rnn-layers", panel=MODEL, min=1,
                                   help="rnn/gru/lstm: stacked layers.")]
Bidirectional = Annotated[bool, _option("--bidirectional", panel=MODEL, help="rnn/gru/lstm: both directions.")]
TimeUnitsOpt = Annotated[TimeUnits, choice(TimeUnits, "--time-units", panel=MODEL, help="rnn/gru/lstm NeuroView: "
                                           "the hidden states of every layer feed the head, or the last layer's only.")]

# Data: None is the dataset's own default
DataName = Annotated[str, _option("--data", "-d", panel=DATA, help="Dataset name (nv data list).")]
DataDir = Annotated[Optional[Path], _option("--data-dir", panel=DATA, help="Dataset root on disk (real datasets).")]
Classes = Annotated[Optional[str], _option("--classes", panel=DATA, help="Comma-separated subset of classes.")]
ImageSize = Annotated[Optional[int], _option("--image-size", panel=DATA, help=f"Image side in pixels, "
                                             f"{MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} (default: the dataset's).")]
OnErrorOpt = Annotated[Optional[OnError], choice(OnError, "--on-error", panel=DATA, help="Files that cannot be "
                                                 "decoded: fail or skip them (default: the dataset's, fail).")]
DataOption = Annotated[Optional[list[str]], _option("--data-option", "-D", panel=DATA, help="Another dataset setting "
                                                    "KEY=VALUE (repeatable), e.g. -D train_per_class=50; nv data info "
                                                    "NAME lists them.")]
Stylize = Annotated[Optional[float], number(float, "--stylize", panel=DATA, min=0.0, max=1.0, help="cues data: the "
                                            "share of training images whose texture and colour are replaced by a "
                                            "random style, keeping the shape (default 0).")]
ValFold = Annotated[Optional[int], number(int, "--val-fold", panel=SOUND, min=1,
                                           help="The validation fold: UrbanSound8K (default 10) or ESC-50 "
                                                "(audiofolder, default 5).")]
CacheDir = Annotated[Optional[Path], _option("--cache-dir", panel=SOUND, help="Where decoded spectrograms are cached.")]
SampleRate = Annotated[Optional[int], number(int, "--sample-rate", panel=SOUND, min=1,
                                              help="Resample every clip to this rate (Hz).")]
NMels = Annotated[Optional[int], number(int, "--n-mels", panel=SOUND, min=1, max=MAX_MELS,
                                         help="Mel bands of the spectrogram.")]
Views = Annotated[Optional[int], number(int, "--views", panel=VIEWS, min=1, help="Camera views per object (a divisor "
                                        "of the rendered views; default 12).")]

# Recipe (defaults: TrainConfig's)
Epochs = Annotated[int, number(int, "--epochs", "-e", panel=RECIPE, min=1, max=MAX_EPOCHS, help="Training epochs.")]
TrainBatch = Annotated[int, number(int, "--batch-size", "-b", panel=RECIPE, min=1, max=MAX_BATCH,
                                    help="Samples per batch.")]
Lr = Annotated[float, _option("--lr", panel=RECIPE, help="Peak learning rate.")]
OptimizerOpt = Annotated[Optimizer, choice(Optimizer, "--opt", panel=RECIPE, help="Optimizer.")]
WeightDecay = Annotated[float, _option("--weight-decay", "--wd", panel=RECIPE, help="Weight decay.")]
Momentum = Annotated[float, _option("--momentum", panel=RECIPE, help="SGD momentum.")]
SchedulerOpt = Annotated[Scheduler, choice(Scheduler, "--sched", panel=RECIPE,
                                           help="Learning-rate schedule per epoch.")]
StepSize = Annotated[int, number(int, "--step-size", panel=RECIPE, min=1, max=MAX_EPOCHS,
                                  help="Epochs between decays for --sched step.")]
Gamma = Annotated[float, _option("--gamma", panel=RECIPE,
                                 help="Decay factor for --sched step.")]
LabelSmoothing = Annotated[float, _option("--label-smoothing", panel=RECIPE,
                                          help="Label smoothing of the loss.")]
Seed = Annotated[int, number(int, "--seed", panel=RECIPE, min=0, max=MAX_SEED,
                              help="Seed of the data, the initialisation and the batch order.")]
HeadInitScale = Annotated[float, _option("--head-init-scale", panel=RECIPE, help="The head's initial "
                                         "weights: PyTorch's default init times this (0: zeros).")]
HeadLrScale = Annotated[Optional[float], _option("--head-lr-scale", panel=RECIPE, help="The head's learning rate: "
                                                 "--lr times this (default: min(1, 1152 / head units), so a wide "
                                                 "head takes the demo head's step; config.json records the value).")]
HeadWd = Annotated[Optional[float], _option("--head-wd", panel=RECIPE,
                                            help="The head's weight decay (default: --weight-decay).")]
HeadL1 = Annotated[float, _option("--head-l1", panel=RECIPE, help="L1 penalty on the head's weights, applied "
                                  "as a soft threshold of (head lr) x this after every step: exact zeros (0: none).")]
HeadWarmup = Annotated[int, number(int, "--head-warmup", panel=RECIPE, min=0,
                                    help="Epochs at the start in which only the head trains.")]
Amp = Annotated[bool, _option("--amp", panel=RECIPE, help="Mixed precision (bfloat16 where supported, else float16 "
                              "with loss scaling).")]
Deterministic = Annotated[bool, _option("--deterministic", panel=RECIPE, help="Use only deterministic kernels.")]

# Execution
DeviceOpt = Annotated[Device, choice(Device, "--device", panel=EXECUTION, help="auto: cuda > mps > cpu.")]
BatchSize = Annotated[int, number(int, "--batch-size", "-b", panel=EXECUTION, min=1, max=MAX_BATCH,
                                   help="Samples per batch for inference.")]
Workers = Annotated[int, number(int, "--workers", "-j", panel=EXECUTION, min=0,
                                 help="DataLoader worker processes.")]
Threads = Annotated[Optional[int], number(int, "--threads", panel=EXECUTION, min=1, max=MAX_THREADS,
                                           help="CPU threads for torch (default: torch's choice).")]

# The run a command reads, and the run training writes
RunDir = Annotated[Optional[Path], _option("--run", panel=RUN, help="Run directory (default: RUNS_DIR/latest).")]
RunDirs = Annotated[Optional[list[Path]], _option("--run", panel=RUN, help="Run directory; repeat for a side-by-side "
                                                  "table (default: the latest).")]
RunsDir = Annotated[Path, _option("--runs-dir", panel=RUN, help="Where run directories live.")]
TrustCode = Annotated[bool, _option("--trust-code", panel=RUN, help="Allow importing the run's package.module:function "
                                    "architecture (runs its code).")]
Name = Annotated[Optional[str], _option("--name", panel=NEW_RUN, help="Run directory name (default: a timestamp).")]
NewRunsDir = Annotated[Path, _option("--runs-dir", panel=NEW_RUN, help="Where run directories live.")]
Replace = Annotated[bool, _option("--force", panel=NEW_RUN, help="Replace an existing run of that name (only the files "
                                  "nv wrote).")]
Resume = Annotated[bool, _option("--resume", panel=NEW_RUN, help="Continue --run (default: the latest) from its "
                                 "checkpoint; other flags must equal the recorded recipe.")]
ResumeRun = Annotated[Optional[Path], _option("--run", panel=NEW_RUN, help="With --resume: the run to continue.")]
Init = Annotated[Optional[Path], _option("--init", panel=NEW_RUN, help="Start from a run written by nv convert.")]
NewTrustCode = Annotated[bool, _option("--trust-code", panel=NEW_RUN,
                                       help="Allow importing a run's package.module:function architecture.")]

# What an analysis reads and writes
HeadName = Annotated[str, _option("--head", panel=HEAD, help="The head to read: dense (trained with the network) or a "
                                  "sparse head's name (nv sparsify).")]
HeadNames = Annotated[Optional[list[str]], _option("--head", panel=HEAD, help="Head(s), repeatable: dense (default) "
                                                   "and/or sparse heads by name (nv sparsify).")]
RankOpt = Annotated[Rank, choice(Rank, "--rank", panel=HEAD, help="How units are ranked for a class: weight (the "
                                 "head's raw weight, as in the paper) or importance (weight x the code's standard "
                                 "deviation over the validation split; reads the split once, then its cached codes).")]
Plot = Annotated[bool, _option("--plot/--no-plot", panel=RESULTS, help="Draw the figures (PNG) besides the CSVs.")]
Force = Annotated[bool, _option("--force", panel=RESULTS, help="Replace results made earlier with other settings.")]
FormatOpt = Annotated[Format, choice(Format, "--format", "-f", panel=OUTPUT, help="Output on stdout.")]


def split_list(text: str | None) -> tuple[str, ...] | None:
    """'a,b , c' -> ('a', 'b', 'c'); None stays None; a name given twice is an error."""
    if not text:
        return None
    from ..errors import NvError

    names = [part.strip() for part in text.split(",") if part.strip()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise NvError(f"'{text}' names {', '.join(repeated)} more than once; each name may appear once")
    return tuple(names)
