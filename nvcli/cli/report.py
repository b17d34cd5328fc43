"""`nv report`: one self-contained HTML page with everything a run holds, or several runs side by side."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..runs.files import RUNS_DIR
from . import options as o
from .render import note, out
from .requests import open_run

Page = Annotated[Optional[Path], typer.Option("--out", "-o", rich_help_panel="Report", help="The HTML file to write "
                                              "(default: RUN/report.html; with several runs, "
                                              "FIRST_RUN/report_vs_<others>.html).")]


@dataclass(frozen=True)
class Report:
    """One HTML page of one run, or of several side by side."""

    runs: tuple[Path, ...]
    runs_dir: Path
    out: Path | None = None
    force: bool = False  # replace an existing --out file that nv report did not write

    def execute(self) -> None:
        from ..report.build import build_report

        # Only the page's home is written: the first run unless --out puts the page elsewhere; the others are read.
        runs = [open_run(p, self.runs_dir, write=i == 0 and self.out is None)
                for i, p in enumerate(self.runs or (None,))]
        page, path = build_report(runs, self.out)
        written = page.write(path, force=self.force)
        if page.drawn:
            note(f"drew {len(page.drawn)} figure(s) the run(s) lack, for the page only: "
                 f"{', '.join(Path(p).name for p in page.drawn)}")
        note(f"sections: {', '.join(page.sections)}")
        note("open it in a browser:")
        out.print(str(written.resolve()), highlight=False, soft_wrap=True)


Replace = Annotated[bool, typer.Option("--force", rich_help_panel="Report",
                                       help="Replace an existing --out file that nv report did not write.")]


def report(run: o.RunDirs = None, runs_dir: o.RunsDir = RUNS_DIR, out: Page = None, force: Replace = False) -> Report:
    """`nv report`'s options as a Report request (its help is in app.COMMANDS)."""
    return Report(tuple(run or ()), runs_dir, out, force)
