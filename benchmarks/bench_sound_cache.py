"""Sound spectrogram cache: a cold run (decode every clip) against a warm run (read the cache).

Writes a tones tree in the UrbanSound8K layout (mixed rates, channels and sample formats) to a temporary
directory, then times, twice with the same cache directory, what `nv train` does before and during its
first epoch: load the dataset (index, header checks, normalisation statistics) and iterate both splits
through a DataLoader. Also times decoding every clip against reading its cache entry, one by one.

    python benchmarks/bench_sound_cache.py [--per-class 50] [--duration 4] [--workers 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from torch.utils.data import ConcatDataset, DataLoader

from nvcli.data.registry import load_data, make_dataset
from nvcli.data.sound.spectrogram import decode


def run(tree: Path, cache: Path, workers: int, batch_size: int) -> tuple[float, float, object]:
    """Seconds to load the dataset and to iterate both splits once, and the bundle."""
    start = time.perf_counter()
    bundle = load_data("urbansound", {"data_dir": str(tree), "cache_dir": str(cache)})
    loaded = time.perf_counter()
    for _ in DataLoader(ConcatDataset([bundle.train, bundle.val]), batch_size=batch_size, num_workers=workers):
        pass
    return loaded - start, time.perf_counter() - loaded, bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=50, help="clips per tones class (7 classes)")
    parser.add_argument("--duration", type=float, default=4.0, help="clip length in seconds (UrbanSound8K: 4)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tree, cache = Path(tmp) / "tones", Path(tmp) / "cache"
        make_dataset("tones", tree, {"seed": 0, "per_class": args.per_class, "duration": args.duration})
        cold_load, cold_epoch, _ = run(tree, cache, args.workers, args.batch_size)
        warm_load, warm_epoch, bundle = run(tree, cache, args.workers, args.batch_size)
        clips = len(bundle.train) + len(bundle.val)

        start = time.perf_counter()
        for path in bundle.train.paths + bundle.val.paths:
            decode(path, bundle.train.params)
        per_decode = (time.perf_counter() - start) / clips
        start = time.perf_counter()
        for ds in (bundle.train, bundle.val):
            for i in range(len(ds)):
                ds[i]
        per_read = (time.perf_counter() - start) / clips

    cold, warm = cold_load + cold_epoch, warm_load + warm_epoch
    params = bundle.train.params
    print(f"{clips} clips of {args.duration:g} s, mixed rates/channels/formats -> log-mel {list(params.shape)} "
          f"at {params.sample_rate} Hz; DataLoader workers={args.workers}, batch={args.batch_size}")
    print(f"{'':24s}{'load':>9s}{'epoch':>9s}{'total':>9s}")
    print(f"{'first run (decode)':24s}{cold_load:8.2f}s{cold_epoch:8.2f}s{cold:8.2f}s")
    print(f"{'second run (cache)':24s}{warm_load:8.2f}s{warm_epoch:8.2f}s{warm:8.2f}s")
    print(f"speed-up: {cold / warm:.1f}x per run (load + one epoch)")
    print(f"per clip, one process: decode {per_decode * 1e3:.2f} ms, cache read {per_read * 1e3:.2f} ms "
          f"({per_decode / per_read:.1f}x)")


if __name__ == "__main__":
    main()
