"""`nv train`: train a NeuroView network (or its standard baseline) and write a run directory."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NvError
from .app import app, on_interrupt
from .flags import (
    DATA,
    EXECUTION,
    MODEL,
    NEW_RUN,
    OUTPUT,
    RECIPE,
    SOUND,
    VIEWS,
    Flags,
    Group,
    command,
    data_values,
    model_values,
)
from .render import Format, emit, note, progress
from .runs import open_run

if TYPE_CHECKING:
    from ..runs.run import Run

# With --resume only these may be given: they say where to find the run and how to run, not what to train.
RESUME_ALLOWS = {"--run", "--runs-dir", "--trust-code", "--device", "--workers", "--threads", "--resume"}


def _epoch_line(row: dict[str, Any]) -> None:
    note(f"epoch {row['epoch']:>3}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f}  "
         f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s")


def report(run: "Run", fmt: Format) -> None:
    """Print where a finished run lives and its last epoch's metrics."""
    import pandas as pd

    from ..runs import files

    note(f"run written to {run.dir}")
    emit(pd.read_csv(run.dir / files.METRICS).tail(1), fmt, title=f"{run.name}: final epoch")


def _resume(flags: Flags, groups: tuple[Group, ...]) -> "Run | None":
    refused = [f for f in flags.given(*(g for g in groups if g is not OUTPUT)) if f not in RESUME_ALLOWS]
    if refused:
        raise NvError(f"--resume continues a run with the recipe in its config.json; {', '.join(refused)} would "
                      "change it (start a new run with --name instead)")
    run = open_run(flags["run"], flags["runs_dir"], write=False)  # resume locks the run itself
    if run.complete:
        note(f"run '{run.dir}' is already complete ({run.epochs_done} of {run.config['train']['epochs']} epochs); "
             "nothing to do")
        return None
    from ..training.recipes import resume  # torch, once the run is known to need it

    on_interrupt(f"interrupted; every file written so far is complete (resume with: nv train --resume --run {run.dir})")
    with progress("training") as bar:
        return resume(run, device=flags["device"], workers=flags["workers"], threads=flags["threads"],
                      trust_code=flags["trust_code"], progress=bar, on_epoch=_epoch_line)


def execute(flags: Flags, groups: tuple[Group, ...], default_data: str) -> "Run | None":
    """Resume, or check the flags of `nv train` / `nv multiview` and train; returns the run (rank 0)."""
    if flags["resume"]:
        return _resume(flags, groups)
    from ..data.registry import data_options
    from ..models.spec import ModelChoice
    from ..runs.run import check_name
    from ..training.config import TrainConfig

    if flags["run"] is not None:
        raise NvError("--run only selects the run to continue with --resume; name a new run with --name")
    model = model_values(flags)
    choice = ModelChoice(**model)
    if choice.baseline and flags["init"]:
        raise NvError("--baseline trains the standard network; it cannot start from an --init run")
    recipe = TrainConfig(**flags.of(RECIPE), **flags.of(EXECUTION))
    data = flags["data"] or default_data
    options = data_options(data, {**data_values(flags, *(g for g in groups if g in (DATA, SOUND, VIEWS))),
                                  "seed": recipe.seed})
    name = check_name(flags["name"]) if flags["name"] else None
    where = flags["runs_dir"] / name if name else "<the new run>"
    from ..training.recipes import train as train_run  # torch, once every flag has been checked

    on_interrupt(f"interrupted; every file written so far is complete (resume with: nv train --resume --run {where})")
    with progress("training") as bar:
        return train_run(choice, data, options, recipe, name=name, runs_dir=flags["runs_dir"], force=flags["force"],
                     init=flags["init"], given=list(model), trust_code=flags["trust_code"], progress=bar,
                     on_epoch=_epoch_line)


GROUPS = (MODEL, DATA, SOUND, VIEWS, RECIPE, EXECUTION, NEW_RUN, OUTPUT)


@command(app, "train", *GROUPS)
def train(flags: Flags) -> None:
    """Train a NeuroView network jointly from scratch (or --baseline: the standard network)."""
    run = execute(flags, GROUPS, "shapes")
    if run is not None:
        report(run, flags["fmt"])
