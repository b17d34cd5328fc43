"""`nv ablate` and the importance ranking: every ablation equals the head applied to the changed codes, files and
errors, multi-view runs, and `--rank importance` in weights, explain, compare and dissect-map."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nvcli.analysis.ablation import COLUMNS, SUMMARY_COLUMNS, AblationOptions, ablate
from nvcli.analysis.code_cache import split_codes
from nvcli.analysis.head import read_head
from nvcli.analysis.settings import Compute
from nvcli.data.views.solids import SolidsOptions
from nvcli.errors import NvError
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import Run, load_run
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import train


@pytest.fixture
def run(nv_run: Run) -> Run:
    """A private copy of the session's NeuroView run as training left it."""
    return nv_run


def _outcome(z: np.ndarray, weight: np.ndarray, bias: np.ndarray, c: int) -> tuple[float, float]:
    """Class c's accuracy and mean margin on codes z of its own samples, straight from the head."""
    logits = z @ weight.T + bias
    others = np.delete(logits, c, axis=1).max(1)
    return float((logits[:, c] > others).mean()), float((logits[:, c] - others).mean())


@pytest.mark.parametrize("mode", ["mean", "zero"])
def test_every_ablation_is_the_head_on_the_changed_codes(run: Run, mode: str) -> None:
    options = AblationOptions(classes=["red", "circle"], rank="importance", mode=mode, max_k=6, steps=3, draws=2)
    result = ablate(run, options, compute=Compute(device="cpu"))
    codes = split_codes(run, "val", device="cpu")
    z, labels = np.asarray(codes.z, dtype=np.float64), codes.labels
    head = read_head(run)
    mean, std = codes.mean_std()
    reference = mean if mode == "mean" else np.zeros_like(mean)
    assert list(result.frame.columns) == COLUMNS and set(result.frame["class"]) == {"red", "circle"}
    assert sorted(set(result.frame["k"])) == [0, 1, 2, 6]  # the 1% point (2 of 112 units) is on the grid
    for name in ("red", "circle"):
        c = run.classes.index(name)
        own = z[labels == c]
        part = result.frame[result.frame["class"] == name]
        order = np.argsort(-np.abs(head.weight[c] * std), kind="stable")
        expected = {("none", 0): _outcome(own, head.weight, head.bias, c)}
        for k in (1, 2, 6):
            removed, kept = own.copy(), own.copy()
            removed[:, order[:k]] = reference[order[:k]]
            kept[:, order[k:]] = reference[order[k:]]
            bottom = own.copy()
            bottom[:, order[::-1][:k]] = reference[order[::-1][:k]]
            expected |= {("top", k): _outcome(removed, head.weight, head.bias, c),
                         ("keep-top", k): _outcome(kept, head.weight, head.bias, c),
                         ("bottom", k): _outcome(bottom, head.weight, head.bias, c)}
        for (policy, k), (accuracy, margin) in expected.items():
            row = part[(part["policy"] == policy) & (part["k"] == k)].iloc[0]
            assert row["accuracy"] == pytest.approx(accuracy) and row["margin"] == pytest.approx(margin, abs=1e-9)
        random = part[part["policy"] == "random"]
        assert sorted(random["draw"].unique()) == [0, 1] and len(random) == 2 * 3
    summary = result.summary.set_index("class")
    assert list(result.summary.columns) == SUMMARY_COLUMNS and summary["k"].tolist() == [2, 2]
    for name in ("red", "circle"):  # the summary is the frame's k = 2 rows: top, and the mean of the random draws
        part = result.frame[(result.frame["class"] == name) & (result.frame["k"].isin([0, 2]))]
        for what in ("accuracy", "margin"):
            draws = part.loc[part["policy"] == "random", what]
            assert summary.loc[name, f"random_{what}"] == pytest.approx(draws.mean())
            assert summary.loc[name, f"top_{what}"] == pytest.approx(part.loc[part["policy"] == "top", what].item())
            assert summary.loc[name, what] == pytest.approx(part.loc[part["policy"] == "none", what].item())


def test_random_removal_takes_exactly_k_units_and_drop_ratios_follow() -> None:
    """With every unit a copy of one code and one weight, removing any k units is removing the top k: the random
    control must then equal the top-k rows for every k (a control that removed fewer units would not)."""
    from nvcli.analysis.ablation import ablation_frame, ablation_summary
    from nvcli.analysis.head import Head
    from nvcli.analysis.importance import CodeStats

    rng = np.random.default_rng(0)
    labels = np.arange(60) % 2
    z = np.repeat(rng.uniform(0, 1, (60, 1)) + labels[:, None], 20, axis=1)  # 20 identical units
    # label 0 ("low"): codes in [0, 1); label 1 ("high"): in [1, 2); the head splits them at 1.
    head = Head(np.vstack([np.full(20, -0.5), np.full(20, 0.5)]), np.array([10.0, -10.0]),
                pd.DataFrame({"unit": range(20), "layer": 0, "node": "x", "label": "x", "channel": range(20)}),
                ["low", "high"])
    stats = CodeStats(z.mean(0), z.std(0), "val", len(z))
    options = AblationOptions(max_k=10, steps=4, draws=3)
    frame = ablation_frame(z, labels, head, stats, options)
    for name in ("low", "high"):
        part = frame[frame["class"] == name]
        top = part[part["policy"] == "top"].set_index("k")["margin"]
        random = part[part["policy"] == "random"].groupby("k")["margin"]
        assert np.allclose(random.min().loc[top.index], top) and np.allclose(random.max().loc[top.index], top)
        assert top.is_monotonic_decreasing and top.iloc[-1] < top.iloc[0]  # removing more units costs more
    summary = ablation_summary(frame, options.summary_k(20)).set_index("class")
    assert summary["margin_drop_ratio"].tolist() == pytest.approx([1.0, 1.0])  # top = random, so a ratio of 1
    assert summary["accuracy_drop_ratio"].isna().all()  # no accuracy lost at the 1% point: no ratio to give


def test_ablate_command_files_table_and_cache(run: Run, nv, monkeypatch: pytest.MonkeyPatch) -> None:
    done = nv("ablate", "--run", run.dir, "--max-k", "8", "--draws", "3", "--format", "json")
    assert done.code == 0, done.err
    frame = pd.read_csv(run.dir / "ablation.csv")
    summary = pd.read_csv(run.dir / "ablation_summary.csv")
    assert list(frame.columns) == COLUMNS and frame["class"].nunique() == 9
    assert set(frame["policy"]) == {"none", "top", "bottom", "random", "keep-top"}
    assert frame["ranking"].unique().tolist() == ["weight"] and frame["k"].max() == 8
    assert (run.dir / "ablation.png").stat().st_size > 10_000
    printed = json.loads(done.out)
    assert [row["class"] for row in printed] == run.classes == summary["class"].tolist()
    entry = json.loads((run.dir / "results.json").read_text())["results"]["ablation"]
    assert entry["settings"]["rank"] == "weight" and entry["settings"]["mode"] == "mean"
    assert sorted(entry["files"]) == ["ablation.csv", "ablation.png", "ablation_summary.csv"]
    # The codes are cached: a second ablation never builds the network.
    monkeypatch.setattr(Run, "model", lambda *a, **k: pytest.fail("the cached codes should have been used"))
    again = nv("ablate", "--run", run.dir, "--rank", "importance", "--class", "red", "--no-plot", "--force",
               "--format", "csv")
    assert again.code == 0, again.err
    assert pd.read_csv(run.dir / "ablation.csv")["ranking"].unique().tolist() == ["importance"]
    assert not (run.dir / "ablation.png").exists()  # made with the replaced settings


def test_ablate_errors(shapes_runs: dict[str, Run], run: Run, nv) -> None:
    baseline = nv("ablate", "--run", shapes_runs["base"].dir)
    assert baseline.code == 2 and "needs a NeuroView run" in baseline.err and "Traceback" not in baseline.err
    for args, message in ((("--mode", "half"), "unknown --mode value 'half'; valid: mean, zero"),
                          (("--rank", "weights"), "Did you mean 'weight'?"),
                          (("--class", "circel"), "Did you mean 'circle'?"),
                          (("--fraction", "1.5"), "--fraction 1.5 is not valid; use a share of the units in (0, 1)")):
        result = nv("ablate", "--run", run.dir, *args)
        assert result.code == 2 and message in result.err, result.err
    assert not (run.dir / "ablation.csv").exists()
    nv("ablate", "--run", run.dir, "--max-k", "3", "--no-plot")
    refused = nv("ablate", "--run", run.dir, "--max-k", "4", "--no-plot")
    assert refused.code == 2 and "pass --force" in refused.err


def test_multiview_ablation_removes_whole_views(tmp_path: Path, nv) -> None:
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    mv = train(ModelChoice(arch="smallcnn"), "views", SolidsOptions(image_size=16, train_per_class=2, val_per_class=2,
                                                                   views=3), cfg, name="mv", runs_dir=tmp_path)
    done = nv("ablate", "--run", mv.dir, "--max-k", "4", "--draws", "2", "--no-plot")
    assert done.code == 0, done.err
    frame = pd.read_csv(mv.dir / "ablation.csv", keep_default_na=False)
    assert list(frame.columns) == COLUMNS + ["view"]
    head = read_head(mv)
    codes = split_codes(mv, "val", device="cpu")
    z, labels = np.asarray(codes.z, dtype=np.float64), codes.labels
    mean = codes.mean_std()[0]
    views = head.units["view"].to_numpy()
    for name in head.classes:
        c = head.classes.index(name)
        own = z[labels == c]
        for v in range(3):
            dropped, kept = own.copy(), own.copy()
            dropped[:, views == v] = mean[views == v]
            kept[:, views != v] = mean[views != v]
            rows = frame[(frame["class"] == name) & (frame["view"].astype(str) == str(v))]
            assert set(rows["policy"]) == {"drop-view", "keep-view"} and (rows["k"] == (views == v).sum()).all()
            for policy, codes_after in (("drop-view", dropped), ("keep-view", kept)):
                row = rows[rows["policy"] == policy].iloc[0]
                assert row["margin"] == pytest.approx(_outcome(codes_after, head.weight, head.bias, c)[1], abs=1e-9)


def test_importance_in_weights_explain_and_compare(run: Run, nv, tmp_path: Path) -> None:
    codes = split_codes(run, "val", device="cpu")
    mean, std = codes.mean_std()
    head = read_head(run)
    done = nv("weights", "--run", run.dir, "--class", "red", "--rank", "importance", "--format", "csv")
    assert done.code == 0, done.err
    frame = pd.read_csv(run.dir / "weights_red.csv")
    np.testing.assert_allclose(frame["std"], std, rtol=1e-12)
    np.testing.assert_allclose(frame["importance"], head.weight[0] * std, rtol=1e-12)
    assert frame.sort_values("rank")["importance"].is_monotonic_decreasing

    done = nv("explain", "--run", run.dir, "--index", "3", "--rank", "importance", "--class", "red", "--format", "csv")
    assert done.code == 0, done.err
    units = pd.read_csv(run.dir / "explain_index3.csv")
    classes = pd.read_csv(run.dir / "explain_index3_classes.csv")
    logit = classes.loc[classes["class"] == "red", "logit"].item()
    folded = head.bias[0] + head.weight[0] @ mean
    np.testing.assert_allclose(units["mean_z"], mean, rtol=1e-12)
    np.testing.assert_allclose(units["contribution"], head.weight[0] * (units["z"] - mean), rtol=1e-9, atol=1e-12)
    assert units["contribution"].sum() + folded == pytest.approx(logit, rel=1e-6, abs=1e-6)  # the logit, exactly
    with torch.no_grad():
        x = run.data().val[3][0]
        assert run.model()(x[None])[0, 0].item() == pytest.approx(logit, rel=1e-5)

    other = load_run(shutil.copytree(run.dir, tmp_path / "other"))
    done = nv("compare", run.dir, other.dir, "--rank", "importance", "--out", tmp_path / "cmp", "--format", "csv")
    assert done.code == 0, done.err
    wide = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    np.testing.assert_allclose(wide["unit_share"], wide["units"] / wide["units"].sum())
    layer_of = head.units["layer"].to_numpy()
    positive = np.clip(head.weight * std, 0, None)
    expected = [positive[:, layer_of == layer].sum() / positive.sum() for layer in sorted(set(layer_of))]
    np.testing.assert_allclose(wide["pos_share_a"], expected, rtol=1e-9)


def test_concept_map_aggregates_by_balanced_mean_or_sum() -> None:
    from nvcli.analysis.dissect.concepts import DEFAULT_AGGREGATE, concepts_classes

    units = pd.DataFrame({"unit": range(4), "interpretable": [True, True, True, False],
                          "concept": ["white", "white", "circle", "red"],
                          "category": ["color", "color", "object", "color"]})
    weight = np.array([[1.0, 1.0, 1.5, 9.0]])
    summed = concepts_classes(weight, units, ["circle"], "sum")
    averaged = concepts_classes(weight, units, ["circle"], "mean")
    balanced = concepts_classes(weight, units, ["circle"], "balanced")
    assert summed.iloc[0]["concept"] == "white" and summed.iloc[0]["weight"] == 2.0  # two units outweigh one
    assert averaged.iloc[0]["concept"] == "circle" and averaged.iloc[0]["weight"] == 1.5
    assert averaged.set_index("concept")["units"].to_dict() == {"circle": 1, "white": 2}
    # sum / sqrt(units): white 2 / sqrt(2) = 1.414 against circle 1.5 / 1
    assert balanced.set_index("concept")["weight"].round(3).to_dict() == {"circle": 1.5, "white": 1.414}
    assert DEFAULT_AGGREGATE == "balanced"
    noise = np.random.default_rng(0).normal(size=(1000, 4))  # "concepts" of 1 and 3 units, pure noise
    noise_units = pd.DataFrame({"unit": range(4), "interpretable": True, "concept": ["a", "b", "b", "b"],
                                "category": "color"})
    spread = {how: concepts_classes(noise, noise_units, [str(i) for i in range(1000)], how)
              .groupby("concept")["weight"].std() for how in ("balanced", "mean", "sum")}
    assert abs(spread["balanced"]["a"] / spread["balanced"]["b"] - 1) < 0.1  # one spread whatever the count
    assert spread["mean"]["a"] > 1.5 * spread["mean"]["b"] and spread["sum"]["b"] > 1.5 * spread["sum"]["a"]
    with pytest.raises(NvError, match=r"unknown concept aggregation \(aggregate\) 'max'"):
        concepts_classes(weight, units, ["circle"], "max")
