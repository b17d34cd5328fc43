"""Output for people and pipelines: Rich tables on a terminal, CSV or JSON on request; progress on stderr."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Iterator

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    import pandas as pd

out = Console(soft_wrap=True)
err = Console(stderr=True)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"

    def __str__(self) -> str:  # its name on the command line (Typer <= 0.28 maps an option's value back by it)
        return self.value


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))  # a class named '[bold]x' is shown as written, not as markup


def emit(frame: "pd.DataFrame", fmt: Format = Format.table, title: str | None = None) -> None:
    """Print a DataFrame as a Rich table, CSV or JSON records on stdout (under torchrun: rank 0 alone)."""
    import pandas as pd
    from rich.table import Table

    from ..runs.lock import writer_process  # not at start-up: `nv --help` needs none of it

    if not writer_process():
        return
    if fmt == Format.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt == Format.json:
        sys.stdout.write(json.dumps(json.loads(frame.to_json(orient="records")), indent=1) + "\n")
    else:
        table = Table(title=escape(title) if title else None, title_justify="left")
        for column in frame.columns:
            table.add_column(escape(str(column)),
                             justify="right" if pd.api.types.is_numeric_dtype(frame[column]) else "left")
        for row in frame.itertuples(index=False):
            table.add_row(*(_cell(v) for v in row))
        # Piped output has no terminal width to respect: never squeeze columns to 80 characters.
        (out if out.is_terminal else Console(soft_wrap=True, width=10_000)).print(table)
    sys.stdout.flush()


def note(message: str) -> None:
    """A human-facing line on stderr (kept out of parseable stdout; under torchrun: rank 0 alone)."""
    from ..runs.lock import writer_process  # not at start-up: `nv --help` needs none of it

    if not writer_process():
        return
    err.print(message, highlight=False, soft_wrap=True, markup=False)


@contextmanager
def progress(description: str) -> Iterator[object]:
    """A progress callback `fn(phase, done, total)`: a Rich bar on a terminal (rank 0's), silence otherwise."""
    from ..runs.lock import writer_process

    if not err.is_terminal or not writer_process():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"{description} {phase}", total=total)
            elif done == 1:  # the phase starts over (the next epoch)
                bar.reset(tasks[phase], total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update
