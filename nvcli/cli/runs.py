"""Which run a command reads (--run, or the latest, always said on stderr), and saving results into it."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .render import note

if TYPE_CHECKING:
    from ..runs.results import RunResult
    from ..runs.run import Run
    from .flags import Flags


def open_run(path: Path | None, runs_dir: Path, *, write: bool = True) -> "Run":
    """The run at `path` (default: the latest in `runs_dir`), named on stderr so a default never surprises.

    With `write` (a command that saves results into the run) the run is locked until the command ends, so
    no other nv process replaces or writes it meanwhile.
    """
    from ..runs.lock import acquire
    from ..runs.run import load_run

    run = load_run(path, runs_dir)
    note(f"run: {run.dir}" + (" (the latest; choose another with --run)" if path is None else ""))
    if write:
        acquire(run.dir)  # released when the command ends (cli.app.run)
    return run


def open_runs(paths: list[Path] | None, runs_dir: Path) -> list["Run"]:
    """The runs given with repeated --run, or the latest, each locked for writing."""
    return [open_run(p, runs_dir) for p in (paths or [None])]


def save_result(result: "RunResult", run_dir: Path, flags: "Flags") -> None:
    """Save `result` into `run_dir` as the command's --force and --plot/--no-plot ask, recording the command."""
    result.save(run_dir, force=flags.values.get("force", False), figures=flags.values.get("plot", True),
                command=shlex.join(["nv", *sys.argv[1:]]))
