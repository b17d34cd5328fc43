"""Shared fixtures: call the `nv` entry point in-process and capture what a user would see."""
from __future__ import annotations

import sys
from typing import Callable, NamedTuple

import pytest

from nvcli.cli.app import run
from nvcli.core.engine import TrainConfig
from nvcli.core.runs import Run
from nvcli.core.train import train

SHAPES = {"image_size": 32, "train_per_class": 100, "val_per_class": 20}
SPEC = {"arch": "smallcnn", "code": "soft", "reduce": "max", "weights": None, "freeze_backbone": False}


@pytest.fixture(scope="session")
def shapes_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """A NeuroView smallcnn and its baseline trained once on 32 px shapes (12 epochs); ~75% accuracy."""
    root = tmp_path_factory.mktemp("shapes-runs")
    cfg = TrainConfig(epochs=12, batch_size=32, lr=3e-3, device="cpu")
    return {"nv": train({**SPEC, "baseline": False}, "shapes", SHAPES, cfg, name="nv", runs_dir=root),
            "base": train({**SPEC, "baseline": True}, "shapes", SHAPES, cfg, name="base", runs_dir=root)}


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
