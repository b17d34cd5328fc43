"""benchmarks/gpu_check.py runs on the CPU: the same training path, small sizes, and its head-overhead check."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402

SMALL = ["--device", "cpu", "--archs", "smallcnn", "--size", "32", "--batch", "4", "--classes", "5",
         "--steps", "1", "--rounds", "1", "--warmup", "1", "--workers", "0"]


def test_gpu_check_reports_every_model_and_the_head_overhead(capsys: pytest.CaptureFixture) -> None:
    assert gpu_check.main([*SMALL, "--amp", "--max-overhead", "1000"]) == 0
    out = capsys.readouterr().out
    assert "precision=bfloat16" in out and "channels_last" in out
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith("smallcnn ")
            and line.split()[1] in ("neuroview", "baseline", "gap")}
    assert set(rows) == {"neuroview", "baseline", "gap"}
    for row in rows.values():
        assert float(row[2]) > 0 and float(row[3]) > 0 and row[4] == "n/a"  # images/s, step ms; no GPU memory
    summary = next(line for line in out.splitlines() if line.startswith("smallcnn ") and "(<= 1000.0)" in line)
    ratio, overhead = map(float, summary.split()[1:3])
    neuroview, baseline, gap = (float(rows[k][3]) for k in ("neuroview", "baseline", "gap"))
    assert ratio == pytest.approx(baseline / neuroview, rel=0.05)
    assert overhead == pytest.approx(neuroview / gap, rel=0.05)
    assert "ok" in summary


def test_gpu_check_fails_when_the_head_costs_more_than_allowed(capsys: pytest.CaptureFixture) -> None:
    assert gpu_check.main([*SMALL, "--max-overhead", "0.001"]) == 1
    assert "FAIL (<= 0.001)" in capsys.readouterr().out
