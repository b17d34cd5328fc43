"""`nv compare`: two runs of one architecture side by side (case studies 2 and 3)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import NvError
from .app import app
from .flags import INFERENCE, OUTPUT, RANK, RESULTS, Flag, Flags, Group, command
from .render import Format, emit, note, progress
from .runs import open_run, save_result

COMPARE = Group("Comparison", (
    Flag("out", Optional[Path], ("--out", "-o"), "Output directory (default: RUN_A/compare_<B>/)."),
    Flag("top", int, ("--top", "-k"), "The k of top_share (units of largest |w|).", 10, extra=(("min", 1),)),
    Flag("heads", Optional[list[str]], ("--head",), "The head of both runs (dense, or a sparse head's name); give it "
         "twice for run A's and run B's (--head dense --head sparse10 compares a run with itself)."),
    Flag("trust_code", bool, ("--trust-code",), "Allow importing the runs' package.module:function architecture.",
         False),
))


@command(app, "compare", COMPARE, RANK, INFERENCE, RESULTS, OUTPUT, arguments=(
    ("run_a", Path, typer.Argument(..., help="Run A, e.g. trained on the original images.")),
    ("run_b", Path, typer.Argument(..., help="Run B of the same architecture, e.g. trained on stylised images."))))
def compare(flags: Flags) -> None:
    """Compare accuracy and per-layer weight shares of two runs; write compare*.csv and compare.png."""
    from ..runs.files import DENSE_HEAD, RUNS_DIR

    given = flags["heads"] or [DENSE_HEAD]
    if len(given) > 2:
        raise NvError(f"--head was given {len(given)} times; give it once (both runs) or twice (run A, then run B)")
    heads = (given[0], given[-1])
    a, b = open_run(flags["run_a"], RUNS_DIR), open_run(flags["run_b"], RUNS_DIR, write=False)
    from ..analysis.compare import check_comparable, output_dir  # after the runs: a wrong path answers at once
    from ..analysis.compare import compare as compare_runs

    check_comparable(a, b, heads)  # before creating the output directory
    path = output_dir(flags["out"], a, b, heads)
    with progress("compare") as bar:
        result = compare_runs(a, b, heads=heads, top=flags["top"], rank=flags["rank"], device=flags["device"],
                              batch_size=flags["batch_size"], workers=flags["workers"], trust_code=flags["trust_code"],
                              progress=bar)
    save_result(result, path, flags)
    if flags["fmt"] == Format.table:
        emit(result.accuracy, flags["fmt"], title="Validation accuracy")
    emit(result.overall, flags["fmt"], title=f"Share of all classes' {flags['rank']} per layer (a = {result.names['a']}, "
         f"b = {result.names['b']}); unit_share: the layer's share of the units")
    note(f"wrote {', '.join(result.artifacts(flags['plot']))} to {path}")
