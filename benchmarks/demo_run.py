"""What the command benchmarks share: `nv` in a fresh process on one thread, and a small demo-like run to time."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def nv(*args: str) -> subprocess.CompletedProcess:
    """Run `nv ARGS` in a fresh process (one CPU thread unless OMP_NUM_THREADS says otherwise); raises if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([sys.executable, "-m", "nvcli", *args], capture_output=True, text=True, env=env, check=True)


def demo_like(root: Path, *results: list[str]) -> Path:
    """The demo's model (AlexNet, mean codes, shapes at 64 px) after 1 epoch on 30 images per class, in `root/demo`,
    with each of `results` (`nv` arguments, e.g. ["eval", "--per-class"]) saved into it."""
    nv("train", "--arch", "alexnet", "--reduce", "mean", "--epochs", "1", "--name", "demo", "--runs-dir", str(root),
       "-D", "train_per_class=30")
    run = root / "demo"
    for args in results:
        nv(*args, "--run", str(run))
    return run
