"""Resampling memory: peak memory and time of decoding one clip whose rate is coprime with the target rate.

Each case runs in a fresh process, which writes a 4 s WAV at the input rate and decodes it to a
spectrogram at the target rate, either with nv's `decode` (bounded-memory resampling) or with
`torchaudio.functional.resample` as nv called it before. Peak memory is the process's maximum resident
set size minus what it held before decoding (after importing torch and torchaudio).

    python benchmarks/bench_resample.py [--cases 22051:22050,8001:22050,8001:16000] [--torchaudio]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, tempfile, time
import numpy as np, soundfile as sf, torchaudio
from nvcli.data.sound import spectrogram
from nvcli.data.sound.spectrogram import SpecParams, decode
rate, target, old = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "torchaudio"
path = tempfile.mkstemp(suffix=".wav")[1]
sf.write(path, np.sin(np.arange(rate * 4) * 0.05).astype(np.float32), rate)
if old:
    spectrogram.resample = torchaudio.functional.resample
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
decode(path, SpecParams(sample_rate=target))
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="22051:22050,8001:22050,8001:16000",
                        help="comma-separated INPUT:TARGET sample rates")
    parser.add_argument("--torchaudio", action="store_true", help="also measure torchaudio's resample (slow, GBs)")
    args = parser.parse_args()
    methods = ["nv", "torchaudio"] if args.torchaudio else ["nv"]
    print(f"{'input Hz':>9} {'target Hz':>9} {'method':>10} {'peak MB':>9} {'seconds':>8}")
    for case in args.cases.split(","):
        rate, target = case.split(":")
        for method in methods:
            out = subprocess.run([sys.executable, "-c", CHILD, rate, target, method], capture_output=True, text=True)
            if out.returncode:
                print(f"{rate:>9} {target:>9} {method:>10} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            row = json.loads(out.stdout)
            print(f"{rate:>9} {target:>9} {method:>10} {row['peak_mb']:>9.0f} {row['seconds']:>8.2f}")


if __name__ == "__main__":
    main()
