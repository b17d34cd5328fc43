"""Shared fixtures: call the `nv` entry point in-process and capture what a user would see."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import pytest

from nvcli.cli.app import run


@dataclass
class Result:
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
