"""Runs and results in Jupyter: docs/notebook.ipynb runs from top to bottom (nbclient, a python3 kernel of this
interpreter) and shows tables and figures; every text in their HTML is escaped as nv report escapes it."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
from conftest import HOSTILE_CLASS, HOSTILE_RUN, shown_as_text, trained_copy

from nvcli.analysis.evaluate import evaluate
from nvcli.analysis.head import read_head
from nvcli.analysis.settings import Compute
from nvcli.analysis.weights import weights
from nvcli.runs import files
from nvcli.runs.run import Run, load_run

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "notebook.ipynb"
EXTRA = ("nbclient", "nbformat", "ipykernel")
CELL_SECONDS = 300


def _require_notebook_extra() -> None:
    """Skip, naming what is missing, unless NV_REQUIRE_NOTEBOOK=1 (CI installs the extra): then fail."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        why = f"{', '.join(missing)} not installed (pip install 'nvcli[notebook]')"
        if os.environ.get("NV_REQUIRE_NOTEBOOK") == "1":
            pytest.fail(f"NV_REQUIRE_NOTEBOOK=1 but {why}")
        pytest.skip(why)


def _html(cell: dict) -> str:
    """The HTML a code cell displayed ('' if none)."""
    return "".join(str(o.get("data", {}).get("text/html", "")) for o in cell.get("outputs", []))


def test_the_notebook_runs_and_shows_tables_and_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _require_notebook_extra()
    import nbclient
    import nbformat

    # The kernel: this interpreter (a python3 kernelspec found first on JUPYTER_PATH), with this checkout's nvcli,
    # one thread, its temporary files (the notebook's runs) and working directory in tmp_path.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    work = tmp_path / "work"
    work.mkdir()

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=CELL_SECONDS, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}}).execute()

    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert [p.name for p in tmp_path.glob("nv-notebook-*/demo")] == ["demo"]  # the runs went to the temp folder
    shown = {c.source.splitlines()[-1]: _html(c) for c in code if _html(c)}
    run_first, run_last = shown["run"], shown['load_run(runs_dir / "demo")']
    for html in (run_first, run_last):
        assert "Run demo" in html and "<th>accuracy</th>" in html and "Architecture and codes" in html
        assert "data:image/png;base64," in html  # metrics.png
    assert "no results saved yet" in run_first
    for key in ("eval", "weights/", "explain/"):
        assert re.search(rf"<td>{key}[^<]*</td>", run_last), key
    assert "<td>current</td>" in run_last and "<td>stale</td>" not in run_last
    evaluation = shown["evaluation"]
    assert "Evaluation: eval" in evaluation and "confusion.png" in evaluation
    assert "data:image/png;base64," in evaluation and "<th>accuracy</th>" in evaluation
    weights_html = shown["first"]
    assert re.search(r"\d+ more rows \(of \d+\) in weights_\w+\.csv", weights_html)
    assert weights_html.count("<tr>") == 1 + 15  # the header and the first rows only
    assert "data:image/png;base64," in shown["explanation"]


def _renamed(run: Run, old: str, new: str) -> Run:
    """`run` with class `old` renamed to `new` in config.json (the weights stay; only the name changes)."""
    path = run.dir / files.CONFIG
    config = json.loads(path.read_text())
    config["data"]["classes"] = [new if c == old else c for c in config["data"]["classes"]]
    path.write_text(json.dumps(config))
    return load_run(run.dir)


def test_html_escapes_every_text_and_marks_stale_results(shapes_runs: dict[str, Run], tmp_path: Path) -> None:
    run = trained_copy(shapes_runs, tmp_path / HOSTILE_RUN)
    evaluate(run, compute=Compute(device="cpu")).save(run)  # before the rename: made from the old config
    run = _renamed(run, run.classes[0], HOSTILE_CLASS)
    per_class, summary = weights(run.name, read_head(run), [HOSTILE_CLASS])
    per_class[0].save(run)
    pages = [per_class[0]._repr_html_(), summary._repr_html_(), run._repr_html_()]
    shown_as_text(pages[0])
    shown_as_text(pages[1], HOSTILE_CLASS)  # the class similarity table names the class
    shown_as_text(pages[2], HOSTILE_CLASS, HOSTILE_RUN)  # the run's heading, folder and configuration
    assert all(type(html) is str for html in pages)  # what Jupyter takes, as before
    assert 'data-stale="eval"' in pages[2] and "<td>stale</td>" in pages[2]  # eval.csv predates the new classes
    assert "weights/" in pages[2] and "<td>current</td>" in pages[2]
    assert not list(run.dir.glob(".nv-staging-*"))  # showing a result wrote nothing into the run
