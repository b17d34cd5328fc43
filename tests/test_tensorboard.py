"""nv train --tensorboard: TensorBoard's event files mirror metrics.csv, add the learning rates and the head's
statistics, and are a folder that nv owns (replaced with --force, never a user's file in it)."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from nvcli.runs import files

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed (pip install 'nvcli[tensorboard]')")

SMALL = ("--arch", "smallcnn", "--image-size", "32", "-D", "train_per_class=20", "-D", "val_per_class=8",
         "--epochs", "1", "--batch-size", "32", "--threads", "1", "--device", "cpu")


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of `log_dir`, as TensorBoard reads them: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_event_files_hold_metrics_csv_learning_rates_and_head_statistics(nv, tmp_path: Path) -> None:
    code, _, err = nv("train", *SMALL, "--head-l1", "2.5", "--head-lr-scale", "0.5", "--lr", "0.01",
                      "--tensorboard", "--name", "tb", "--runs-dir", tmp_path)
    assert code == 0, err
    run_dir = tmp_path / "tb"
    assert list((run_dir / files.TENSORBOARD_DIR).glob(files.TENSORBOARD_EVENTS))
    scalars = _scalars(run_dir / files.TENSORBOARD_DIR)
    metrics = pd.read_csv(run_dir / files.METRICS)
    for column, tag in {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train",
                        "val_acc": "accuracy/val", "lr": "lr/backbone"}.items():
        assert [s for s, _ in scalars[tag]] == metrics["epoch"].tolist(), tag
        assert [v for _, v in scalars[tag]] == pytest.approx(metrics[column].tolist(), rel=1e-6), tag
    assert scalars["lr/head"][0][1] == pytest.approx(0.01 * 0.5)
    # The head's statistics after the last epoch, from model.pt and head_init.pt.
    weight = torch.load(run_dir / files.MODEL, weights_only=True)["head.weight"]
    init = torch.load(run_dir / files.HEAD_INIT, weights_only=True)["weight"]
    used = int((weight != 0).any(dim=0).sum())
    assert 0 < used < weight.shape[1]  # the L1 step zeroes some units: the count is not just the width
    assert scalars["head/units_with_weight"] == [(1, used)]
    assert scalars["head/l1"][0][1] == pytest.approx(float(weight.abs().sum()), rel=1e-5)
    assert scalars["head/learned_share"][0][1] == pytest.approx(float((weight - init).norm() / weight.norm()), rel=1e-5)

    # --force replaces nv's event files, never a file of the user's in that folder.
    mine = run_dir / files.TENSORBOARD_DIR / "notes.txt"
    mine.write_text("mine")
    code, _, err = nv("train", *SMALL, "--name", "tb", "--runs-dir", tmp_path, "--force")
    assert code == 0, err
    assert [p.name for p in (run_dir / files.TENSORBOARD_DIR).iterdir()] == ["notes.txt"]

    # A link in the folder's place is never written through.
    mine.unlink()
    (run_dir / files.TENSORBOARD_DIR).rmdir()
    (tmp_path / "elsewhere").mkdir()
    (run_dir / files.TENSORBOARD_DIR).symlink_to(tmp_path / "elsewhere")
    code, _, err = nv("train", *SMALL, "--name", "tb", "--runs-dir", tmp_path, "--force", "--tensorboard")
    assert code == 2 and "link" in err and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "elsewhere").iterdir())


def test_log_dir_elsewhere_and_a_baseline_without_head_statistics(nv, tmp_path: Path) -> None:
    code, _, err = nv("train", *SMALL, "--baseline", "--log-dir", tmp_path / "curves", "--name", "base",
                      "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    assert not (tmp_path / "runs" / "base" / files.TENSORBOARD_DIR).exists()
    scalars = _scalars(tmp_path / "curves")
    assert set(scalars) == {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr/all"}


def test_without_tensorboard_one_line_naming_the_extra_and_nothing_written(nv, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` raises ImportError
    code, out, err = nv("train", *SMALL, "--tensorboard", "--name", "tb", "--runs-dir", tmp_path / "runs")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nvcli[tensorboard]" in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


def test_only_event_files_in_the_tensorboard_folder_are_nvs() -> None:
    assert files.written_by_nv("tensorboard/events.out.tfevents.1700000000.host.42.0")
    assert not files.written_by_nv("tensorboard/notes.txt")
    assert not files.written_by_nv("tensorboard/run1/events.out.tfevents.1700000000.host.42.0")
