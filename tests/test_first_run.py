"""A first run without traps: image work without torchaudio, help that reads like a CLI, runs/latest said
out loud, results that are never silently replaced, and --resume that says what it does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

TINY = ["--arch", "smallcnn", "--image-size", "32", "--epochs", "1", "-D", "train_per_class=6",
        "-D", "val_per_class=3", "--batch-size", "16"]
TINY_TONES = ["--data", "tones", "--arch", "smallcnn", "--image-size", "32", "--epochs", "1", "-D", "per_class=3",
              "-D", "val_per_class=2", "--batch-size", "16"]


def test_image_commands_work_and_sound_says_why_when_torchaudio_cannot_load(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "torchaudio"
    shim.mkdir(parents=True)
    # What a torchaudio built for another torch does at import.
    (shim / "__init__.py").write_text("raise OSError('libtorchaudio.so: undefined symbol: torch_exception_x')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim.parent), *sys.path])}

    def nv(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nvcli", *map(str, args)], capture_output=True, text=True,
                              env=env, timeout=300)

    trained = nv("train", *TINY, "--runs-dir", tmp_path / "runs", "--name", "img")
    assert trained.returncode == 0, trained.stderr
    assert nv("eval", "--run", tmp_path / "runs" / "img").returncode == 0
    assert nv("data", "list").returncode == 0
    sound = nv("train", *TINY_TONES, "--runs-dir", tmp_path / "runs", "--name", "snd")
    assert sound.returncode == 2 and "Traceback" not in sound.stderr
    line = sound.stderr.strip()
    assert "\n" not in line and "torchaudio" in line and "undefined symbol" in line
    assert "installed: torch " in line and "make install" in line
    assert not (tmp_path / "runs" / "snd").exists()


def test_help_shows_flags_as_flags_and_only_what_applies(nv) -> None:
    train = nv("train", "--help").out
    assert "<bool>" not in train and "--baseline" in train and "--val-fold" in train and "--views" in train
    multiview = nv("multiview", "--help").out
    assert "<bool>" not in multiview and "--views" in multiview
    assert "--val-fold" not in multiview and "--sample-rate" not in multiview  # sound-only flags
    assert "--baseline" not in nv("convert", "--help").out  # convert always builds a NeuroView network
    assert "<bool>" not in nv("--help").out


def test_commands_say_which_run_they_read_and_name_it_when_its_kind_does_not_fit(nv, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert nv("train", *TINY, "--runs-dir", runs, "--name", "img").code == 0
    assert nv("train", *TINY_TONES, "--runs-dir", runs, "--name", "snd").code == 0
    weights = nv("weights", "--class", "low_tone", "--runs-dir", runs)  # the latest run: the sound one
    assert weights.code == 0 and f"run: {(runs / 'snd').resolve()} (the latest" in weights.err
    perturb = nv("perturb", "--channel", "red", "--runs-dir", runs)
    assert perturb.code == 2 and str((runs / "snd").resolve()) in perturb.err and "--run" in perturb.err
    red = nv("weights", "--class", "red", "--runs-dir", runs)
    assert red.code == 2 and "unknown class 'red'" in red.err and "run: " in red.err


def test_results_made_with_other_settings_are_not_silently_replaced(nv, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    assert nv("train", *TINY, "--runs-dir", tmp_path / "runs", "--name", "r").code == 0
    assert nv("perturb", "--run", run, "--channel", "all").code == 0
    every = (run / "perturb.csv").read_bytes()
    assert set(pd.read_csv(run / "perturb.csv")["condition"]) == {"none", "red", "green", "blue"}
    refused = nv("perturb", "--run", run, "--channel", "red")
    assert refused.code == 2 and "other settings" in refused.err and "--force" in refused.err
    assert (run / "perturb.csv").read_bytes() == every  # untouched
    assert nv("perturb", "--run", run, "--channel", "all").code == 0  # the same settings: replaced in place
    replaced = nv("perturb", "--run", run, "--channel", "red", "--force")
    assert replaced.code == 0 and set(pd.read_csv(run / "perturb.csv")["condition"]) == {"none", "red"}


@pytest.mark.parametrize("flag", [["--epochs", "5"], ["--lr", "0.1"], ["--reduce", "mean"], ["--data", "tones"],
                                  ["-D", "train_per_class=7"], ["--name", "other"], ["--seed", "3"]])
def test_resume_refuses_flags_that_would_change_the_recipe(nv, tmp_path: Path, flag: list) -> None:
    run = tmp_path / "r"
    assert nv("train", *TINY, "--epochs", "2", "--runs-dir", tmp_path, "--name", "r").code == 0
    before = (run / "metrics.csv").read_bytes()
    result = nv("train", "--resume", "--run", run, *flag)
    named = "--data-option" if flag[0] == "-D" else flag[0]
    assert result.code == 2 and named in result.err and "would change" in result.err
    assert (run / "metrics.csv").read_bytes() == before
    done = nv("train", "--resume", "--run", run, "--threads", "1")  # where to run may change
    assert done.code == 0 and "already complete (2 of 2 epochs)" in done.err
    assert (run / "metrics.csv").read_bytes() == before  # nothing rewritten


def test_resume_accepts_the_recorded_recipe_repeated(nv, tmp_path: Path) -> None:
    """A user re-runs the same command with --resume added: flags equal to the record are accepted."""
    run = tmp_path / "r"
    args = [*TINY, "--epochs", "2", "--runs-dir", tmp_path]
    assert nv("train", *args, "--name", "r").code == 0
    done = nv("train", *args, "--name", "r", "--resume", "--run", run)
    assert done.code == 0 and "already complete (2 of 2 epochs)" in done.err
    changed = nv("train", *args, "--lr", "0.5", "--resume", "--run", run)
    assert changed.code == 2 and "--lr 0.5 (the run has 0.001)" in changed.err


def test_resume_compares_a_repeated_data_dir_as_a_path(nv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The record holds --data-dir absolute; the same folder given relative again is the same setting."""
    monkeypatch.chdir(tmp_path)
    assert nv("data", "make", "shapes", "--out", "tree", "--image-size", "32", "-D", "train_per_class=3",
              "-D", "val_per_class=2").code == 0
    args = ["--arch", "smallcnn", "--data", "imagefolder", "--data-dir", "tree", "--image-size", "32", "--epochs", "1",
            "--batch-size", "8", "--runs-dir", "runs", "--name", "r"]
    assert nv("train", *args).code == 0
    assert nv("train", *args, "--resume", "--run", "runs/r").code == 0  # ./tree == /abs/.../tree
    (tmp_path / "other").mkdir()
    moved = nv("train", *args[:5], "other", *args[6:], "--resume", "--run", "runs/r")
    assert moved.code == 2 and "--data-dir other (the run has" in moved.err
