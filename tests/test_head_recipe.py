"""The head recipe: where the head starts (head_init.pt), its own optimizer settings, the L1 proximal step,
old configs read with the meaning they had, and nv weights' correlation with the initial head."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nvcli.data.shapes import COLOUR_CLASSES, DROP_SHARE, ShapesOptions
from nvcli.data.views.solids import SolidsOptions
from nvcli.errors import NvError
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import CONFIG_FORMAT, load_run
from nvcli.training.config import TrainConfig
from nvcli.training.engine import EpochRow, param_groups, soft_threshold
from nvcli.training.recipes import resume, train

CHOICE = ModelChoice(arch="smallcnn", code="soft", reduce="max")
TINY = ShapesOptions(image_size=32, train_per_class=10, val_per_class=5)
UNITS = 112  # smallcnn: 16 + 32 + 64 channels


def cfg(**overrides: object) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 32, "lr": 3e-3, "device": "cpu", **overrides})


def head_init(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "head_init.pt", weights_only=True)


def test_head_init_is_kept_scaled_and_recorded(tmp_path: Path) -> None:
    runs = {name: train(CHOICE, "shapes", TINY, cfg(head_init_scale=scale), name=name, runs_dir=tmp_path)
            for name, scale in (("default", 1.0), ("small", 0.01), ("zero", 0.0))}
    heads = {name: head_init(run.dir) for name, run in runs.items()}
    for head in heads.values():
        assert set(head) == {"weight", "bias"} and head["weight"].shape == (9, UNITS)
    default = heads["default"]["weight"]
    assert 0 < default.abs().max() <= UNITS ** -0.5  # PyTorch's nn.Linear init: U(-1/sqrt(in), 1/sqrt(in))
    # Same seed, same default init: a scaled head is exactly that init times the scale.
    assert torch.equal(heads["small"]["weight"], default * 0.01)
    assert torch.equal(heads["small"]["bias"], heads["default"]["bias"] * 0.01)
    assert not heads["zero"]["weight"].any() and not heads["zero"]["bias"].any()
    assert torch.load(runs["zero"].dir / "model.pt", weights_only=True)["head.weight"].abs().sum() > 0  # it learns
    train_config = json.loads((runs["small"].dir / "config.json").read_text())["train"]
    assert train_config["head_init_scale"] == 0.01 and train_config["head_l1"] == 0.0
    assert train_config["head_lr_scale"] == 1.0 and train_config["head_weight_decay"] is None


def test_the_head_gets_its_own_optimizer_group_only_when_its_settings_differ() -> None:
    from nvcli.data.registry import load_data
    from nvcli.models.build import build_model
    from nvcli.training.recipes import spec_for

    model = build_model(spec_for(CHOICE, load_data("shapes", TINY)))
    every = [p for p in model.parameters()]
    (same,) = param_groups(model, cfg(head_weight_decay=TrainConfig.weight_decay))
    assert same["params"] == every and same["weight_decay"] == TrainConfig.weight_decay
    body, head = param_groups(model, cfg(lr=1e-3, head_lr_scale=5, head_weight_decay=0.5))
    assert [id(p) for p in head["params"]] == [id(model.head.weight), id(model.head.bias)]
    assert head["lr"] == pytest.approx(5e-3) and head["weight_decay"] == 0.5
    assert body["lr"] == pytest.approx(1e-3) and body["weight_decay"] == TrainConfig.weight_decay
    assert len(body["params"]) + len(head["params"]) == len(every)
    (only_head,) = param_groups(build_model(spec_for(ModelChoice(arch="smallcnn", freeze_backbone=True),
                                                     load_data("shapes", TINY))), cfg(head_lr_scale=2))
    assert only_head["lr"] == pytest.approx(6e-3)  # a frozen backbone leaves the head's group alone


def test_the_default_head_lr_follows_the_head_width_and_config_json_records_it(tmp_path: Path) -> None:
    assert TrainConfig().head_lr_scale is None  # the default: resolved from the width when the model exists
    assert [TrainConfig().head_lr_scale_for(n) for n in (112, 1152, 2304, 22720)] == [1.0, 1.0, 0.5, 1152 / 22720]
    assert TrainConfig(head_lr_scale=1.0).head_lr_scale_for(22720) == 1.0  # a value the user set is kept
    # 12 views x 112 smallcnn units = 1344 head inputs: the head trains at lr * 1152 / 1344, and the run says so.
    views = SolidsOptions(image_size=16, train_per_class=1, val_per_class=1)
    run = train(ModelChoice(arch="smallcnn", reduce="mean"), "views", views, cfg(), name="mv", runs_dir=tmp_path)
    assert run.config.units == 1344
    assert run.config.train.head_lr_scale == pytest.approx(1152 / 1344)
    narrow = train(CHOICE, "shapes", TINY, cfg(), name="n", runs_dir=tmp_path)
    assert json.loads((narrow.dir / "config.json").read_text())["train"]["head_lr_scale"] == 1.0


def test_soft_threshold_is_the_proximal_step_of_l1() -> None:
    w = torch.tensor([-3.0, -0.5, 0.0, 0.2, 1.0, 2.0])
    soft_threshold(w, 1.0)
    assert w.tolist() == [-2.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    # It minimises 0.5 (x - v)^2 + t |x| entry by entry: no point of a fine grid does better.
    v, t = torch.randn(50, dtype=torch.float64), 0.3
    x = v.clone()
    soft_threshold(x, t)
    grid = torch.linspace(-4, 4, 8001, dtype=torch.float64)[:, None]
    best = (0.5 * (grid - v) ** 2 + t * grid.abs()).min(0).values
    assert torch.all(0.5 * (x - v) ** 2 + t * x.abs() <= best + 1e-12)


def test_head_l1_zeroes_weights_exactly_but_not_the_bias(tmp_path: Path) -> None:
    data = ShapesOptions(image_size=32, train_per_class=20, val_per_class=5)
    # 12 steps at head lr 0.03 shrink every weight by 0.5 * sum(lr) > 0.1: more than the whole random start
    # (|W0| <= 1/sqrt(112) = 0.094), so only weights that the loss keeps pushing outwards survive.
    recipe = cfg(epochs=2, head_lr_scale=10)
    plain = train(CHOICE, "shapes", data, recipe, name="plain", runs_dir=tmp_path)
    sparse = train(CHOICE, "shapes", data, replace(recipe, head_l1=0.5), name="l1", runs_dir=tmp_path)
    w_plain, w_sparse = (torch.load(r.dir / "model.pt", weights_only=True) for r in (plain, sparse))
    assert (w_plain["head.weight"] == 0).sum() == 0
    assert (w_sparse["head.weight"] == 0).float().mean() > 0.5  # exact zeros
    assert (w_sparse["head.bias"] != 0).all()  # the bias is not penalised
    # The colour classes, whose cue is learned first, keep units after two epochs.
    assert (w_sparse["head.weight"][:len(COLOUR_CLASSES)] != 0).any(dim=1).all()


def test_resume_with_a_head_group_and_l1_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    recipe = cfg(epochs=2, head_init_scale=0.3, head_lr_scale=2, head_weight_decay=0.1, head_l1=0.2)
    whole = train(CHOICE, "shapes", TINY, recipe, name="whole", runs_dir=tmp_path)

    def interrupt(row: EpochRow) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(CHOICE, "shapes", TINY, recipe, name="cut", runs_dir=tmp_path, on_epoch=interrupt)
    resumed = resume(load_run(tmp_path / "cut"))
    a, b = (torch.load(r.dir / "model.pt", weights_only=True) for r in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(head_init(whole.dir)["weight"], head_init(resumed.dir)["weight"])


def test_head_warmup_holds_the_backbone_still_then_trains_it() -> None:
    from nvcli.data.registry import load_data
    from nvcli.models.build import build_model
    from nvcli.training.engine import Trainer
    from nvcli.training.recipes import spec_for

    bundle = load_data("shapes", TINY)
    model = build_model(spec_for(ModelChoice(arch="smallcnn", reduce="mean"), bundle))
    start = {k: v.clone() for k, v in model.named_parameters()}
    trainer = Trainer(model, bundle.train, bundle.val, cfg(epochs=2, head_warmup=1), None, device=torch.device("cpu"))
    trainer.fit(stop_after=1)
    moved = {k for k, v in model.named_parameters() if not torch.equal(v, start[k])}
    assert moved == {"head.weight", "head.bias"}  # the backbone waits: no step, no weight decay
    trainer.fit()
    assert any(not torch.equal(v, start[k]) for k, v in model.named_parameters() if k.startswith("codes."))


@pytest.mark.parametrize("field,value", [("head_init_scale", -1.0), ("head_lr_scale", 0.0),
                                         ("head_lr_scale", float("inf")), ("head_weight_decay", -0.1),
                                         ("head_l1", -1e-3), ("head_l1", float("nan")), ("head_warmup", -1),
                                         ("head_warmup", 10)])
def test_head_settings_are_validated(field: str, value: float) -> None:
    with pytest.raises(NvError, match=f"head .* {value} is out of range"):
        TrainConfig(**{field: value})


def test_bad_head_flags_are_one_line_errors(nv, tmp_path: Path) -> None:
    result = nv("train", "--head-l1", "-1", "--runs-dir", tmp_path)
    assert result.code == 2 and "head L1 penalty -1.0 is out of range; use a number >= 0" in result.err
    assert "Traceback" not in result.err and not any(tmp_path.iterdir())


def _rewrite_as(run_dir: Path, fmt: int) -> dict:
    """config.json as an older nv wrote it: no head settings, no shapes world (and for format 1, model 'extra')."""
    config = json.loads((run_dir / "config.json").read_text())
    for key in ("head_init_scale", "head_lr_scale", "head_weight_decay", "head_l1", "head_warmup"):
        del config["train"][key]
    del config["data"]["options"]["world"]
    if fmt == 1:
        del config["train"]["threads"]
        config["model"]["extra"] = {}
    (run_dir / "config.json").write_text(json.dumps({**config, "format": fmt}))
    return config


@pytest.mark.parametrize("fmt", [1, 2])
def test_older_configs_read_with_the_recipe_and_world_they_had(tmp_path: Path, fmt: int) -> None:
    run = train(CHOICE, "shapes", TINY, cfg(), name="old", runs_dir=tmp_path)
    assert run.config.format == CONFIG_FORMAT == 3 and run.config.data.options["world"] == 2
    _rewrite_as(run.dir, fmt)
    old = load_run(run.dir)
    assert old.config.format == CONFIG_FORMAT
    recipe = old.config.train  # complete: every key present again
    assert (recipe.head_init_scale, recipe.head_lr_scale, recipe.head_weight_decay, recipe.head_l1,
            recipe.head_warmup) == (1, 1, None, 0, 0)
    assert old.config.data.options["world"] == 1
    # world 1: validation images lost channels too (the split renders with these settings)
    assert old.data().val.renderer.keywords["drop_share"] == DROP_SHARE
    assert run.data().val.renderer.keywords["drop_share"] == 0.0


def test_weights_report_how_far_each_class_moved_from_the_initial_head(nv, tmp_path: Path) -> None:
    # An untrained (converted) run: its weights are its initial head, correlation exactly 1 for every class.
    assert nv("convert", "--arch", "smallcnn", "-n", "3", "--image-size", "32", "--runs-dir", tmp_path,
              "--name", "c").code == 0
    converted = nv("weights", "--all", "--run", tmp_path / "c", "-f", "csv", "--no-plot")
    assert converted.code == 0, converted.err
    assert pd.read_csv(pd.io.common.StringIO(converted.out))["init_corr"].round(6).tolist() == [1.0, 1.0, 1.0]
    warnings = [line for line in converted.err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "0 (1.00), 1 (1.00), 2 (1.00)" in warnings[0]

    trained = train(CHOICE, "shapes", TINY, cfg(epochs=2), name="t", runs_dir=tmp_path)
    out = nv("weights", "--all", "--run", trained.dir, "-f", "csv", "--no-plot")
    state, init = torch.load(trained.dir / "model.pt", weights_only=True), head_init(trained.dir)
    expected = [np.corrcoef(w, w0)[0, 1] for w, w0 in zip(state["head.weight"].double().numpy(),
                                                         init["weight"].double().numpy())]
    assert np.allclose(pd.read_csv(pd.io.common.StringIO(out.out))["init_corr"], expected)
    named = [c for c, r in zip(trained.classes, expected) if r > 0.5]
    assert [line.startswith("warning") for line in out.err.splitlines()].count(True) == (1 if named else 0)

    zero = train(CHOICE, "shapes", TINY, cfg(head_init_scale=0.0), name="z", runs_dir=tmp_path)
    result = nv("weights", "--all", "--run", zero.dir, "-f", "csv", "--no-plot")
    assert result.code == 0 and "init_corr" not in result.out and "warning" not in result.err

    # Another run's start (3 classes, not 9) is refused in one line, not silently skipped.
    (trained.dir / "head_init.pt").write_bytes((tmp_path / "c" / "head_init.pt").read_bytes())
    result = nv("weights", "--all", "--run", trained.dir, "-f", "csv", "--no-plot")
    assert result.code == 2 and "Traceback" not in result.err
    assert "'head_init.pt' holds a weight of shape (3, " in result.err and "not this run's initial head" in result.err
