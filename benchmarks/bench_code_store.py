"""What guarding a code store costs: the CRC-32 recorded when a shard is written, opening an untouched store (one
`stat` a file), opening one whose files were touched (each read once for its CRC-32), `verify` (every shard read),
and the finiteness check of a reader's first pass (against a second pass, which skips it).

Run: python benchmarks/bench_code_store.py --samples 100000 --units 512   # 195 MiB of float32 codes, 4 shards
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from nvcli.analysis import code_store
from nvcli.analysis.code_store import CodeStore, Layout, write_store

FINGERPRINT = {"bench": 1}


def timed(fn) -> float:
    """The wall seconds `fn()` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    block = rng.random((args.batch, args.units), dtype=np.float32)
    labels = rng.integers(0, 10, args.batch)

    def shard_batches(start: int, stop: int):
        for i in range(start, stop, args.batch):
            n = min(args.batch, stop - i)
            yield block[:n], labels[:n]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        layout = Layout(args.samples, args.units)
        original = code_store._data_crc
        code_store._data_crc = lambda array, crc=0: 0
        bare = timed(lambda: write_store(folder / "bare", "train", FINGERPRINT, layout, shard_batches))
        code_store._data_crc = original
        write = timed(lambda: write_store(folder, "train", FINGERPRINT, layout, shard_batches))
        mib = args.samples * args.units * 4 / 2**20
        print(f"store: {args.samples} x {args.units} float32, {mib:.0f} MiB in {layout.shards} shards")
        print(f"write: {write:.2f} s with the CRC-32s (of each batch as it is stored), {bare:.2f} s without")
        print(f"open, untouched: {timed(lambda: CodeStore.open(folder, 'train', FINGERPRINT)) * 1e3:.1f} ms")
        for path in folder.glob("train-*.npy"):
            os.utime(path)  # a touch: new change times, same codes
        store = None

        def touched() -> None:
            nonlocal store
            store = CodeStore.open(folder, "train", FINGERPRINT)

        print(f"open, every file touched (each read for its CRC-32): {timed(touched):.2f} s")
        store.record_stamps()
        print(f"open after recording the new stamps: "
              f"{timed(lambda: CodeStore.open(folder, 'train', FINGERPRINT)) * 1e3:.1f} ms")
        print(f"open with verify: {timed(lambda: CodeStore.open(folder, 'train', FINGERPRINT, verify=True)):.2f} s")
        store = CodeStore.open(folder, "train", FINGERPRINT)
        first = timed(lambda: sum(len(b) for _, b, _ in store.chunks()))
        second = timed(lambda: sum(len(b) for _, b, _ in store.chunks()))
        print(f"a pass over the codes: first (finiteness checked) {first:.2f} s, second {second:.2f} s")


if __name__ == "__main__":
    main()
