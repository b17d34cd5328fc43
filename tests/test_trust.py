"""Trust: kills at any moment lose nothing, resume is exact, bad runs are refused, DDP keeps the contract."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from nvcli.data.shapes import ShapesOptions
from nvcli.errors import NvError
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import load_run
from nvcli.training.config import TrainConfig
from nvcli.training.engine import Trainer
from nvcli.training.recipes import train

ARGS = ["--arch", "smallcnn", "--image-size", "32", "-D", "train_per_class=30", "-D", "val_per_class=5",
        "--batch-size", "16", "--device", "cpu"]


def nv_process(*args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "nvcli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_terminal_signals)


def _terminal_signals() -> None:
    """Signals as a terminal delivers them, also when the suite runs in the background (which ignores them)."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.05)


def assert_complete(run_dir: Path) -> None:
    """Every file is a complete, readable version (old or new)."""
    json.loads((run_dir / "config.json").read_text())
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["epoch"].tolist() == list(range(1, len(metrics) + 1))
    torch.load(run_dir / "model.pt", weights_only=True)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["epoch"] >= len(metrics)  # the checkpoint is written first, then metrics.csv


def test_sigkill_mid_training_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    proc = nv_process("train", *ARGS, "--epochs", "4", "--seed", "1", "--name", "k", "--runs-dir", tmp_path)
    wait_for(tmp_path / "k" / "checkpoint.pt", proc)
    time.sleep(0.3)  # somewhere inside a later epoch, or while writing its files
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = tmp_path / "k"
    assert_complete(run_dir)
    for leftover in run_dir.glob(".*.tmp"):  # a kill during a write leaves at most a temp file
        leftover.unlink()
    resumed = subprocess.run([sys.executable, "-m", "nvcli", "train", "--resume", "--run", run_dir],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    cfg = TrainConfig(epochs=4, batch_size=16, device="cpu", seed=1)  # a seed other than 0 must survive resume
    whole = train(ModelChoice(arch="smallcnn"), "shapes",
                  ShapesOptions(image_size=32, train_per_class=30, val_per_class=5, seed=1), cfg, name="whole",
                  runs_dir=tmp_path)
    a = torch.load(whole.dir / "model.pt", weights_only=True)
    b = torch.load(run_dir / "model.pt", weights_only=True)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    pd.testing.assert_frame_equal(pd.read_csv(whole.dir / "metrics.csv").drop(columns="seconds"),
                                  pd.read_csv(run_dir / "metrics.csv").drop(columns="seconds"))


def test_sigint_exits_130_with_a_resume_hint_and_complete_files(tmp_path: Path) -> None:
    proc = nv_process("train", *ARGS, "--epochs", "1000", "--name", "i", "--runs-dir", tmp_path)
    wait_for(tmp_path / "i" / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "resume" in err and "Traceback" not in err
    assert_complete(tmp_path / "i")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    from nvcli.data.registry import load_data
    from nvcli.models.build import build_model
    from nvcli.training.recipes import spec_for

    bundle = load_data("shapes", {"image_size": 32, "train_per_class": 10, "val_per_class": 2})
    trainer = Trainer(build_model(spec_for(ModelChoice(arch="smallcnn"), bundle)), bundle.train, bundle.val,
                      TrainConfig(epochs=3, batch_size=16), tmp_path, device=torch.device("cpu"))
    trainer.fit(stop_after=1)
    good = torch.load(tmp_path / "model.pt", weights_only=True)
    with torch.no_grad():
        trainer.model.head.weight.fill_(float("nan"))
    with pytest.raises(NvError, match=r"training loss became nan at epoch 2.*checkpoint of epoch 1 is kept"):
        trainer.fit()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.equal(good[k], kept[k]) for k in good)
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1


def test_refusals_checkpoint_of_another_model_old_format_unwritable_dir(nv, tmp_path: Path) -> None:
    assert nv("train", *ARGS, "--epochs", "1", "--name", "r", "--runs-dir", tmp_path).code == 0
    run_dir = tmp_path / "r"
    shutil.copy(run_dir / "model.pt", tmp_path / "good.pt")
    from nvcli.models.archs import build_network
    from nvcli.models.neuroview import NeuroView

    other = NeuroView(build_network("alexnet", 9, 3, 32), 9, input_shape=(3, 32, 32))
    torch.save(other.state_dict(), run_dir / "model.pt")
    result = nv("eval", "--run", run_dir)
    assert result.code == 2 and "does not match the model described in config.json" in result.err
    shutil.copy(tmp_path / "good.pt", run_dir / "model.pt")

    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "format": 0}))
    result = nv("eval", "--run", run_dir)
    assert result.code == 2 and "config format 0" in result.err

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = nv("train", *ARGS, "--epochs", "1", "--runs-dir", blocker / "runs")
    assert result.code == 2 and "cannot create run directory" in result.err


def test_torchrun_two_processes_keep_the_single_process_contract(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    # --standalone: a free port of its own, never a fixed 29500 another job may hold
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "nvcli", "train", *ARGS,
                             "--epochs", "2",
                             "--name", "ddp", "--runs-dir", tmp_path], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "latest"]  # one run, written once
    run = load_run(tmp_path / "ddp")
    metrics = pd.read_csv(run.dir / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]
    assert metrics[["train_loss", "val_loss"]].notna().all().all()
    assert run.model().head.weight.shape == (9, 112)
    assert result.stderr.count("run written to") == 1  # only rank 0 reports
    assert result.stdout.count("final epoch") == 1
    # Every process validated its share and the counts add up to one process's evaluation of the same weights.
    from nvcli.analysis.evaluate import evaluate

    final = evaluate(run).summary
    assert metrics["val_acc"].iloc[-1] == final.accuracy
    assert metrics["val_loss"].iloc[-1] == pytest.approx(final.loss, rel=1e-6)


def test_resume_refuses_runs_without_a_checkpoint(nv, tmp_path: Path) -> None:
    assert nv("convert", "--arch", "smallcnn", "-n", "9", "--runs-dir", tmp_path, "--name", "c").code == 0
    converted = nv("train", "--resume", "--run", tmp_path / "c")
    assert converted.code == 2 and "never trained (convert only)" in converted.err
    assert nv("train", *ARGS, "--epochs", "1", "--name", "t", "--runs-dir", tmp_path).code == 0
    done = nv("train", "--resume", "--run", tmp_path / "t")
    assert done.code == 0 and "already complete (1 of 1 epochs)" in done.err
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    config["train"]["epochs"] = 2  # an unfinished run ...
    (tmp_path / "t" / "config.json").write_text(json.dumps(config))
    (tmp_path / "t" / "checkpoint.pt").unlink()  # ... whose checkpoint is gone
    missing = nv("train", "--resume", "--run", tmp_path / "t")
    assert missing.code == 2 and "cannot resume" in missing.err and "checkpoint.pt" in missing.err
