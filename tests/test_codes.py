"""The code cache: z computed once per split, equal to the model's own codes, invalidated by new weights."""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import trained_copy

from nvcli.analysis.code_cache import split_codes
from nvcli.cli.interrupt import INTERRUPTED
from nvcli.runs.run import Run


def test_codes_are_the_models_codes_and_are_reused(shapes_runs: dict, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = trained_copy(shapes_runs, tmp_path / "nv")
    codes = split_codes(run, "val", device="cpu", batch_size=50)
    val = run.data().val
    assert codes.z.shape == (len(val), 112) and codes.labels.tolist() == [int(val[i][1]) for i in range(len(val))]
    model = run.model()
    with torch.no_grad():
        expected = model.features(torch.stack([val[i][0] for i in range(7)]))
    np.testing.assert_allclose(codes.z[:7], expected.numpy(), rtol=1e-6, atol=1e-6)
    z, labels = codes.tensors()
    logits = model.head(z)
    assert (logits.argmax(1) == labels).float().mean() > 0.5  # the head reads these codes as the model does

    monkeypatch.setattr(Run, "model", lambda *a, **k: pytest.fail("the cache should have been used"))
    again = split_codes(run, "val", device="cpu")
    np.testing.assert_array_equal(again.z, codes.z)
    monkeypatch.undo()

    state = torch.load(run.dir / "model.pt", weights_only=True)
    state["head.bias"] += 1  # new weights: the cached codes no longer describe this model
    torch.save(state, run.dir / "model.pt")
    calls = []
    original = Run.model
    monkeypatch.setattr(Run, "model", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    split_codes(run, "val", device="cpu")
    assert calls == [1]


def test_train_codes_and_baselines(shapes_runs: dict) -> None:
    codes = split_codes(shapes_runs["nv"], "train", device="cpu")
    assert codes.z.shape == (900, 112) and np.bincount(codes.labels).tolist() == [100] * 9
    mean, std = codes.mean_std()
    np.testing.assert_allclose(mean, np.asarray(codes.z, dtype=np.float64).mean(0), rtol=1e-9)
    np.testing.assert_allclose(std, np.asarray(codes.z, dtype=np.float64).std(0), rtol=1e-6, atol=1e-9)
    from nvcli.errors import NvError

    with pytest.raises(NvError, match="needs a NeuroView run"):
        split_codes(shapes_runs["base"], "val")


def test_a_new_store_removes_the_codes_it_supersedes_and_nothing_else(shapes_runs: dict, tmp_path: Path) -> None:
    run = trained_copy(shapes_runs, tmp_path / "nv")
    split_codes(run, "val", device="cpu", rows_per_shard=40)  # 5 shards
    folder = run.dir / "codes"
    assert (folder / "val-00004.npy").is_file()
    for old in ("val.npy", "val_labels.npy"):  # the single-file cache of nv 0.3
        np.save(folder / old, np.zeros(3))
    (folder / "NOTES.md").write_text("mine")
    state = torch.load(run.dir / "model.pt", weights_only=True)
    state["head.bias"] += 1  # new weights: a new store, of one shard this time
    torch.save(state, run.dir / "model.pt")
    codes = split_codes(run, "val", device="cpu")
    assert codes.store.layout.shards == 1
    assert sorted(p.name for p in folder.iterdir()) == ["NOTES.md", "val-00000-labels.npy", "val-00000.npy",
                                                        "val.json"]


def test_nv_codes_keeps_a_store_as_float16_on_request(nv, shapes_runs: dict, tmp_path: Path) -> None:
    import json

    run = trained_copy(shapes_runs, tmp_path / "nv")
    exact = np.asarray(split_codes(run, "val", device="cpu").z)

    def stored() -> tuple[str, int]:
        manifest = json.loads((run.dir / "codes" / "val.json").read_text())
        return manifest["dtype"], (run.dir / "codes" / "val-00000.npy").stat().st_size

    assert stored()[0] == "float32"
    half = nv("codes", "--run", run.dir, "--dtype", "float16", "--format", "csv")
    assert half.code == 0 and "float16" in half.out
    dtype, size = stored()
    assert dtype == "float16" and size < exact.nbytes * 0.6  # half the disk
    np.testing.assert_allclose(np.asarray(split_codes(run, "val", device="cpu").z), exact, atol=5e-4)
    assert nv("codes", "--run", run.dir).code == 0 and stored()[0] == "float16"  # kept as it is
    assert nv("codes", "--run", run.dir, "--dtype", "float32").code == 0 and stored()[0] == "float32"
    np.testing.assert_array_equal(np.asarray(split_codes(run, "val", device="cpu").z), exact)
    refused = nv("codes", "--run", run.dir, "--dtype", "float64")
    assert refused.code == 2 and "float64" in refused.err and "float16" in refused.err


def test_one_data_pipeline_feeds_every_shard(shapes_runs: dict, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from nvcli.analysis import code_cache

    run = trained_copy(shapes_runs, tmp_path / "nv")
    whole = np.asarray(split_codes(run, "val", device="cpu", batch_size=13, cache=False).z)  # one shard
    started = []
    original = code_cache.batch_loader
    monkeypatch.setattr(code_cache, "batch_loader", lambda *a, **k: started.append(a[1]) or original(*a, **k))
    sharded = split_codes(run, "val", device="cpu", batch_size=13, cache=False, rows_per_shard=40)
    assert sharded.store.layout.shards == 5 and len(started) == 1  # loader workers would start once, not per shard
    assert [len(g) for g in started[0][:5]] == [13, 13, 13, 1, 13]  # no batch spans two shards
    np.testing.assert_allclose(np.asarray(sharded.z), whole, rtol=1e-6, atol=1e-6)


def test_a_shard_with_nan_written_in_and_its_times_kept_is_computed_again(nv, shapes_runs: dict, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from nvcli.analysis import code_cache

    run = trained_copy(shapes_runs, tmp_path / "nv")
    exact = np.asarray(split_codes(run, "val", device="cpu", rows_per_shard=40).z)
    path = run.dir / "codes" / "val-00002.npy"
    before = path.stat()
    shard = np.load(path, mmap_mode="r+")
    shard[3, 5] = np.nan  # same size and header
    shard.flush()
    del shard
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old modification time
    calls = []
    original = code_cache._CodeFeed.shard
    monkeypatch.setattr(code_cache._CodeFeed, "shard", lambda self, a, b: calls.append(a) or original(self, a, b))
    with caplog.at_level(logging.WARNING, logger="nvcli"):
        made = nv("codes", "--run", run.dir, "--format", "csv")
    assert made.code == 0, made.err
    assert f"the code store '{run.dir / 'codes' / 'val.json'}' is damaged: val-00002.npy or val-00002-labels.npy no " \
           "longer holds what was written (its CRC-32 differs" in caplog.text
    assert "computing its damaged shards again" in caplog.text and calls == [80]  # that shard alone
    np.testing.assert_array_equal(np.asarray(split_codes(run, "val", device="cpu").z), exact)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nvcli"):
        assert nv("codes", "--run", run.dir).code == 0
    assert not caplog.text and calls == [80]  # whole again: every shard read and found as written


def test_nv_codes_writes_a_store_again_with_the_shards_asked_for(nv, shapes_runs: dict, tmp_path: Path) -> None:
    run = trained_copy(shapes_runs, tmp_path / "nv")
    exact = np.asarray(split_codes(run, "val", device="cpu").z)  # one shard of 180 rows
    made = nv("codes", "--run", run.dir, "--shard-rows", "40", "--format", "csv")
    assert made.code == 0, made.err
    table = pd.read_csv(io.StringIO(made.out))
    assert (table["shards"].item(), table["rows_per_shard"].item()) == (5, 40)
    assert "written again as asked: 5 shards of 40 rows as float32 (it had 1 of 149796 rows as float32)" in made.err
    again = nv("codes", "--run", run.dir, "--format", "csv")  # without --shard-rows: kept as it is
    assert pd.read_csv(io.StringIO(again.out))["shards"].item() == 5 and "written again" not in again.err
    np.testing.assert_array_equal(np.asarray(split_codes(run, "val", device="cpu").z), exact)


def test_an_interrupted_nv_codes_says_which_shards_it_kept(nv, shapes_runs: dict, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from nvcli.analysis import code_cache

    run = trained_copy(shapes_runs, tmp_path / "nv")
    original = code_cache._CodeFeed.shard

    def shard(self, start: int, stop: int):
        for i, batch in enumerate(original(self, start, stop)):
            if start == 80 and i == 1:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the third shard
            yield batch

    monkeypatch.setattr(code_cache._CodeFeed, "shard", shard)
    cut = nv("codes", "--run", run.dir, "--shard-rows", "40", "--batch-size", "20")
    assert cut.code == 130
    assert cut.err.splitlines()[-1] == (f"interrupted; 2 of 5 shards of the val codes were kept in "
                                        f"'{run.dir / 'codes'}'; run the command again to resume them")
    calls = []
    monkeypatch.setattr(code_cache._CodeFeed, "shard", lambda self, a, b: calls.append(a) or original(self, a, b))
    assert nv("codes", "--run", run.dir, "--batch-size", "20").code == 0  # without --shard-rows: its own shards
    assert calls == [80, 120, 160]  # resumed after the two it kept
    monkeypatch.setattr(Run, "model", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    other = nv("codes", "--run", run.dir, "--split", "train")
    assert other.code == 130 and other.err.splitlines()[-1] == "interrupted; no codes were written"
    later = nv("eval", "--run", run.dir, "--device", "cpu")  # another command: its own line, not the last one's
    assert later.code == 130 and later.err.splitlines()[-1] == INTERRUPTED
