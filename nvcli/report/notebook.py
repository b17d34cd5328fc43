"""Runs and results shown in Jupyter: the HTML behind `Run._repr_html_` and `RunResult._repr_html_`.

The pieces are nv report's (`report.page`: every text escaped, figures embedded as PNG data, no script), framed by
templates/notebook.html; a result's files are written into a scratch folder, never into a run, so showing a result
saves nothing.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup

from ..errors import NvError
from ..fs import access
from ..runs import files
from . import page
from .build import config_groups, sources, summary
from .catalog import caption

if TYPE_CHECKING:
    from ..runs.results import RunResult
    from ..runs.run import Run

ROWS = 15  # rows of a table shown in a notebook; the rest are counted
NOTEBOOK = page.TEMPLATES.get_template("notebook.html").module


def _block(title: str, body: Markup) -> str:
    """nv's HTML with its heading and the notebook's small style sheet (plain `str`, as Jupyter takes it)."""
    return str(NOTEBOOK.block(title, body))


def csv_html(folder: Path, name: str, rows: int = ROWS) -> Markup:
    """The CSV file `name` in `folder` as a table of its first `rows` rows, then a line counting the others."""
    header, body = page.read_csv(folder, name)
    about = caption(name).text
    shown = page.files_line(name + (f": {about}" if about else ""))
    if not header:
        return shown + page.note("an empty table")
    more = len(body) - rows
    cut = page.note(f"{more} more rows (of {len(body)}) in {name}") if more > 0 else ""
    return shown + page.table(header, body[:rows]) + cut


def result_html(result: "RunResult") -> str:
    """A result's figures, then its tables, as its `save` would write them (drawn in a scratch folder)."""
    figures, tables = [], []
    with tempfile.TemporaryDirectory(prefix="nv-notebook-") as tmp:
        folder = Path(tmp)
        for name, write in result.artifacts(figures=True).items():
            access.inside(folder, name).parent.mkdir(exist_ok=True)  # a name may lie in a subfolder (heads/)
            write(folder / name)
            if name.endswith(".png"):
                figures.append(page.figure(access.read_bytes(folder, name), name, caption(name).text, None))
            elif name.endswith(".csv"):
                tables.append(csv_html(folder, name))
            else:
                tables.append(page.files_line(name))
    return _block(f"{type(result).__name__}: {result.key()}", page.join(figures + tables))


def saved_html(run: "Run") -> Markup:
    """The results saved in the run (and in its result folders): key, files, and a stale mark with the reasons and
    the command that makes it again where it no longer describes the run, as nv report marks it."""
    try:
        found = [(source.name, entry) for source in sources(run) for entry in source.entries]
    except NvError as exc:  # a damaged results.json: say so, show the rest of the run
        return page.note(str(exc))
    if not found:
        return page.absent("no results saved yet")
    rows = [[folder or ".", entry.key, ", ".join(entry.files), "stale" if entry.stale else "current"]
            for folder, entry in found]
    marks = page.join(page.stale(entry.key, entry.stale, entry.command) for _, entry in found if entry.stale)
    return page.table(["folder", "result", "files", "state"], rows) + marks


def run_html(run: "Run") -> str:
    """A run: nv report's overview row, the training curves when saved, its configuration and its saved results."""
    row = summary(run)
    curves = (page.figure(access.read_bytes(run.dir, files.METRICS_PNG), files.METRICS_PNG,
                          caption(files.METRICS_PNG).text, None) if access.is_file(run.dir, files.METRICS_PNG) else "")
    config = page.join(page.folded(title, page.key_values(pairs)) for title, pairs in config_groups(run))
    body = NOTEBOOK.run(page.files_line(str(run.dir)), page.table(list(row), [list(row.values())]), curves, config,
                        saved_html(run))
    return _block(f"Run {run.name}", body)
