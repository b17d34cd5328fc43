"""Wall time of `nv report` (the whole command: start-up, reading the run, writing the page); target <= 3 s.

By default builds a demo-like run in a temporary folder (AlexNet, mean codes, shapes at 64 px, 1 epoch on
30 images per class) with the demo's results: eval, weights --class red, perturb, explain --index 0,
dissect-map; with --run, times an existing run instead (e.g. runs/demo after `make demo`). The run holds
every figure already, so this measures the report, not figure drawing.
Run: python benchmarks/bench_report.py [--run RUN] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from demo_run import demo_like, nv

TARGET_S = 3.0
DEMO_RESULTS = (["eval", "--per-class"], ["weights", "--class", "red"], ["perturb", "--channel", "all"],
                ["explain", "--index", "0"], ["dissect-map"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="time this run instead of building a demo-like one")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nv-bench-report-") as tmp:
        run = args.run or demo_like(Path(tmp), *DEMO_RESULTS)
        out = Path(tmp) / "report.html"
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            done = nv("report", "--run", str(run), "--out", str(out))
            times.append(time.perf_counter() - start)
            if "drew" in done.stderr:
                print(f"note: {done.stderr.splitlines()[1]}")
        pngs = len(list(run.glob("*.png")))
        median = statistics.median(times)
        print(f"run: {run} ({pngs} figures), page {out.stat().st_size / 1e6:.1f} MB")
        print(f"nv report: median {median:.2f} s over {args.rounds} rounds (min {min(times):.2f}, "
              f"max {max(times):.2f}); target <= {TARGET_S:.0f} s: {'met' if median <= TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
