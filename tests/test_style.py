"""The code reads at a glance: ruff's rules of pyproject.toml (pyflakes, sorted imports, lines of at most 120
columns) hold over the package, the tests, the benchmarks and the experiments."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    ruff = Path(sys.executable).with_name("ruff")  # installed with the test extras (requirements.lock)
    result = subprocess.run([str(ruff), "check", "--no-cache", "nvcli", "tests", "benchmarks", "experiments"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_line_limit_is_enforced() -> None:
    config = (ROOT / "pyproject.toml").read_text()
    assert "line-length = 120" in config and '"E501"' in config
