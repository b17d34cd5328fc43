"""Runs and results shown in Jupyter: the HTML behind `Run._repr_html_` and `RunResult._repr_html_`.

The pieces are nv report's (`report.page`: every text escaped, figures embedded as PNG data, no script); a result's
files are written into a scratch folder, never into a run, so showing a result saves nothing.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

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
# Only what a notebook lacks, scoped to nv's blocks: Jupyter styles tables itself, and the report's page CSS would
# restyle the whole notebook.
CSS = """<style>
.nv-notebook figure{margin:6px 0 12px}.nv-notebook figure img{max-width:100%;height:auto;border:1px solid #eee}
.nv-notebook figcaption,.nv-notebook .files{font-size:12px;color:#444}
.nv-notebook .note{color:#8a5a00;font-size:12px}
.nv-notebook .stale{border:2px solid #b00020;background:#fff0f0;color:#b00020;padding:4px 8px;margin:6px 0}
.nv-notebook td.num{text-align:right;font-variant-numeric:tabular-nums}
</style>"""


def _block(title: str, body: str) -> str:
    """nv's HTML with its heading (plain text) and the notebook's small style sheet."""
    return f'{CSS}<div class="nv-notebook"><h3>{page.esc(title)}</h3>{body}</div>'


def csv_html(folder: Path, name: str, rows: int = ROWS) -> str:
    """The CSV file `name` in `folder` as a table of its first `rows` rows, then a line counting the others."""
    header, body = page.read_csv(folder, name)
    about = caption(name).text
    shown = page.files_line(page.esc(name + (f": {about}" if about else "")))
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
                tables.append(page.files_line(page.esc(name)))
    return _block(f"{type(result).__name__}: {result.key()}", "".join(figures) + "".join(tables))


def saved_html(run: "Run") -> str:
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
    marks = "".join(page.stale(entry.key, entry.stale, entry.command) for _, entry in found if entry.stale)
    return page.table(["folder", "result", "files", "state"], rows) + marks


def run_html(run: "Run") -> str:
    """A run: nv report's overview row, the training curves when saved, its configuration and its saved results."""
    row = summary(run)
    curves = (page.figure(access.read_bytes(run.dir, files.METRICS_PNG), files.METRICS_PNG,
                          caption(files.METRICS_PNG).text, None) if access.is_file(run.dir, files.METRICS_PNG) else "")
    config = "".join(f"<details><summary>{page.esc(title)}</summary>{page.key_values(pairs)}</details>"
                     for title, pairs in config_groups(run))
    body = (page.files_line(page.esc(str(run.dir))) + page.table(list(row), [list(row.values())]) + curves
            + "<h4>Configuration</h4>" + config + "<h4>Saved results</h4>" + saved_html(run))
    return _block(f"Run {run.name}", body)
