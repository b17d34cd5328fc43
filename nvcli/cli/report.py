"""`nv report`: one self-contained HTML page with everything a run holds, or several runs side by side."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .app import app
from .flags import RUNS, Flag, Flags, Group, command
from .render import note, out
from .runs import open_run

REPORT = Group("Report", (
    Flag("out", Optional[Path], ("--out", "-o"), "The HTML file to write (default: RUN/report.html; with several "
         "runs, FIRST_RUN/report_vs_<others>.html)."),
))


@command(app, "report", RUNS.only("run", "runs_dir"), REPORT)
def report(flags: Flags) -> None:
    """Write one HTML page showing everything the run holds (repeat --run for runs side by side); print its path."""
    from ..report.build import build_report

    # Only the page's home is written: the first run unless --out puts the page elsewhere; the others are read.
    runs = [open_run(p, flags["runs_dir"], write=i == 0 and flags["out"] is None)
            for i, p in enumerate(flags["run"] or [None])]
    page, path = build_report(runs, flags["out"])
    written = page.write(path)
    if page.drawn:
        note(f"drew {len(page.drawn)} figure(s) the run(s) lack, for the page only: "
             f"{', '.join(Path(p).name for p in page.drawn)}")
    note(f"sections: {', '.join(page.sections)}")
    note("open it in a browser:")
    out.print(str(written.resolve()), highlight=False, soft_wrap=True)
