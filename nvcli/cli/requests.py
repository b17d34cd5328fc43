"""What every command's request shares: the run it reads (`RunSource`) and how it outputs (`Output`).

A command is a typed function that parses its options into a request (a frozen dataclass with `execute()`);
`nv` runs the request. Parsing touches no file and imports no torch, so a wrong flag answers at once, and
tests/test_cli_contract.py can check, for every command and every option, that the option reaches the request.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .render import Format, note

if TYPE_CHECKING:
    from ..runs.results import RunResult
    from ..runs.run import Run


class Command(Protocol):
    """A parsed command: everything it was given, ready to run."""

    def execute(self) -> None:
        """Do the work and print the result."""


@dataclass(frozen=True)
class RunSource:
    """Which run a command reads: --run (default: the latest in --runs-dir), and whether its code may run."""

    path: Path | None
    runs_dir: Path
    trust_code: bool = False

    def open(self, *, write: bool = True) -> "Run":
        """The run, named on stderr so a default never surprises; with `write`, locked until the command ends."""
        return open_run(self.path, self.runs_dir, write=write)


@dataclass(frozen=True)
class RunSources:
    """The runs of a command that reads several (--run repeated; default: the latest)."""

    paths: tuple[Path, ...]
    runs_dir: Path
    trust_code: bool = False

    def open(self) -> list["Run"]:
        """Each run, locked for writing."""
        return [open_run(p, self.runs_dir) for p in (self.paths or (None,))]


@dataclass(frozen=True)
class Output:
    """How a command answers: the format on stdout, whether figures are drawn, whether results are replaced."""

    fmt: Format = Format.table
    plot: bool = True
    force: bool = False

    def save(self, result: "RunResult", run: "Run", into: Path | None = None) -> None:
        """Save `result` into `run` (or the folder `into`) as --force and --plot ask, recording the command that made
        it (under torchrun: rank 0 alone)."""
        from ..runs.lock import writer_process

        if writer_process():
            result.save(run, into=into, force=self.force, figures=self.plot, command=shlex.join(["nv", *sys.argv[1:]]))

    def wrote(self, result: "RunResult", where: Path) -> None:
        """Say on stderr which files `result` wrote into the folder `where` (its figures only when drawn)."""
        note(f"wrote {', '.join(result.artifacts(self.plot))} to {where}")


def open_run(path: Path | None, runs_dir: Path, *, write: bool = True) -> "Run":
    """The run at `path` (default: the latest in `runs_dir`), named on stderr.

    With `write` (a command that saves results into the run) the run is locked until the command ends, so
    no other nv process replaces or writes it meanwhile.
    """
    from ..runs.lock import acquire
    from ..runs.results import read_manifest
    from ..runs.run import load_run

    run = load_run(path, runs_dir)
    note(f"run: {run.dir}" + (" (the latest; choose another with --run)" if path is None else ""))
    if write:
        acquire(run.dir)  # released when the command ends (cli.app.run)
        read_manifest(run.dir)  # a damaged record of results is refused before any work, not after it
    return run
