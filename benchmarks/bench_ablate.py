"""Wall time of `nv ablate` (every class, the default grid and draws, figure included) against `nv eval` on the same
run, both as whole commands in fresh processes; target: ablate <= 1.3x eval when the codes must first be computed.

By default builds a demo-like run in a temporary folder (AlexNet, mean codes, shapes at 64 px, 1 epoch on 30 images
per class; 1,152 units); --run times an existing run instead (a copy, so its files stay as they are). Rounds
alternate eval, ablate with the code cache removed (cold: one pass over the validation split, as eval does), and
ablate reading the cached codes (warm).
Run: python benchmarks/bench_ablate.py [--run RUN] [--rounds 5]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from demo_run import demo_like, nv

TARGET_RATIO = 1.3


def timed(*args: str) -> float:
    """Wall time in seconds of `nv ARGS` in a fresh process."""
    start = time.perf_counter()
    nv(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="time a copy of this run instead of building a demo-like one")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nv-bench-ablate-") as tmp:
        run = shutil.copytree(args.run, Path(tmp) / "run") if args.run else demo_like(Path(tmp))
        times: dict[str, list[float]] = {"eval": [], "ablate (cold)": [], "ablate (warm)": []}
        for _ in range(args.rounds):
            times["eval"].append(timed("eval", "--run", str(run), "--device", "cpu", "--force"))
            shutil.rmtree(run / "codes", ignore_errors=True)
            times["ablate (cold)"].append(timed("ablate", "--run", str(run), "--device", "cpu", "--force"))
            times["ablate (warm)"].append(timed("ablate", "--run", str(run), "--device", "cpu", "--force"))
        median = {k: statistics.median(v) for k, v in times.items()}
        print(f"run: {args.run or 'demo-like AlexNet, 64 px'}; median wall time over {args.rounds} rounds:")
        for name, value in median.items():
            print(f"  nv {name}: {value:.2f} s (min {min(times[name]):.2f}, max {max(times[name]):.2f})")
        ratio = median["ablate (cold)"] / median["eval"]
        print(f"ablate (cold) / eval = {ratio:.2f}; target <= {TARGET_RATIO}: "
              f"{'met' if ratio <= TARGET_RATIO else 'MISSED'}; ablate (warm) / eval = "
              f"{median['ablate (warm)'] / median['eval']:.2f}")


if __name__ == "__main__":
    main()
