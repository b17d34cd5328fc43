"""The code store: shards written batch by batch, resumed after an interruption, read back exactly, refused when
made for other data, and readable with numpy alone."""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from nvcli.analysis import code_store
from nvcli.analysis.code_store import CodeStore, DamagedStore, Layout, StoreWriter, write_store
from nvcli.errors import NvError
from nvcli.schema import JsonRecord


@dataclass(frozen=True)
class Made(JsonRecord):
    """What a test store's codes depend on."""

    model_sha256: str
    data: dict[str, int]


FINGERPRINT = Made("abc", {"seed": 0})


def _codes(n: int = 103, d: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)).astype(np.float32) * 10 + 3, rng.integers(0, 4, n)


def _batches(z: np.ndarray, y: np.ndarray, calls: list[int] | None = None, batch: int = 8):
    def shard_batches(start: int, stop: int):
        if calls is not None:
            calls.append(start)
        for i in range(start, stop, batch):
            yield z[i:min(i + batch, stop)], y[i:min(i + batch, stop)]
    return shard_batches


def test_a_store_reads_back_what_was_written(tmp_path: Path) -> None:
    z, y = _codes()
    layout = Layout(len(z), z.shape[1], rows_per_shard=20)
    store = write_store(tmp_path, "train", FINGERPRINT, layout, _batches(z, y)).close()
    assert layout.shards == 6 and store.samples == 103 and store.units == 7
    np.testing.assert_array_equal(np.asarray(store.view()), z)
    np.testing.assert_array_equal(store.labels(), y)
    rows = np.array([102, 0, 41, 40, 19, 20])
    np.testing.assert_array_equal(store.view()[rows], z[rows])
    np.testing.assert_array_equal(store.view()[5:47, 2], z[5:47, 2])
    np.testing.assert_array_equal(store.view()[-1], z[-1])
    seen = np.concatenate([block for _, block, _ in store.chunks(rows=9)])
    np.testing.assert_array_equal(seen, z)
    mean, std = store.mean_std()
    np.testing.assert_allclose(mean, z.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, z.astype(np.float64).std(0), rtol=1e-9)


def test_the_manifest_and_shards_need_only_numpy_and_json(tmp_path: Path) -> None:
    z, y = _codes(50)
    write_store(tmp_path, "val", FINGERPRINT, Layout(50, 7, rows_per_shard=16), _batches(z, y))
    manifest = json.loads((tmp_path / "val.json").read_text())
    assert manifest["complete"] and manifest["samples"] == 50 and manifest["fingerprint"] == FINGERPRINT.to_json()
    parts = [np.load(tmp_path / s["codes"]) for s in manifest["shards"]]
    assert [s["start"] for s in manifest["shards"]] == [0, 16, 32, 48]
    np.testing.assert_array_equal(np.concatenate(parts), z)
    np.testing.assert_array_equal(np.concatenate([np.load(tmp_path / s["labels"]) for s in manifest["shards"]]), y)


def test_an_interrupted_store_resumes_after_its_finished_shards(tmp_path: Path) -> None:
    z, y = _codes()
    layout = Layout(len(z), 7, rows_per_shard=30)

    def failing(start: int, stop: int):
        if start >= 60:
            yield z[start:start + 5], y[start:start + 5]
            raise KeyboardInterrupt  # killed half-way through the third shard
        yield from _batches(z, y)(start, stop)

    with pytest.raises(KeyboardInterrupt):
        write_store(tmp_path, "train", FINGERPRINT, layout, failing)
    manifest = json.loads((tmp_path / "train.json").read_text())
    assert not manifest["complete"] and [s["index"] for s in manifest["shards"]] == [0, 1]
    with pytest.raises(NvError, match="unfinished"):
        CodeStore.open(tmp_path, "train", FINGERPRINT)
    assert not list(tmp_path.glob(".*.tmp"))  # the half-written shard left nothing behind
    calls: list[int] = []
    store = write_store(tmp_path, "train", FINGERPRINT, layout, _batches(z, y, calls)).close()
    assert calls == [60, 90]  # only the missing shards were computed
    np.testing.assert_array_equal(np.asarray(store.view()), z)
    # Other weights: nothing is kept.
    calls.clear()
    write_store(tmp_path, "train", replace(FINGERPRINT, model_sha256="def"), layout, _batches(z, y, calls))
    assert calls == [0, 30, 60, 90]


def test_a_store_for_other_weights_or_a_damaged_one_is_refused(tmp_path: Path) -> None:
    z, y = _codes()
    write_store(tmp_path, "val", FINGERPRINT, Layout(len(z), 7, rows_per_shard=50), _batches(z, y))
    with pytest.raises(NvError, match=r"computed for another model_sha256;") as error:
        CodeStore.open(tmp_path, "val", replace(FINGERPRINT, model_sha256="other"))
    assert "\n" not in str(error.value)
    with pytest.raises(NvError, match="no code store 'train'"):
        CodeStore.open(tmp_path, "train", FINGERPRINT)
    shard = tmp_path / "val-00001.npy"
    shard.write_bytes(shard.read_bytes()[:-10])  # truncated
    with pytest.raises(NvError, match="damaged: val-00001.npy is missing, truncated"):
        CodeStore.open(tmp_path, "val", FINGERPRINT)
    shard.unlink()
    shard.symlink_to(tmp_path / "val-00000.npy")  # a link is never read through
    with pytest.raises(NvError, match="damaged"):
        CodeStore.open(tmp_path, "val", FINGERPRINT)


def test_float16_codes_are_read_as_float32(tmp_path: Path) -> None:
    z, y = _codes()
    layout = Layout(len(z), 7, dtype="float16", rows_per_shard=40)
    store = write_store(tmp_path, "val", FINGERPRINT, layout, _batches(z, y)).close()
    assert (tmp_path / "val-00000.npy").stat().st_size < 40 * 7 * 4
    read = np.asarray(store.view())
    assert read.dtype == np.float32
    np.testing.assert_allclose(read, z, rtol=1e-3, atol=1e-2)
    with pytest.raises(NvError, match="code dtype 'float8' is not valid"):
        Layout(10, 7, dtype="float8")


def test_a_batch_that_does_not_fit_its_shard_is_refused(tmp_path: Path) -> None:
    z, y = _codes()
    writer = StoreWriter(tmp_path, "val", FINGERPRINT, Layout(len(z), 7, rows_per_shard=50))
    with pytest.raises(NvError, match="got 40 rows, expected 50"):
        writer.write(0, [(z[:40], y[:40])])
    with pytest.raises(NvError, match="holds 50 rows of 7 units"):
        writer.write(0, [(z[:40, :6], y[:40])])
    assert writer.todo() == [0, 1, 2] and not (tmp_path / "val-00000.npy").exists()


def test_a_shard_edited_in_place_is_found_without_reading_the_untouched_ones(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    z, y = _codes(60)
    write_store(tmp_path, "val", FINGERPRINT, Layout(60, 7, rows_per_shard=16), _batches(z, y)).close()
    path = tmp_path / "val-00002.npy"
    before = path.stat()
    shard = np.load(path, mmap_mode="r+")
    shard[0, 0] = np.nan  # same size, same header
    shard.flush()
    del shard
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and its old modification time: only the change
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns  # time tells
    read = []
    original = code_store._crc
    monkeypatch.setattr(code_store, "_crc", lambda folder, name, i: read.append(i) or original(folder, name, i))
    with pytest.raises(DamagedStore, match=r"is damaged: val-00002.npy or val-00002-labels.npy no longer holds what "
                                           r"was written \(its CRC-32 differs"):
        CodeStore.open(tmp_path, "val", FINGERPRINT)
    assert read == [2]  # the untouched shards were trusted on their stamps
    resumed = StoreWriter(tmp_path, "val", FINGERPRINT, Layout(60, 7, rows_per_shard=16))
    assert resumed.todo() == [2]  # only the edited shard is written again


def test_a_touched_shard_that_holds_its_codes_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z, y = _codes(60)
    write_store(tmp_path / "a", "val", FINGERPRINT, Layout(60, 7, rows_per_shard=16), _batches(z, y))
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # times kept (copy2), but every file has a new change time
    read = []
    original = code_store._crc
    monkeypatch.setattr(code_store, "_crc", lambda folder, name, i: read.append(i) or original(folder, name, i))
    store = CodeStore.open(tmp_path / "b", "val", FINGERPRINT)
    assert read == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.asarray(store.view()), z)
    store.record_stamps()
    read.clear()
    CodeStore.open(tmp_path / "b", "val", FINGERPRINT)
    assert read == []  # the new stamps are recorded: nothing is read again
    CodeStore.open(tmp_path / "b", "val", FINGERPRINT, verify=True)
    assert read == [0, 1, 2, 3]  # unless asked to


def test_codes_that_are_not_finite_are_refused_when_read_naming_the_store_and_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z, y = _codes(60)
    z[37, 2] = np.nan  # written outside nv: the writer refuses such codes
    layout = Layout(60, 7, rows_per_shard=16)
    writer = StoreWriter(tmp_path, "val", FINGERPRINT, layout)
    monkeypatch.setattr(np, "isfinite", lambda a: np.ones(np.shape(a), bool))
    for i in range(layout.shards):
        writer.write(i, _batches(z, y)(*layout.rows(i)))
    monkeypatch.undo()
    store = writer.close()  # its stamps and CRC-32s are those of the NaN
    manifest = tmp_path / "val.json"
    message = (f"the code store '{manifest}' holds NaN or infinite codes in val-00002.npy; remove '{manifest}' so "
               "that the codes are computed again")
    with pytest.raises(DamagedStore, match=re.escape(message)):
        list(store.chunks(rows=5))
    with pytest.raises(DamagedStore, match="val-00002.npy"):
        store.shard(2)
    with pytest.raises(DamagedStore, match="val-00002.npy"):
        store.view()[[3, 37]]
    np.testing.assert_array_equal(store.view()[[3, 36]], z[[3, 36]])
    np.testing.assert_array_equal(store.shard(1), z[16:32])


def test_codes_that_are_not_finite_are_refused_when_written(tmp_path: Path) -> None:
    z, y = _codes(30)
    z[17, 3] = np.inf
    with pytest.raises(NvError, match=r"codes of rows 16\.\.23 of .val. are not finite as float32"):
        write_store(tmp_path, "val", FINGERPRINT, Layout(30, 7, rows_per_shard=16), _batches(z, y))
    assert json.loads((tmp_path / "val.json").read_text())["shards"][0]["index"] == 0  # the first shard is kept


def test_every_writer_gets_a_shard_of_a_small_split_in_whole_batches() -> None:
    from nvcli.analysis.code_store import rows_per_shard, shared_rows_per_shard

    assert shared_rows_per_shard(180, 112, "float32", 2, 13) == 91  # 7 batches of 13: shards of 91 and 89 rows
    assert Layout(180, 112, rows_per_shard=91).shards == 2
    big = 10 * rows_per_shard(2048)
    assert shared_rows_per_shard(big, 2048, "float32", 4, 128) == rows_per_shard(2048)  # 64 MiB shards already
    assert shared_rows_per_shard(0, 7, "float16", 3, 8) == 8
