"""Nothing lost: one writer per run, --force removes only nv's files, writes fail whole, odd names and pixels."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from nvcli.errors import NvError
from nvcli.fs.pids import pid_alive
from nvcli.runs import lock

TINY = ["--arch", "smallcnn", "--image-size", "32", "-D", "train_per_class=4", "-D", "val_per_class=2",
        "--batch-size", "16", "--device", "cpu", "--epochs", "1"]
HOLD = textwrap.dedent("""
    import sys, time
    from nvcli.runs.lock import acquire
    acquire(sys.argv[1], "nv train --name held")
    print("held", flush=True)
    time.sleep(120)
""")


def holder(run_dir: Path) -> subprocess.Popen:
    """Another process holding `run_dir`'s lock (as a running `nv train` does) until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_first_and_loses_nothing(nv, tmp_path: Path) -> None:
    assert nv("train", *TINY, "--name", "x", "--runs-dir", tmp_path).code == 0
    run = tmp_path / "x"
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "train": {**config["train"], "epochs": 2}}))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    proc = holder(run)
    try:
        for args in (["train", *TINY, "--name", "x", "--force", "--runs-dir", tmp_path], ["eval", "--run", run],
                     ["weights", "--all", "--run", run], ["train", "--resume", "--run", run]):
            result = nv(*args)
            assert result.code == 2 and f"being written by another nv process: pid {proc.pid}" in result.err
            assert "nv train --name held" in result.err and len(result.err.strip().splitlines()) <= 2
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.name != ".nv-lock"} == before
    finally:
        proc.kill()
        proc.wait()
    # The holder died without releasing: its lock is stale and the next writer takes it over.
    assert json.loads((run / ".nv-lock").read_text())["pid"] == proc.pid
    assert nv("eval", "--run", run).code == 0
    assert not (run / ".nv-lock").exists()  # released when the command ended


def test_train_force_onto_a_run_that_is_training_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nvcli", "train", *TINY[:-2], "--epochs", "1000", "--name", "x",
                             "--runs-dir", str(tmp_path)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        end = time.time() + 120
        while not (tmp_path / "x" / "checkpoint.pt").exists():
            assert proc.poll() is None and time.time() < end
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "nvcli", "train", *TINY, "--name", "x", "--force",
                                 "--runs-dir", str(tmp_path)], capture_output=True, text=True, env=env)
        assert second.returncode == 2 and f"pid {proc.pid}" in second.stderr and "Traceback" not in second.stderr
        assert (tmp_path / "x" / "config.json").is_file() and (tmp_path / "x" / "units.csv").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)  # treated like Ctrl-C
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not list((tmp_path / "x").glob(".*.tmp")) and not (tmp_path / "x" / ".nv-lock").exists()


def test_locks_are_reentrant_and_a_reused_pid_is_not_an_owner(tmp_path: Path) -> None:
    with lock.holding(tmp_path):
        with lock.holding(tmp_path):  # a command that holds its run's lock saves a result into it
            assert (tmp_path / ".nv-lock").exists()
        assert (tmp_path / ".nv-lock").exists()
    assert not (tmp_path / ".nv-lock").exists()
    me = lock.Owner.me("x")
    assert pid_alive(me.pid, me.started)
    if me.started is not None:  # Linux: the same pid with another start time is another process
        assert not pid_alive(me.pid, str(int(me.started) + 1))


def test_the_end_of_a_command_gives_up_every_hold_of_its_locks(tmp_path: Path) -> None:
    lock.acquire(tmp_path, "nv eval")
    lock.acquire(tmp_path)  # the command saves a result into its run: a second hold
    lock.release_all()  # the command ends (the CLI, or atexit), however many holds are open
    assert not (tmp_path / ".nv-lock").exists()
    proc = holder(tmp_path)  # another process takes the run at once
    try:
        lock.release(tmp_path)  # a late release of a hold given up already changes nothing
        assert json.loads((tmp_path / ".nv-lock").read_text())["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_scratch_directories_of_killed_processes_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"nv-probe-{dead.stdout.strip()}-abc"
    (stale / "probe").mkdir(parents=True)
    alive = tmp_path / f"nv-probe-{os.getppid()}-def"
    alive.mkdir()
    with lock.scratch_dir("nv-probe-") as scratch:
        assert scratch.is_dir() and scratch.name.startswith(f"nv-probe-{os.getpid()}-")
        assert not stale.exists() and alive.exists()
    assert not scratch.exists()


def test_data_make_force_keeps_what_the_user_put_there(nv, tmp_path: Path) -> None:
    out = tmp_path / "tree"
    args = ["data", "make", "shapes", "--out", out, "--image-size", "16", "-D", "train_per_class=2",
            "-D", "val_per_class=1"]
    assert nv(*args).code == 0
    mine = out / "train" / "my_class" / "photo.jpg"
    mine.parent.mkdir()
    mine.write_bytes(b"the user's photo")
    (out / "train" / "red" / "note.txt").write_text("mine too")
    (out / "empty_by_user").mkdir()
    assert nv(*args, "--force").code == 0
    assert mine.read_bytes() == b"the user's photo" and (out / "train" / "red" / "note.txt").exists()
    assert (out / "empty_by_user").is_dir()
    foreign = tmp_path / "photos"
    (foreign / "a").mkdir(parents=True)
    (foreign / "a" / "x.jpg").write_bytes(b"x")
    refused = nv("data", "make", "shapes", "--out", foreign, "--force")
    assert refused.code == 2 and "was not written by nv (it has no" in refused.err
    assert (foreign / "a" / "x.jpg").read_bytes() == b"x"


def test_class_names_that_share_a_file_name_get_files_of_their_own(nv, tmp_path: Path) -> None:
    from layouts import write_image

    names = ["a b", "a_b", "a_b_1", "A_B", "x" * 200]
    for split in ("train", "val"):
        for i, name in enumerate(names):
            for k in range(2):
                write_image(tmp_path / "tree" / split / name / f"{k}.png", (50 * i, 20 * k, 0))
    assert nv("train", "--arch", "smallcnn", "--data", "imagefolder", "--data-dir", tmp_path / "tree",
              "--image-size", "16", "--epochs", "1", "--runs-dir", tmp_path, "--name", "r").code == 0
    run = tmp_path / "r"
    assert nv("weights", "--all", "--run", run, "--no-plot").code == 0
    written = sorted(p.name for p in run.glob("weights_*.csv") if p.name != "weights_layers.csv")
    assert len({n.casefold() for n in written}) == len(names) and all(len(n) < 120 for n in written)
    head = torch.load(run / "model.pt", weights_only=True)["head.weight"]
    classes = json.loads((run / "config.json").read_text())["data"]["classes"]
    manifest = json.loads((run / "results.json").read_text())["results"]
    for entry in (v for k, v in manifest.items() if k.startswith("weights/")):
        frame = pd.read_csv(run / entry["files"][0]).sort_values("unit")
        expected = head[classes.index(entry["settings"]["class"])].numpy()
        assert np.allclose(frame["weight"].to_numpy(), expected, atol=1e-6)  # each file holds its own class


def test_class_names_that_are_not_text_are_refused_before_anything_is_written(nv, tmp_path: Path) -> None:
    from layouts import write_image

    for split in ("train", "val"):
        write_image(tmp_path / "tree" / split / "ok" / "0.png", (1, 2, 3))
        raw = os.path.join(os.fsencode(tmp_path / "tree" / split), b"caf\xe9")
        os.makedirs(raw)
        with open(os.path.join(raw, b"0.png"), "wb") as f:
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(f, format="PNG")
    result = nv("train", "--arch", "smallcnn", "--data", "imagefolder", "--data-dir", tmp_path / "tree",
                "--image-size", "16", "--epochs", "1", "--runs-dir", tmp_path / "runs", "--name", "r")
    assert result.code == 2 and "class name b'caf\\xe9'" in result.err and "not valid UTF-8" in result.err
    assert not (tmp_path / "runs" / "r").exists()


def test_high_bit_depth_images_keep_their_range(tmp_path: Path) -> None:
    from nvcli.data.imagefile import read_rgb

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    assert (np.asarray(Image.open(tmp_path / "g16.png").convert("RGB")) == 255).mean() > 0.99  # Pillow alone clips
    grey = np.asarray(read_rgb(tmp_path / "g16.png"))[..., 0].astype(float)
    assert np.abs(grey - ramp / 257.0).max() <= 0.5  # 16-bit -> 8-bit by the full 16-bit range
    cases = {"I": (ramp.astype(np.int32), ramp / 257.0),
             "F": ((ramp / 65535.0).astype(np.float32), ramp / 257.0),
             "I-wide": ((ramp.astype(np.int32) - 40000) * 3, (ramp - ramp.min()) / (ramp.max() - ramp.min()) * 255)}
    for mode, (array, expected) in cases.items():
        image = Image.fromarray(array, "I" if mode.startswith("I") else "F")
        image.save(tmp_path / f"{mode}.tiff")
        got = np.asarray(read_rgb(tmp_path / f"{mode}.tiff"))[..., 0].astype(float)
        assert np.abs(got - expected).max() <= 0.51, mode
    rgba = np.zeros((8, 8, 2), np.uint8)
    rgba[..., 0], rgba[..., 1] = 200, 7
    Image.fromarray(rgba, "LA").save(tmp_path / "la.png")
    Image.fromarray(np.full((8, 8), 3, np.uint8), "P").save(tmp_path / "p.png")
    assert np.asarray(read_rgb(tmp_path / "la.png")).tolist() == [[[200] * 3] * 8] * 8
    assert np.asarray(read_rgb(tmp_path / "p.png")).shape == (8, 8, 3)


def test_truncated_and_looping_files_name_the_reason(tmp_path: Path) -> None:
    import io

    from nvcli.data.imagefile import read_rgb

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    with pytest.raises(NvError, match=r"cannot decode image '.*cut.jpg' \(OSError: image file is truncated"):
        read_rgb(tmp_path / "cut.jpg")
    with pytest.raises(NvError, match=r"loop.jpg' \(OSError: Too many levels of symbolic links\)"):
        read_rgb(tmp_path / "loop.jpg")
    os.mkfifo(tmp_path / "pipe.png")  # opening it to read would wait for a writer forever
    with pytest.raises(NvError, match=r"pipe.png' is not a regular file"):
        read_rgb(tmp_path / "pipe.png")


def test_class_names_are_printed_as_written(nv, tmp_path: Path) -> None:
    from layouts import write_image

    for split in ("train", "val"):
        for name in ("[red]a", "[bold]b"):
            write_image(tmp_path / split / name / "0.png", (1, 2, 3))
        (tmp_path / split / "[red]a" / "folder.png").mkdir()  # a folder named like an image is not one
    result = nv("data", "info", "imagefolder", "--data-dir", tmp_path)
    assert result.code == 0 and "[red]a" in result.out and "[bold]b" in result.out  # not taken as markup
    rows = json.loads(nv("data", "info", "imagefolder", "--data-dir", tmp_path, "--format", "json").out)
    assert [(r["class"], r["train"], r["val"]) for r in rows] == [("[bold]b", 1, 1), ("[red]a", 1, 1)]


# ------------------------------------------------------------------------------------- failed writes
def _refuse_writes_in(folder: Path, code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every file creation or rename inside `folder` fail with `code` (EROFS, ENOSPC), as the OS would."""
    real_open, real_replace, real_mkdir = os.open, os.replace, os.mkdir
    inside = str(folder.resolve())

    def blocked(path: object) -> bool:
        return os.path.abspath(os.fsdecode(path)).startswith(inside)

    def fake_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and blocked(path):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    def fake_replace(src, dst, *args, **kwargs):
        if blocked(dst):
            raise OSError(code, os.strerror(code), os.fsdecode(dst))
        return real_replace(src, dst, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if blocked(path):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "replace", fake_replace)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def test_a_read_only_run_is_refused_in_one_line(nv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert nv("train", *TINY, "--name", "r", "--runs-dir", tmp_path).code == 0
    run = tmp_path / "r"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    _refuse_writes_in(run, errno.EROFS, monkeypatch)
    for args in (["eval", "--run", run], ["weights", "--all", "--run", run]):
        result = nv(*args)
        assert result.code == 2 and "Read-only file system" in result.err and "Traceback" not in result.err
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_full_disk_stops_training_in_one_line_and_keeps_complete_files(nv, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert nv("train", *TINY[:-2], "--epochs", "3", "--name", "r", "--runs-dir", tmp_path).code == 0
    run = tmp_path / "r"
    config = json.loads((run / "config.json").read_text())
    config["train"]["epochs"] = 5
    (run / "config.json").write_text(json.dumps(config))
    good = {name: (run / name).read_bytes() for name in ("model.pt", "checkpoint.pt", "metrics.csv")}
    real_save = torch.save

    def full(obj, f, *args, **kwargs):  # what torch's zip writer raises when the disk fills mid-file
        Path(f).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4352 vs 4246")

    monkeypatch.setattr(torch, "save", full)
    result = nv("train", "--resume", "--run", run)
    assert result.code == 2 and "cannot write" in result.err and "unexpected pos" in result.err
    assert len(result.err.strip().splitlines()) == 2  # "run: ..." and the error
    assert {name: (run / name).read_bytes() for name in good} == good and not list(run.glob(".*.tmp"))
    monkeypatch.setattr(torch, "save", real_save)
    _refuse_writes_in(run, errno.ENOSPC, monkeypatch)
    result = nv("train", "--resume", "--run", run)
    assert result.code == 2 and "No space left on device" in result.err and "Traceback" not in result.err
    monkeypatch.undo()
    assert {name: (run / name).read_bytes() for name in good} == good and not list(run.glob(".*.tmp"))
    assert nv("train", "--resume", "--run", run).code == 0  # space again: the run continues
    assert len(pd.read_csv(run / "metrics.csv")) == 5


def test_data_make_force_after_an_interrupted_make_removes_only_its_files(nv, tmp_path: Path) -> None:
    from nvcli.data import output

    out = tmp_path / "tree"
    args = ["data", "make", "shapes", "--out", out, "--image-size", "16", "-D", "train_per_class=1",
            "-D", "val_per_class=1", "--force"]
    assert nv(*args).code == 0
    (out / "mine.txt").write_text("kept")
    with pytest.raises(KeyboardInterrupt):
        with output.dataset_output(out, "shapes", force=True) as root:  # a make interrupted half-way
            (root / "train" / "red").mkdir(parents=True)
            (root / "train" / "red" / "0.png").write_bytes(b"half")
            raise KeyboardInterrupt
    manifest = json.loads((out / output.MANIFEST).read_text())
    assert manifest["complete"] is False and manifest["kept"] == ["mine.txt"]
    assert nv(*args).code == 0
    assert (out / "mine.txt").read_text() == "kept"
    half = out / "train" / "red" / "0.png"
    assert not half.exists() or half.read_bytes() != b"half"  # the interrupted make's file went
    assert "mine.txt" not in json.loads((out / output.MANIFEST).read_text())["files"]


def test_a_planted_lock_link_never_touches_its_target(nv, tmp_path: Path) -> None:
    assert nv("train", *TINY, "--name", "r", "--runs-dir", tmp_path).code == 0
    precious = tmp_path / "bashrc"
    precious.write_text("the user's file")
    (tmp_path / "r" / ".nv-lock").symlink_to(precious)  # a run directory someone else prepared
    result = nv("eval", "--run", tmp_path / "r")
    assert result.code == 2 and "is a symbolic link, not an nv lock" in result.err
    assert precious.read_text() == "the user's file"


def test_an_input_file_name_that_is_not_utf8_is_explained(nv, tmp_path: Path) -> None:
    assert nv("train", *TINY, "--name", "r", "--runs-dir", tmp_path).code == 0
    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")
    with open(name, "wb") as f:
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(f, format="PNG")
    result = nv("explain", "--run", tmp_path / "r", "--input", os.fsdecode(name))
    assert result.code == 0, result.err
    summary = json.loads((tmp_path / "r" / "results.json").read_text())["results"]
    assert [v["settings"]["source"] for k, v in summary.items() if k.startswith("explain/")] == [
        os.fsdecode(name).encode("utf-8", "surrogateescape").decode("utf-8", "replace")]
    assert (tmp_path / "r" / "explain_caf_.png").is_file()


def test_compare_never_writes_through_a_link_inside_a_run(nv, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert nv("train", *TINY, "--name", name, "--runs-dir", tmp_path).code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "a" / "compare_b").symlink_to(elsewhere)
    result = nv("compare", tmp_path / "a", tmp_path / "b")
    assert result.code == 2 and "is a symbolic link" in result.err and not any(elsewhere.iterdir())
