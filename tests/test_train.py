"""Training on the built-in shapes data: learning, baseline parity, checkpoints and exact resume."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from nvcli.analysis.evaluate import evaluate
from nvcli.analysis.settings import Compute
from nvcli.data.shapes import COLOUR_CLASSES, ShapesOptions
from nvcli.errors import NvError
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import load_run
from nvcli.training.config import TrainConfig
from nvcli.training.engine import EpochRow
from nvcli.training.predict import predict
from nvcli.training.recipes import resume, train

CHANCE = 1 / 9


def spec(**overrides: object) -> ModelChoice:
    return ModelChoice(**{"arch": "smallcnn", "code": "soft", "reduce": "max", **overrides})


def cfg(**overrides: object) -> TrainConfig:
    return TrainConfig(**{"epochs": 8, "batch_size": 32, "lr": 3e-3, **overrides})


@pytest.fixture(scope="module")
def runs(shapes_runs: dict) -> dict[str, Path]:
    return {"neuroview": shapes_runs["nv"].dir, "baseline": shapes_runs["base"].dir}


def test_neuroview_learns_far_above_chance_and_colour_classes_perfectly(runs: dict[str, Path]) -> None:
    result = evaluate(load_run(runs["neuroview"]), compute=Compute(device="cpu"))
    assert result.summary.accuracy > 4 * CHANCE
    colour = result.per_class.set_index("class").loc[list(COLOUR_CLASSES), "accuracy"]
    assert (colour > 0.9).all()  # colour alone defines these classes: the easiest cue


def test_neuroview_and_baseline_reach_comparable_accuracy(runs: dict[str, Path]) -> None:
    nv = evaluate(load_run(runs["neuroview"]), compute=Compute(device="cpu")).summary.accuracy
    base = evaluate(load_run(runs["baseline"]), compute=Compute(device="cpu")).summary.accuracy
    assert base > 4 * CHANCE
    assert abs(nv - base) < 0.2


def test_run_directory_contract(runs: dict[str, Path]) -> None:
    run_dir = runs["neuroview"]
    for name in ("config.json", "model.pt", "checkpoint.pt", "units.csv", "metrics.csv"):
        assert (run_dir / name).is_file()
    state = torch.load(run_dir / "model.pt", weights_only=True)
    units = pd.read_csv(run_dir / "units.csv")
    assert list(units.columns) == ["unit", "layer", "node", "label", "channel"]
    assert state["head.weight"].shape == (9, len(units)) == (9, 112)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    assert metrics["epoch"].tolist() == list(range(1, 13))
    config = load_run(run_dir).config
    assert config.versions["torch"] == torch.__version__
    assert config.model.arch == "smallcnn" and config.train.epochs == 12
    assert (run_dir.parent / "latest").resolve() == runs["baseline"].resolve()  # the newest run


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    data = ShapesOptions(image_size=32, train_per_class=20, val_per_class=5)
    whole = train(spec(), "shapes", data, cfg(epochs=3), name="whole", runs_dir=tmp_path)

    def interrupt(row: EpochRow) -> None:
        if row.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(spec(), "shapes", data, cfg(epochs=3), name="cut", runs_dir=tmp_path, on_epoch=interrupt)
    assert pd.read_csv(tmp_path / "cut" / "metrics.csv")["epoch"].tolist() == [1]
    resumed = resume(load_run(tmp_path / "cut"))
    a = torch.load(whole.dir / "model.pt", weights_only=True)
    b = torch.load(resumed.dir / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ma, mb = (pd.read_csv(r.dir / "metrics.csv").drop(columns="seconds") for r in (whole, resumed))
    pd.testing.assert_frame_equal(ma, mb)


def test_same_seed_same_metrics_and_run_dirs_are_not_overwritten(tmp_path: Path) -> None:
    data = ShapesOptions(image_size=32, train_per_class=10, val_per_class=5)
    first = train(spec(), "shapes", data, cfg(epochs=1), name="a", runs_dir=tmp_path)
    second = train(spec(), "shapes", data, cfg(epochs=1), name="b", runs_dir=tmp_path)
    metrics = [pd.read_csv(r.dir / "metrics.csv").drop(columns="seconds") for r in (first, second)]
    pd.testing.assert_frame_equal(*metrics)
    with pytest.raises(NvError, match="pass force to overwrite"):
        train(spec(), "shapes", data, cfg(epochs=1), name="a", runs_dir=tmp_path)


def test_freeze_backbone_trains_only_the_head() -> None:
    from nvcli.data.registry import load_data
    from nvcli.models.build import build_model
    from nvcli.training.engine import Trainer
    from nvcli.training.recipes import spec_for

    bundle = load_data("shapes", {"image_size": 32, "train_per_class": 10, "val_per_class": 5})
    model = build_model(spec_for(spec(freeze_backbone=True), bundle))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, bundle.train, bundle.val, cfg(epochs=1), None, device=torch.device("cpu")).fit()
    after = model.state_dict()
    backbone = [k for k in before if k.startswith("codes.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)  # weights and BN statistics
    assert not torch.equal(before["head.weight"], after["head.weight"])  # the head did train


def test_predict_runs_every_transform_in_one_pass(runs: dict[str, Path]) -> None:
    run = load_run(runs["neuroview"])
    model, val = run.model(), run.data().val
    calls = {"n": 0}

    def counting(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return x

    out, labels = predict(model, val, batch_size=60, transforms={"a": counting, "b": lambda x: x * 0})
    assert calls["n"] == 3  # 180 samples / 60 per batch: one call per batch
    assert out["a"].shape == out["b"].shape == (180, 9) and len(labels) == 180
