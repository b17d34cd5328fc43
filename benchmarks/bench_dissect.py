"""Network Dissection throughput and memory on a synthetic Broden probe set, at default settings.

Writes a 2,000-image probe set (64 px images, 32 px masks; color and object masks, image-level
texture labels) with `write_broden`, then dissects a small inline CNN (4 conv layers, 208 units; the
maps are the ReLU pre-activations) on the first 500 and on all 2,000 images, each in a fresh process
so that peak RSS is that run's own. Reports wall and CPU seconds (all threads; on a shared machine
wall time includes waiting for a core), images/s over all passes (wall), peak Python heap
(tracemalloc; torch tensors are not on it), RSS just before dissecting and peak RSS during it (Linux:
the high-water mark is reset first, because a child inherits its parent's ru_maxrss across exec).

    python benchmarks/bench_dissect.py [--images 500 2000] [--batch-size 16] [--threads 1] [--collect-budget N]

With `--command`, it measures `nv dissect-map` instead: where the command's time goes (writing the
built-in probe set, the dissection core, the concept tables, the CSVs, the figures), timed in one
process, and the command end to end with `--plot` and with `--no-plot` (fresh processes; wall and CPU
seconds of the child, start-up included). It dissects `--run` (default: a NeuroView smallcnn it trains
for one epoch on 32 px shapes) on a built-in probe set of `--images` images:

    python benchmarks/bench_dissect.py --command [--run RUN] [--images 400] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nvcli.analysis.dissect.quantile import DEFAULT_COLLECT_BUDGET
from nvcli.analysis.dissect.tally import dissect
from nvcli.analysis.settings import Compute
from nvcli.data.broden import BrodenProbe, write_broden

SIZE = 64
CONCEPTS = {"color": ["dark", "red", "green", "blue", "white"], "object": ["square", "disc", "bar"],
            "texture": ["striped", "dotted", "plain"]}
PALETTE = np.array([[30, 30, 30], [220, 30, 30], [30, 200, 30], [30, 30, 220], [230, 230, 230]], np.uint8)


def probe_arrays(n: int, seed: int = 0):
    """Per image: one object of one colour on a dark background; masks at image size (halved on write)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    color = np.ones((n, SIZE, SIZE), np.int64)
    obj = np.zeros((n, SIZE, SIZE), np.int64)
    for i in range(n):
        kind = rng.integers(3)
        cy, cx, r = rng.integers(16, 48, 2).tolist() + [int(rng.integers(6, 14))]
        shape = [(abs(yy - cy) <= r) & (abs(xx - cx) <= r), (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r,
                 (abs(yy - cy) <= r // 3) & (abs(xx - cx) <= 2 * r)][kind]
        obj[i][shape] = kind + 1
        color[i][shape] = rng.integers(2, 6)
    images = PALETTE[color - 1] + rng.integers(0, 20, (n, SIZE, SIZE, 3)).astype(np.uint8)
    texture = [[int(t)] for t in rng.integers(1, 4, n)]
    return images, {"color": color, "object": obj}, {"texture": texture}


def network() -> tuple[nn.Module, callable]:
    """4 conv layers (16 + 32 + 64 + 96 = 208 units); maps_fn returns each ReLU's input."""
    torch.manual_seed(0)
    convs = nn.ModuleList([nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, 2, 1),
                           nn.Conv2d(32, 64, 3, 2, 1), nn.Conv2d(64, 96, 3, 2, 1)]).eval()

    def maps_fn(images: torch.Tensor) -> list[torch.Tensor]:
        maps, x = [], (images - 0.4) / 0.3
        for conv in convs:
            x = conv(x)
            maps.append(x)
            x = torch.relu(x)
        return maps

    return convs, maps_fn


def _status(field: str) -> float:
    """A /proc/self/status memory field, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def run_one(root: str, images: int, batch_size: int, threads: int, budget: int) -> dict:
    torch.set_num_threads(threads)
    probe = BrodenProbe(root, limit=images)
    _, maps_fn = network()
    calls = []
    rss_before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    tracemalloc.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    table = dissect(maps_fn, probe, batch_size=batch_size, progress=lambda phase, done, total: calls.append(total),
                    collect_budget=budget)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    heap = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss_peak = _status("VmHWM")
    batches = -(-images // batch_size)
    return {"images": images, "units": len(table), "passes": calls[-1] // batches, "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "images_per_s": round(images / seconds, 1),
            "images_per_s_per_pass": round(images * calls[-1] / batches / seconds, 1),
            "heap_peak_mib": round(heap / 2**20, 1), "rss_before_mib": round(rss_before, 1),
            "rss_peak_mib": round(rss_peak, 1), "interpretable": int(table["interpretable"].sum())}


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def command_phases(run_dir: Path, images: int, threads: int) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of each part of `nv dissect-map`, run through the same core calls in this process."""
    from nvcli.analysis.dissect import concepts
    from nvcli.data.shapes import ProbeOptions, write_probe
    from nvcli.runs.run import load_run

    torch.set_num_threads(threads)
    run = load_run(run_dir)
    phases: dict[str, tuple[float, float]] = {}
    core = concepts.dissect

    def timed(*args, **kwargs):
        start = _clock()
        out = core(*args, **kwargs)
        phases["dissection core"] = _since(start)
        return out

    concepts.dissect = timed
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = _clock()
            write_probe(Path(tmp) / "probe", ProbeOptions(image_size=run.spec.input_shape[1], count=images))
            phases["write probe"] = _since(start)
            start = _clock()
            result = concepts.dissect_run(run, Path(tmp) / "probe", compute=Compute(device="cpu"))
            whole = _since(start)
    finally:
        concepts.dissect = core
    phases["model, head, tables"] = (whole[0] - phases["dissection core"][0], whole[1] - phases["dissection core"][1])
    with tempfile.TemporaryDirectory() as out:
        start = _clock()
        result.save(out, figures=False)
        phases["CSVs"] = _since(start)
        start = _clock()
        result.save(out, figures=True)  # the first also imports matplotlib, as the command does
        phases["CSVs + figures"] = _since(start)
    phases["figures"] = tuple(a - b for a, b in zip(phases.pop("CSVs + figures"), phases["CSVs"]))
    count = len(result.artifacts(True)) - len(result.artifacts(False))
    phases[f"figures ({count}), each"] = tuple(t / count for t in phases["figures"])
    return phases


def end_to_end(run_dir: Path, images: int, threads: int, plot: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one `nv dissect-map` process (CPU: the child's user + system time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nvcli", "dissect-map", "--run", str(run_dir), "--probe-count", str(images),
                    "--device", "cpu", "--threads", str(threads), "--plot" if plot else "--no-plot", "--force"],
                   check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def command_report(run: str | None, images: int, threads: int, repeat: int) -> None:
    """Print where `nv dissect-map`'s time goes and its figures' share of the whole command."""
    with tempfile.TemporaryDirectory() as tmp:
        if run is None:
            from nvcli.data.shapes import ShapesOptions
            from nvcli.models.spec import ModelChoice
            from nvcli.training.config import TrainConfig
            from nvcli.training.recipes import train

            torch.set_num_threads(threads)
            run_dir = train(ModelChoice(arch="smallcnn"), "shapes", ShapesOptions(image_size=32, train_per_class=20,
                            val_per_class=5), TrainConfig(epochs=1, device="cpu"), name="bench", runs_dir=tmp).dir
        else:
            run_dir = Path(run)
        phases = command_phases(run_dir, images, threads)
        print(f"nv dissect-map on {run_dir.name}, built-in probe of {images} images, {threads} thread(s)")
        print(f"{'part (one process)':24} {'wall s':>7} {'CPU s':>7}")
        for name, (wall, cpu) in phases.items():
            print(f"{name:24} {wall:7.2f} {cpu:7.2f}")
        # On a shared machine other work inflates a run; the fastest of `repeat` is the command's own cost.
        times = [(end_to_end(run_dir, images, threads, True), end_to_end(run_dir, images, threads, False))
                 for _ in range(repeat)]
        plot = tuple(min(t[0][i] for t in times) for i in range(2))
        bare = tuple(min(t[1][i] for t in times) for i in range(2))
        print(f"{f'end to end (best of {repeat})':24} {'wall s':>7} {'CPU s':>7}")
        print(f"{'--plot':24} {plot[0]:7.2f} {plot[1]:7.2f}")
        print(f"{'--no-plot':24} {bare[0]:7.2f} {bare[1]:7.2f}")
        share = [(p - b) / p for p, b in zip(plot, bare)]
        print(f"figures' share of the command: {share[0]:.0%} of wall time, {share[1]:.0%} of CPU time "
              f"(in-process: {phases['figures'][1] / (bare[1] + phases['figures'][1]):.0%} of CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--collect-budget", type=int, default=DEFAULT_COLLECT_BUDGET,
                        help="threshold candidates sorted at once (smaller: bounded lower, maybe one more pass)")
    parser.add_argument("--command", action="store_true", help="measure nv dissect-map end to end (see above)")
    parser.add_argument("--run", help="with --command: the run to dissect (default: one trained here)")
    parser.add_argument("--repeat", type=int, default=3, help="with --command: end-to-end runs of each kind")
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # set in the child processes
    args = parser.parse_args()
    if args.command:
        command_report(args.run, args.images[0], args.threads, args.repeat)
        return
    if args.probe:
        print(json.dumps(run_one(args.probe, args.images[0], args.batch_size, args.threads, args.collect_budget)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "probe"
        images, masks, labels = probe_arrays(max(args.images))
        start = time.perf_counter()
        write_broden(root, images, CONCEPTS, masks=masks, image_labels=labels)
        print(f"write_broden: {len(images)} images in {time.perf_counter() - start:.1f} s")
        print(f"{'images':>7} {'units':>5} {'passes':>6} {'wall s':>7} {'CPU s':>7} {'img/s':>7} {'img/s/pass':>10} "
              f"{'heap MiB':>8} {'RSS before':>10} {'RSS peak':>8} {'interp.':>7}")
        for n in args.images:
            out = subprocess.run([sys.executable, __file__, "--probe", str(root), "--images", str(n),
                                  "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                                  "--collect-budget", str(args.collect_budget)],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{r['images']:>7} {r['units']:>5} {r['passes']:>6} {r['seconds']:>7} {r['cpu_seconds']:>7} "
                  f"{r['images_per_s']:>7} "
                  f"{r['images_per_s_per_pass']:>10} {r['heap_peak_mib']:>8} {r['rss_before_mib']:>10} "
                  f"{r['rss_peak_mib']:>8} {r['interpretable']:>7}")


if __name__ == "__main__":
    main()
