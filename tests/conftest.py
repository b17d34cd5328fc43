"""Shared fixtures: call the `nv` entry point in-process and capture what a user would see.

Every test process uses one torch thread, so the suite runs the same on a busy machine.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, NamedTuple

import pytest
import torch

from nvcli.cli.app import run
from nvcli.data.shapes import ShapesOptions
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import Run, load_run
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import train

os.environ.setdefault("OMP_NUM_THREADS", "1")  # subprocesses (console script, torchrun) inherit it
torch.set_num_threads(1)

TRAINED = "as-trained"
SHAPES = ShapesOptions(image_size=32, train_per_class=100, val_per_class=20)
CHOICE = ModelChoice(arch="smallcnn", code="soft", reduce="max")


@pytest.fixture(scope="session")
def shapes_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """A NeuroView smallcnn and its baseline trained once on 32 px shapes (12 epochs); ~75% accuracy."""
    root = tmp_path_factory.mktemp("shapes-runs")
    cfg = TrainConfig(epochs=12, batch_size=32, lr=3e-3, device="cpu")
    baseline = ModelChoice(arch="smallcnn", baseline=True)
    runs = {"nv": train(CHOICE, "shapes", SHAPES, cfg, name="nv", runs_dir=root),
            "base": train(baseline, "shapes", SHAPES, cfg, name="base", runs_dir=root)}
    shutil.copytree(runs["nv"].dir, root / TRAINED / "nv")  # as training left it: tests write results into runs
    return runs


def trained_copy(shapes_runs: dict[str, Run], to: Path) -> Run:
    """A private copy of the session's NeuroView run as training left it (without other tests' results)."""
    return load_run(shutil.copytree(shapes_runs["nv"].dir.parent / TRAINED / "nv", to))


@pytest.fixture
def nv_run(shapes_runs: dict[str, Run], tmp_path: Path) -> Run:
    """A private copy of the session's trained NeuroView run, for a test that writes into it."""
    return trained_copy(shapes_runs, tmp_path / "nv")


def save_head(run_dir: Path, name: str, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """heads/<name>.pt written by hand, with the record nv reads beside it (fitted on the run's model.pt)."""
    from nvcli.analysis.sparse.record import Selection, SparseHeadRecord
    from nvcli.fs.digest import file_sha256

    (run_dir / "heads").mkdir(exist_ok=True)
    torch.save({"weight": weight, "bias": bias}, run_dir / "heads" / f"{name}.pt")
    digest = {n: file_sha256(run_dir / n) for n in ("model.pt", f"heads/{name}.pt")}
    per_class = (weight != 0).sum(dim=1)
    nan = float("nan")  # not measured: the head was not fitted on a path
    record = SparseHeadRecord(
        name, run_dir.name, 0, 0.0, 0.0, 1.0, Selection(max(1, int(per_class.max()))), per_class.double().mean().item(),
        int(per_class.max()), int((weight != 0).any(dim=0).sum()), nan, nan, nan, nan, nan, (), None, (), None,
        weight.shape[1], (), "memory", made_from={"model.pt": digest["model.pt"]},
        weights_sha256=digest[f"heads/{name}.pt"])
    (run_dir / "heads" / f"{name}.json").write_text(json.dumps(record.to_json()))


class Result(NamedTuple):
    """What `nv ARGS` did: exit code, stdout, stderr (unpacks as a tuple too)."""

    code: int
    out: str
    err: str


@pytest.fixture
def nv(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `nv ARGS...` like the console script does; return exit code, stdout and stderr."""

    def call(*args: object) -> Result:
        monkeypatch.setattr(sys, "argv", ["nv", *map(str, args)])
        capsys.readouterr()
        try:
            run()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


# Names a user may give (a class, a run directory): markup, an event handler, quotes and an ampersand.
HOSTILE_CLASS = "<script>alert(1)</script>&\"'"
HOSTILE_RUN = "<img src=x onerror=alert(1)>&\"'"
# Each name escaped whole (either spelling of the quotes): what every raw 'alert(1)' of a page must lie in.
ESCAPED = re.compile(r"&lt;(script&gt;alert\(1\)&lt;/script|img src=x onerror=alert\(1\))&gt;"
                     r"&amp;(&#34;|&quot;)(&#39;|&#x27;)")


class _Elements(HTMLParser):
    """A page as a browser reads it: its elements (tag, attributes, entities decoded) and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown_as_text(html: str, *names: str) -> list[tuple[str, dict[str, str | None]]]:
    """Assert that the hostile `names` are only text in `html` (no script, no event handler, each name whole in the
    text, every 'alert(1)' inside a name escaped whole); return the page's elements for further checks."""
    page = _Elements()
    page.feed(html)
    assert not [tag for tag, _ in page.elements if tag == "script"]
    assert not [(tag, a) for tag, attrs in page.elements for a in attrs if a.startswith("on")]
    assert all(attrs.get("src", "").startswith("data:image/png;base64,") for tag, attrs in page.elements
               if tag == "img")
    text = "".join(page.text)
    for name in names:
        assert name in text, name
    assert html.count("alert(1)") == len(ESCAPED.findall(html))
    return page.elements
