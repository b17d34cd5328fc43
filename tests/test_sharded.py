"""Analyses under torchrun: two CPU processes (gloo) each take their share of the data, and the results equal one
process's: counts exactly, means to float rounding (docs/scale.md)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import trained_copy

BATCH = "13"  # 180 validation samples: 14 batches, 7 a process, the last one short: unequal shares
SHARD_ROWS = "40"  # 5 shards: 3 rounds of two processes, the last round with one shard


def torchrun(*args: object) -> subprocess.CompletedProcess:
    """`nv -v ARGS` in two processes under torchrun (`--` keeps torchrun from reading nv's --run as its own)."""
    launcher = Path(sys.executable).with_name("torchrun")
    return subprocess.run([str(launcher), "--standalone", "--nproc_per_node", "2", "-m", "nvcli", "--", "-v",
                           *map(str, args)], capture_output=True, text=True, timeout=300)


def shards(run_dir: Path) -> tuple[dict, list[np.ndarray]]:
    """A store's manifest (without the shards' stamps: their files' times) and its arrays."""
    manifest = json.loads((run_dir / "codes" / "val.json").read_text())
    arrays = [np.load(run_dir / "codes" / s[f]) for s in manifest["shards"] for f in ("codes", "labels")]
    for shard in manifest["shards"]:
        del shard["stamp"]
    return manifest, arrays


def test_eval_perturb_ablate_dissection_and_the_code_store_under_torchrun_equal_one_process(nv, shapes_runs, tmp_path):
    one, two = trained_copy(shapes_runs, tmp_path / "solo"), trained_copy(shapes_runs, tmp_path / "pair")
    commands = [("codes", "--shard-rows", SHARD_ROWS, "--batch-size", BATCH),
                ("eval", "--batch-size", BATCH, "--format", "csv"),
                ("perturb", "--batch-size", BATCH, "--format", "csv"),
                ("ablate", "--draws", "3", "--format", "csv"),
                ("dissect-map", "--batch-size", "7", "--format", "csv", "--no-plot")]
    for command in commands:
        alone = nv(*command, "--run", one.dir)
        assert alone.code == 0, alone.err
        shared = torchrun(*command, "--run", two.dir)
        assert shared.returncode == 0, shared.stderr[-2000:]
        assert "rank 0 of 2 (gloo" in shared.stderr and "rank 1 of 2 (gloo" in shared.stderr
        assert shared.stdout == alone.out.replace(one.dir.name, two.dir.name) or command[0] == "ablate"
        assert shared.stderr.count("run: ") == 1  # one process speaks
        if command[0] == "codes":  # each process wrote its share of the shards, and they are one process's shards
            assert "process 0 of 2 wrote 3 of the 5 shards" in shared.stderr
            assert "process 1 of 2 wrote 2 of the 5 shards" in shared.stderr
            (m1, a1), (m2, a2) = shards(one.dir), shards(two.dir)
            assert m1 == m2 and m2["complete"] and len(m2["shards"]) == 5
            assert all(np.array_equal(x, y) for x, y in zip(a1, a2))
        elif command[0] in ("eval", "perturb"):  # each process predicted its whole batches only
            assert "process 0 of 2 predicts 91 of 180 samples" in shared.stderr
            assert "process 1 of 2 predicts 89 of 180 samples" in shared.stderr

    for name in ("per_class.csv", "confusion.csv", "perturb.csv", "concepts_units.csv", "concepts_classes.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(one.dir / name), pd.read_csv(two.dir / name))
    e1, e2 = pd.read_csv(one.dir / "eval.csv").iloc[0], pd.read_csv(two.dir / "eval.csv").iloc[0]
    assert (e1["samples"], e1["accuracy"]) == (e2["samples"], e2["accuracy"])
    assert e2["loss"] == pytest.approx(e1["loss"], rel=1e-12)
    a1, a2 = pd.read_csv(one.dir / "ablation.csv"), pd.read_csv(two.dir / "ablation.csv")
    pd.testing.assert_frame_equal(a1.drop(columns="margin"), a2.drop(columns="margin"))  # accuracy: counts
    np.testing.assert_allclose(a2["margin"], a1["margin"], rtol=1e-9, atol=1e-12)
    assert len(a1) > 100 and a1["accuracy"].between(0, 1).all()

    # Without --shard-rows a split under 2 x 64 MiB still gives each process a shard (whole batches of 13).
    rewritten = torchrun("codes", "--run", two.dir, "--batch-size", BATCH, "--dtype", "float16")
    assert rewritten.returncode == 0, rewritten.stderr[-2000:]
    assert "process 0 of 2 wrote 1 of the 2 shards" in rewritten.stderr
    assert "process 1 of 2 wrote 1 of the 2 shards" in rewritten.stderr
    manifest, arrays = shards(two.dir)
    assert [s["rows"] for s in manifest["shards"]] == [91, 89] and manifest["dtype"] == "float16"
    np.testing.assert_allclose(np.concatenate(arrays[0::2]), np.concatenate(shards(one.dir)[1][0::2]), atol=5e-4)


def test_a_command_that_does_not_share_its_work_refuses_torchrun(nv, nv_run, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    before = sorted(p.name for p in nv_run.dir.iterdir())
    result = nv("sparsify", "--run", nv_run.dir)
    assert result.code == 2 and result.err.count("\n") == 1
    assert "nv sparsify runs in one process; start it without torchrun" in result.err
    assert sorted(p.name for p in nv_run.dir.iterdir()) == before
