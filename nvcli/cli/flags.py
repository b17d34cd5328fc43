"""Command-line flags declared once, in groups that fill the core's typed requests.

A group is a help panel and a set of flags; `command(app, name, *groups)` gives a command exactly the
flags of its groups and hands it a `Flags` object. Flags that fill a request (ModelChoice, TrainConfig,
dataset options) default to "not given" (None): the request's own dataclass default applies and is
shown in the help, and `Flags.given` tells --init and --resume which flags the user actually set.
Nothing here imports torch.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ..errors import NvError
from ..models.spec import CODES, REDUCES, ModelChoice
from ..runs.files import DENSE_HEAD, RUNS_DIR
from ..training.config import DEVICES, OPTIMIZERS, SCHEDULERS, TrainConfig
from .render import Format


@dataclass(frozen=True)
class Flag:
    """One option: its parameter name, type, flag names, help, and default (None: not given)."""

    name: str
    kind: Any
    names: tuple[str, ...]
    help: str
    default: Any = None
    shown: str | None = None  # the default shown in the help when `default` is None
    extra: tuple[tuple[str, Any], ...] = ()  # more typer.Option settings (min, max, ...)

    def parameter(self, panel: str) -> inspect.Parameter:
        option = typer.Option(self.default, *self.names, help=self.help, rich_help_panel=panel,
                              show_default=self.shown if self.shown is not None
                              else self.default not in (None, False, ...),
                              **dict(self.extra))
        return inspect.Parameter(self.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=self.kind)


@dataclass(frozen=True)
class Group:
    """Flags shown together in the help under `panel`."""

    panel: str
    flags: tuple[Flag, ...]

    def names(self) -> list[str]:
        return [f.name for f in self.flags]

    def only(self, *names: str) -> "Group":
        """This group with just the flags `names`."""
        return Group(self.panel, tuple(f for f in self.flags if f.name in names))

    def defaulting(self, name: str, default: Any) -> "Group":
        """This group with flag `name` defaulting to `default`."""
        return Group(self.panel, tuple(Flag(f.name, f.kind, f.names, f.help, default, None, f.extra)
                                       if f.name == name else f for f in self.flags))

    def showing(self, name: str, shown: str) -> "Group":
        """This group with flag `name` showing `shown` as its default (the command applies it when not given)."""
        return Group(self.panel, tuple(Flag(f.name, f.kind, f.names, f.help, f.default, shown, f.extra)
                                       if f.name == name else f for f in self.flags))


def _default(cls: type, name: str) -> str | None:
    field = next(f for f in fields(cls) if f.name == name)
    return None if field.default is MISSING or field.default is None else str(field.default)


def _request(cls: type, name: str, kind: Any, names: tuple[str, ...], help: str, **extra: Any) -> Flag:
    """A flag filling field `name` of request `cls`: not given by default, the field's default shown."""
    return Flag(name, kind, names, help, None, _default(cls, name), tuple(extra.items()))


def _switch(name: str, names: tuple[str, ...], help: str) -> Flag:
    return Flag(name, bool, names, help, False)


Text, Int, Float, Paths = Optional[str], Optional[int], Optional[float], Optional[Path]

MODEL = Group("Model", (
    _request(ModelChoice, "arch", Text, ("--arch", "-a"), "alexnet, vgg11..19[_bn], resnet18/34/50, densenet121, "
             "smallcnn, or package.module:function (imports and runs your code)."),
    _request(ModelChoice, "code", Text, ("--code",), f"Unit code: {', '.join(CODES)} (sigmoid, straight-through "
             "step, ReLU output)."),
    _request(ModelChoice, "reduce", Text, ("--reduce",), f"Reduce each unit's code map by {' or '.join(REDUCES)}."),
    _switch("baseline", ("--baseline",), "Train the standard network instead (Table 1)."),
    _request(ModelChoice, "weights", Paths, ("--weights",), "Load a standard network's state_dict first."),
    _switch("freeze_backbone", ("--freeze-backbone",), "Train only the linear head."),
    _switch("shared_backbone", ("--shared-backbone",), "Multi-view data: one backbone shared by all views."),
))
DATA = Group("Data", (
    Flag("data", Text, ("--data", "-d"), "Dataset name (nv data list).", shown="shapes"),
    Flag("data_dir", Text, ("--data-dir",), "Dataset root on disk (real datasets)."),
    Flag("classes", Text, ("--classes",), "Comma-separated subset of classes."),
    Flag("image_size", Int, ("--image-size",), "Image side in pixels (default: the dataset's).", extra=(("min", 16),)),
    Flag("on_error", Text, ("--on-error",), "Files that cannot be decoded: fail (default) or skip."),
    Flag("data_option", Optional[list[str]], ("--data-option", "-D"), "Another dataset setting KEY=VALUE "
         "(repeatable), e.g. -D train_per_class=50; nv data info NAME lists them."),
))
SOUND = Group("Sound data", (
    Flag("val_fold", Int, ("--val-fold",), "UrbanSound8K layout: the validation fold (default 10)."),
    Flag("cache_dir", Text, ("--cache-dir",), "Where decoded spectrograms are cached."),
    Flag("sample_rate", Int, ("--sample-rate",), "Resample every clip to this rate (Hz)."),
    Flag("n_mels", Int, ("--n-mels",), "Mel bands of the spectrogram."),
))
VIEWS = Group("Multi-view data", (
    Flag("views", Int, ("--views",), "Camera views per object (a divisor of the rendered views; default 12).",
         extra=(("min", 1),)),
))
RECIPE = Group("Recipe", (
    _request(TrainConfig, "epochs", Int, ("--epochs", "-e"), "Training epochs."),
    _request(TrainConfig, "batch_size", Int, ("--batch-size", "-b"), "Samples per batch."),
    _request(TrainConfig, "lr", Float, ("--lr",), "Peak learning rate."),
    _request(TrainConfig, "optimizer", Text, ("--opt",), f"Optimizer: {', '.join(OPTIMIZERS)}."),
    _request(TrainConfig, "weight_decay", Float, ("--weight-decay", "--wd"), "Weight decay."),
    _request(TrainConfig, "momentum", Float, ("--momentum",), "SGD momentum."),
    _request(TrainConfig, "scheduler", Text, ("--sched",), f"Learning-rate schedule per epoch: {', '.join(SCHEDULERS)}."),
    _request(TrainConfig, "step_size", Int, ("--step-size",), "Epochs between decays for --sched step."),
    _request(TrainConfig, "gamma", Float, ("--gamma",), "Decay factor for --sched step."),
    _request(TrainConfig, "label_smoothing", Float, ("--label-smoothing",), "Label smoothing of the loss."),
    _request(TrainConfig, "seed", Int, ("--seed",), "Seed of the data, the initialisation and the batch order."),
    _request(TrainConfig, "head_init_scale", Float, ("--head-init-scale",), "The head's initial weights: "
             "PyTorch's default init times this (0: zeros)."),
    _request(TrainConfig, "head_lr_scale", Float, ("--head-lr-scale",), "The head's learning rate: --lr times this."),
    _request(TrainConfig, "head_weight_decay", Float, ("--head-wd",), "The head's weight decay (default: "
             "--weight-decay)."),
    _request(TrainConfig, "head_l1", Float, ("--head-l1",), "L1 penalty on the head's weights, applied as a "
             "soft threshold of (head lr) x this after every step: exact zeros (0: none)."),
    _request(TrainConfig, "head_warmup", Int, ("--head-warmup",), "Epochs at the start in which only the head "
             "trains."),
    _switch("amp", ("--amp",), "Mixed precision (bfloat16 where supported, else float16 with loss scaling)."),
    _switch("deterministic", ("--deterministic",), "Use only deterministic kernels."),
))
# Every command with this flag applies it before it runs (see `command`); training also records it.
THREADS = Flag("threads", Int, ("--threads",), "CPU threads for torch (default: torch's choice).", extra=(("min", 1),))
EXECUTION = Group("Execution", (
    _request(TrainConfig, "device", Text, ("--device",), f"{', '.join(DEVICES)} (auto: cuda > mps > cpu)."),
    _request(TrainConfig, "workers", Int, ("--workers", "-j"), "DataLoader worker processes.", min=0),
    THREADS,
))
NEW_RUN = Group("Run directory", (
    Flag("name", Text, ("--name",), "Run directory name (default: a timestamp)."),
    Flag("runs_dir", Path, ("--runs-dir",), "Where run directories live.", RUNS_DIR),
    _switch("force", ("--force",), "Replace an existing run of that name."),
    _switch("resume", ("--resume",), "Continue --run (default: the latest) from its checkpoint."),
    Flag("run", Paths, ("--run",), "With --resume: the run to continue."),
    Flag("init", Paths, ("--init",), "Start from a run written by nv convert."),
    _switch("trust_code", ("--trust-code",), "Allow importing a run's package.module:function architecture."),
))
OUTPUT = Group("Output", (
    Flag("fmt", Format, ("--format", "-f"), "Output on stdout: table, csv or json.", Format.table),
))
RUN = Group("Run", (
    Flag("run", Paths, ("--run",), "Run directory (default: RUNS_DIR/latest)."),
    Flag("runs_dir", Path, ("--runs-dir",), "Where run directories live.", RUNS_DIR),
    _switch("trust_code", ("--trust-code",), "Allow importing the run's package.module:function architecture."),
))
RUNS = Group("Run", (
    Flag("run", Optional[list[Path]], ("--run",), "Run directory; repeat for a side-by-side table (default: latest)."),
    RUN.flags[1], RUN.flags[2],
))
HEAD = Group("Head", (
    Flag("head", str, ("--head",), "The head to read: dense (trained with the network) or a sparse head's name "
         "(nv sparsify).", DENSE_HEAD),
))
RANK = Group("Ranking", (
    Flag("rank", str, ("--rank",), "How units are ranked for a class: weight (the head's raw weight, as in the "
         "paper) or importance (weight x the code's standard deviation over the validation split; reads the "
         "split once, then its cached codes).", "weight"),
))
INFERENCE = Group("Execution", (
    Flag("device", str, ("--device",), f"{', '.join(DEVICES)} (auto: cuda > mps > cpu).", "auto"),
    Flag("batch_size", int, ("--batch-size", "-b"), "Samples per batch for inference.", 128, extra=(("min", 1),)),
    Flag("workers", int, ("--workers", "-j"), "DataLoader worker processes.", 0, extra=(("min", 0),)),
    THREADS,
))
RESULTS = Group("Results", (
    Flag("plot", bool, ("--plot/--no-plot",), "Draw the figures (PNG) besides the CSVs.", True),
    _switch("force", ("--force",), "Replace results made earlier with other settings."),
))


class Flags:
    """One command's flag values; `of(group)` gives the group's flags that the user set."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def of(self, group: Group) -> dict[str, Any]:
        """The given flags of `group` (None and unset switches left out), by parameter name."""
        return {n: self.values[n] for n in group.names()
                if self.values.get(n) is not None and self.values.get(n) is not False}

    def given(self, *groups: Group) -> list[str]:
        """The flags of `groups` that the user set, as they are spelled on the command line."""
        spelled = {f.name: f.names[0] for g in groups for f in g.flags}
        return [spelled[n] for g in groups for n in self.of(g)]


def command(app: typer.Typer, name: str, *groups: Group,
            arguments: tuple[tuple[str, Any, Any], ...] = ()) -> Callable[[Callable[[Flags], None]], Callable]:
    """Register `fn(flags)` as command `name` with exactly the flags of `groups` (later groups win on a name).

    A command with `--threads` sets torch's CPU threads from it before anything else runs.
    """

    def wrap(fn: Callable[[Flags], None]) -> Callable:
        params: dict[str, inspect.Parameter] = {}
        for arg, kind, default in arguments:
            params[arg] = inspect.Parameter(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                            annotation=kind)
        for group in groups:
            for flag in group.flags:
                params[flag.name] = flag.parameter(group.panel)

        def run(**values: Any) -> None:
            if values.get("threads") is not None:
                from ..training.devices import set_threads

                set_threads(values["threads"])
            fn(Flags(values))

        run.__name__, run.__doc__ = fn.__name__, fn.__doc__
        run.__signature__ = inspect.Signature(list(params.values()))  # type: ignore[attr-defined]
        app.command(name)(run)
        return fn

    return wrap


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, 'a,b' -> ['a', 'b'], else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.split(",") if "," in text else text


def model_values(flags: Flags) -> dict[str, Any]:
    """The model flags given (MODEL), as ModelChoice takes them: a --weights path as text."""
    model = flags.of(MODEL)
    if "weights" in model:
        model["weights"] = str(model["weights"])
    return model


def data_values(flags: Flags, *groups: Group) -> dict[str, Any]:
    """Dataset option values from the data flags of `groups` and -D KEY=VALUE; a key set twice is an error."""
    values = {k: v for g in groups for k, v in flags.of(g).items() if k not in ("data", "data_option")}
    if "classes" in values:
        values["classes"] = split_list(values["classes"])
    for pair in flags.values.get("data_option") or []:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise NvError(f"--data-option '{pair}' is not KEY=VALUE")
        if key in values or key == "seed":
            raise NvError(f"-D {key} repeats a setting given by a flag or another -D; set it once "
                          f"({'--seed' if key == 'seed' else '--' + key.replace('_', '-')})")
        values[key] = parse_value(text)
    return values


def split_list(text: str | None) -> list[str] | None:
    """'a,b , c' -> ['a', 'b', 'c']; None stays None; a name given twice is an error."""
    if not text:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise NvError(f"'{text}' names {', '.join(repeated)} more than once; each name may appear once")
    return names
