"""Sound and multi-view runs through the CLI: train, then eval, weights and explain work on them."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch


def test_tones_train_far_above_chance_and_explain_commands_work(nv, tmp_path: Path) -> None:
    result = nv("train", "--arch", "smallcnn", "--reduce", "mean", "--data", "tones", "--epochs", "8", "--lr", "3e-3",
                "--batch-size", "32", "--runs-dir", tmp_path, "--name", "t", "--format", "json")
    assert result.code == 0, result.err
    evaluation = json.loads(nv("eval", "--run", tmp_path / "t", "--format", "json").out)[0]
    assert evaluation["accuracy"] > 4 / 7  # 7 classes: chance is 1/7
    assert nv("weights", "--run", tmp_path / "t", "--class", "high_tone", "--plot").code == 0
    assert (tmp_path / "t" / "weights_high_tone.png").is_file()
    explained = nv("explain", "--run", tmp_path / "t", "--index", "0", "--format", "json")
    assert explained.code == 0, explained.err
    state = torch.load(tmp_path / "t" / "model.pt", weights_only=True)
    assert state["codes.body.features.0.weight"].shape[1] == 1  # one input channel for spectrograms


def test_urbansound_command_exactly_as_documented(nv, tmp_path: Path) -> None:
    data = tmp_path / "UrbanSound8K"
    assert nv("data", "make", "tones", "--out", data, "-D", "per_class=10").code == 0
    result = nv("train", "--arch", "alexnet", "--reduce", "mean", "--data", "urbansound", "--data-dir", data,
                "--epochs", "1", "--runs-dir", tmp_path / "runs", "--name", "us")
    assert result.code == 0, result.err
    config = json.loads((tmp_path / "runs" / "us" / "config.json").read_text())
    assert config["model"]["input_shape"][0] == 1 and config["data"]["options"]["data_dir"] == str(data)
    assert {"sample_rate", "n_mels"} <= set(json.dumps(config["data"]["info"]).replace('"', " ").split())
    assert nv("eval", "--run", tmp_path / "runs" / "us").code == 0


def test_multiview_command_writes_views_and_other_commands_read_the_run(nv, tmp_path: Path) -> None:
    common = ["--arch", "smallcnn", "--image-size", "32", "--epochs", "2", "-D", "train_per_class=4",
              "-D", "val_per_class=2", "--runs-dir", tmp_path]
    result = nv("multiview", *common, "--views", "12", "--reduce", "mean", "--name", "mv")
    assert result.code == 0, result.err
    views = pd.read_csv(tmp_path / "mv" / "views.csv")
    assert list(views.columns) == ["class", "view", "mean_weight", "pos_weight", "neg_weight"]
    assert sorted(views["view"].unique()) == list(range(12)) and (tmp_path / "mv" / "views.png").is_file()
    units = pd.read_csv(tmp_path / "mv" / "units.csv")
    assert list(units.columns) == ["unit", "view", "layer", "node", "label", "channel"] and len(units) == 12 * 112
    assert nv("eval", "--run", tmp_path / "mv").code == 0
    assert nv("weights", "--run", tmp_path / "mv", "--class", "cube").code == 0
    assert "view" in pd.read_csv(tmp_path / "mv" / "weights_cube.csv").columns
    assert nv("explain", "--run", tmp_path / "mv", "--index", "0").code == 0
    baseline = nv("multiview", *common, "--baseline", "--name", "mvcnn")
    assert baseline.code == 0, baseline.err
    rows = json.loads(nv("eval", "--run", tmp_path / "mv", "--run", tmp_path / "mvcnn", "--format", "json").out)
    assert [r["network"] for r in rows] == ["NeuroView smallcnn MV12", "smallcnn MV12"]
