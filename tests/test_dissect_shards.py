"""Network Dissection under torchrun: each process streams its share of the probe set, and every process ends with
the single-process thresholds (bit for bit), counts and IoU."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from test_dissect import id_images, lookup

from nvcli.analysis.dissect.quantile import unit_thresholds
from nvcli.analysis.dissect.tally import tally_units
from nvcli.data.broden import BrodenProbe, write_broden
from nvcli.errors import NvError

IMAGES = 45  # odd: two processes' shares differ
CASES = {  # name: batch size, collect budget, each rank's rows
    "collect": (4, 1 << 22, [24, 21]),  # 12 batches; one histogram round, then the gathered candidates
    "rounds": (7, 0, [21, 24]),  # 7 batches; every histogram round (the budget never allows collecting)
    "one batch": (64, 1 << 22, [0, 45]),  # rank 0 gets no rows: it learns the units from rank 1
}
SCRIPT = """
import sys
from pathlib import Path

import torch

sys.path.insert(0, sys.argv[1])
from test_dissect_shards import run_cases

from nvcli.analysis.dissect import stream
from nvcli.training import distributed

with distributed.joined(torch.device("cpu")) as grouped:
    assert grouped and distributed.world_size() == 2
    host = run_cases(Path(sys.argv[2]))
    stream.SYNC_FREE = {"cpu"}  # the loops' device form (tests/test_scale.py) on the CPU
    forms = {"host": host, "device": run_cases(Path(sys.argv[2]))}
    torch.save(forms, Path(sys.argv[3]) / f"rank{distributed.rank()}.pt")
"""


def write_probe(path: Path) -> Path:
    """45 images 8x8 with 4x4 object and colour masks and an image-level scene label."""
    rng = np.random.default_rng(3)
    return write_broden(path, id_images(IMAGES, 8, 8), {"object": ["a", "b", "c"], "color": ["r"], "scene": ["s"]},
                        masks={"object": rng.integers(0, 4, (IMAGES, 4, 4)),
                               "color": rng.integers(0, 2, (IMAGES, 4, 4))},
                        image_labels={"scene": [[1] if i % 3 == 0 else [] for i in range(IMAGES)]})


def layers() -> list[torch.Tensor]:
    """Maps per image: a 4x4 layer of distinct values and a 2x2 layer of few values (ties at the thresholds)."""
    g = torch.Generator().manual_seed(5)
    return [torch.randn(IMAGES, 3, 4, 4, generator=g), torch.randint(0, 40, (IMAGES, 2, 2, 2), generator=g) / 40]


def run_cases(probe_dir: Path) -> dict[str, Any]:
    """Thresholds, counts and the images this process streamed, per case; the NaN error a NaN on the last image
    (rank 1's share) raises."""
    probe, maps = BrodenProbe(probe_dir), layers()
    out: dict[str, Any] = {}
    for name, (batch_size, budget, _) in CASES.items():
        seen: set[int] = set()

        def maps_fn(images: torch.Tensor) -> list[torch.Tensor]:
            seen.update(int(i) for i in (images[:, 0, 0, 0] * 255).round())
            return lookup(*maps)(images)

        thresholds = unit_thresholds(maps_fn, probe, quantile=0.05, batch_size=batch_size, collect_budget=budget)
        tally = tally_units(maps_fn, probe, thresholds, batch_size=batch_size)
        out[name] = {"thresholds": thresholds, "intersection": tally.intersection, "union": tally.union,
                     "active": tally.active, "iou": tally.iou(), "concept": tally.table()["concept"].tolist(),
                     "seen": sorted(seen)}
    nan = maps[1].clone()
    nan[-1, 0, 0, 0] = float("nan")
    try:
        unit_thresholds(lookup(maps[0], nan), probe, batch_size=4)
    except NvError as e:
        out["nan"] = str(e)
    return out


def test_two_processes_dissect_as_one(tmp_path: Path) -> None:
    probe = write_probe(tmp_path / "p")
    torchrun = Path(sys.executable).with_name("torchrun")
    (tmp_path / "shard.py").write_text(SCRIPT)
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(tmp_path / "shard.py"),
                             str(Path(__file__).parent), str(probe), str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    alone = run_cases(probe)
    assert "layer 1 contain NaN" in alone["nan"]
    for name in CASES:
        assert alone[name]["seen"] == list(range(IMAGES))
        assert (alone[name]["iou"] > 0).any() and alone[name]["active"].min() > 0  # every unit counted something
    saved = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for form in ("host", "device"):
        ranks = [forms[form] for forms in saved]
        assert all(r["nan"] == alone["nan"] for r in ranks), form  # a NaN in rank 1's share stops both
        for name, (_, _, rows) in CASES.items():
            shares = [r[name]["seen"] for r in ranks]
            assert sorted(shares[0] + shares[1]) == list(range(IMAGES)) and list(map(len, shares)) == rows, (form, name)
            for r in ranks:
                for field in ("thresholds", "intersection", "union", "active", "iou"):
                    assert torch.equal(r[name][field], alone[name][field]), (form, name, field)
                assert r[name]["concept"] == alone[name]["concept"], (form, name)
