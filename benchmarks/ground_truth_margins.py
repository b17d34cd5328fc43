"""Margins of the ground-truth assertions (tests/test_ground_truth.py) across PyTorch's CPU kernels and seeds.

For each capability and seed, a fresh process (ATEN_CPU_CAPABILITY must be set before torch is imported, and one
torch thread) trains the test's model with that seed (data and initialisation) and measures every bound the tests
assert; this prints, per assertion, the measured value, the bound and the least margin over the runs.
Capabilities this CPU lacks fall back to its best (torch prints the one it used).
Run: python benchmarks/ground_truth_margins.py [--capabilities default avx2] [--seeds 0 1 2] [--json FILE] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(seed: int, runs_dir: Path) -> dict[str, object]:
    """Every bound of the ground-truth tests on the model trained with `seed` in runs_dir/truth (trained there
    first unless it is there already), in this process."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tests"))
    import test_ground_truth as gt

    from nvcli.analysis.dissect.concepts import dissect_run
    from nvcli.analysis.settings import Compute
    from nvcli.runs.run import load_run

    if (runs_dir / "truth" / "model.pt").is_file():
        run = load_run(runs_dir / "truth")
        concepts = dissect_run(run, compute=Compute(device="cpu"))
    else:
        run, concepts = gt.truth_model(runs_dir, seed)
    sparse, units_per_class = gt.sparse_head(run)
    groups = {
        "a": gt.colour_unit_bounds(run, concepts) + gt.channel_bounds(run),
        "b": gt.cue_concept_bounds(concepts),
        "b (xfail)": [gt.all_cue_bound(concepts)],
        "c (xfail)": gt.dense_bar_bounds(run),
        "c dense": [gt.dense_margin_bound(run)],
        "c sparse": [gt.Bound("sparse: mean units per class", units_per_class, gt.SPARSE_UNITS_PER_CLASS, False),
                     *gt.sparse_bounds(run, sparse, "weight"), *gt.sparse_bounds(run, sparse, "importance")],
    }
    return {"capability": torch.backends.cpu.get_cpu_capability(), "seed": seed,
            "bounds": [{"test": test, "name": b.name, "value": float(b.value), "bound": float(b.bound),
                        "at_least": b.at_least, "margin": float(b.margin)} for test, bs in groups.items() for b in bs]}


def in_subprocess(capability: str, seed: int, runs_dir: Path) -> dict[str, object]:
    """measure(seed, runs_dir) in a fresh process with ATEN_CPU_CAPABILITY=capability."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    runs_dir.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, __file__, "--one", str(seed), "--keep", str(runs_dir)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return {**json.loads(out.splitlines()[-1]), "requested": capability}


def table(results: list[dict]) -> str:
    """One line per assertion: bound, value per (capability, seed), least margin."""
    columns = [f"{r['requested'][:7]}/{r['seed']}" for r in results]
    lines = [f"{'test':10} {'assertion':52} {'bound':>8} " + " ".join(f"{c:>9}" for c in columns) + f" {'margin':>8}"]
    for i, first in enumerate(results[0]["bounds"]):
        rows = [r["bounds"][i] for r in results]
        sign = ">=" if first["at_least"] else "<="
        lines.append(f"{first['test']:10} {first['name'][:52]:52} {sign}{first['bound']:6.3g} "
                     + " ".join(f"{row['value']:9.3g}" for row in rows) + f" {min(r['margin'] for r in rows):8.3g}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capabilities", nargs="+", default=["default", "avx2"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--json", type=Path, help="also write every measurement to this file")
    parser.add_argument("--keep", type=Path, help="keep the runs in KEEP/CAPABILITY-SEED; a run already there is "
                        "measured again, not retrained (it was trained with that capability)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child: measure this seed, print JSON
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.keep)))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="nv-ground-truth-") as tmp:
        for capability in args.capabilities:
            for seed in args.seeds:
                results.append(in_subprocess(capability, seed, (args.keep or Path(tmp)) / f"{capability}-{seed}"))
                print(f"{capability} (torch: {results[-1]['capability']}) seed {seed} done", file=sys.stderr,
                      flush=True)
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
