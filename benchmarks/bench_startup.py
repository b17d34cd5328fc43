"""Start-up time: `nv --help` (and other answers that need no torch) against `python -c "import torch"`.

Both are timed in the same run, interleaved, as fresh processes; the ratio is the target (<= 0.1).
Wall time follows the machine's load; CPU time (user + system of the child) much less so: both are shown.
The children may write byte-code caches (as an installed package has them), whatever PYTHONDONTWRITEBYTECODE says:
without them every start compiles nv's sources, which measures the compiler, not nv.

    python benchmarks/bench_startup.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "nv --help": [sys.executable, "-m", "nvcli", "--help"],
    "nv train --help": [sys.executable, "-m", "nvcli", "train", "--help"],
    "nv data list": [sys.executable, "-m", "nvcli", "data", "list"],
    "nv train --epochs x (usage error)": [sys.executable, "-m", "nvcli", "train", "--epochs", "x"],
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
}

CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def measure(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process running `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=CHILD_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache once
        measure(command)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            times[name].append(measure(command))
    wall = {name: statistics.median(t[0] for t in values) for name, values in times.items()}
    cpu = {name: statistics.median(t[1] for t in values) for name, values in times.items()}
    torch = 'python -c "import torch"'
    print(f"{'command':36s}{'wall s':>9s}{'x torch':>9s}{'cpu s':>9s}{'x torch':>9s}")
    for name in COMMANDS:
        print(f"{name:36s}{wall[name]:9.3f}{wall[name] / wall[torch]:9.3f}"
              f"{cpu[name]:9.3f}{cpu[name] / cpu[torch]:9.3f}")


if __name__ == "__main__":
    main()
