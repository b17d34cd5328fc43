"""nv weights, perturb, explain and compare, against what the shapes data's mechanisms and the head's algebra imply."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import save_head
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex
from PIL import Image

from nvcli.analysis.compare import check_comparable, compare, output_dir
from nvcli.analysis.evaluate import evaluate
from nvcli.analysis.explain import explain_run, load_image
from nvcli.analysis.head import Head, read_head
from nvcli.analysis.perturb import perturb
from nvcli.analysis.settings import Compute, DissectOptions
from nvcli.analysis.weights import class_overview, class_similarity, class_weights, layer_summary
from nvcli.analysis.where import class_where, where, where_run
from nvcli.data.shapes import ShapesOptions
from nvcli.errors import NvError
from nvcli.models.archs import SmallCNN
from nvcli.models.multiview import MultiViewNeuroView
from nvcli.models.spec import ModelChoice
from nvcli.plots.perturb import examples_figure
from nvcli.plots.weights import weights_figure, weights_grid
from nvcli.runs.files import class_stems, file_stem
from nvcli.runs.run import Run, load_run
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import train


def _train(runs_dir: Path, name: str, *, epochs: int, per_class: int, baseline: bool = False) -> Run:
    data = ShapesOptions(image_size=32, train_per_class=per_class, val_per_class=20)
    cfg = TrainConfig(epochs=epochs, lr=3e-3, batch_size=32, device="cpu")
    return train(ModelChoice(arch="smallcnn", baseline=baseline), "shapes", data, cfg, name=name, runs_dir=runs_dir)


@pytest.fixture(scope="module")
def runs(shapes_runs: dict[str, Run], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """A NeuroView run that has learnt the colour classes, a barely trained one, and a baseline."""
    return {**shapes_runs, "nv2": _train(tmp_path_factory.mktemp("runs"), "nv2", epochs=1, per_class=10)}


def state(run: Run) -> dict[str, torch.Tensor]:
    return torch.load(run.dir / "model.pt", map_location="cpu", weights_only=True)


# --- weights ---------------------------------------------------------------------------------------

def test_weights_csv_is_the_head_row(runs, nv):
    run = runs["nv"]
    code, out, _ = nv("weights", "--class", "green", "--plot", "--run", run.dir, "-f", "csv")
    assert code == 0
    frame = pd.read_csv(run.dir / "weights_green.csv")
    w = state(run)["head.weight"][run.classes.index("green")].double().numpy()
    assert list(frame.columns) == ["unit", "layer", "node", "label", "channel", "weight", "rank"]
    assert np.array_equal(frame["weight"].to_numpy(), w)  # exact: float32 values round-trip through the CSV
    assert frame["unit"].tolist() == list(range(len(w)))
    assert frame.loc[frame["rank"] == 1, "weight"].item() == w.max()
    assert sorted(frame["rank"]) == list(range(1, len(w) + 1))
    assert (run.dir / "weights_green.png").is_file() and (run.dir / "class_similarity.png").is_file()
    printed = pd.read_csv(io.StringIO(out))
    negative = printed[printed["weight"] < 0]
    assert printed["weight"].iloc[0] == w.max() and negative["weight"].iloc[0] == w.min()  # most negative first
    assert len(printed) == 2 * 10 and negative["rank"].is_monotonic_decreasing


def test_weights_layers_and_similarity_follow_from_the_head(runs, nv):
    run = runs["nv"]
    code, out, _ = nv("weights", "--all", "--run", run.dir, "--top", "5", "-f", "json", "--force")
    assert code == 0 and len(json.loads(out)) == len(run.classes)
    for name in run.classes:
        assert (run.dir / f"weights_{name}.csv").is_file()
    assert (run.dir / "weights_all.png").is_file()
    W = state(run)["head.weight"].double().numpy()
    layers = pd.read_csv(run.dir / "weights_layers.csv")
    units = pd.read_csv(run.dir / "units.csv")
    for k, name in enumerate(run.classes):
        part = layers[layers["class"] == name]
        for row in part.itertuples():
            w = W[k, units["layer"] == row.layer]
            assert row.pos_weight == pytest.approx(w[w > 0].sum()) and row.neg_weight == pytest.approx(w[w < 0].sum())
        assert part["pos_share"].sum() == pytest.approx(1) and part["neg_share"].sum() == pytest.approx(1)
        top5 = np.argsort(-np.abs(W[k]))[:5]
        expected = [np.isin(top5, units.index[units["layer"] == layer]).sum() / 5 for layer in part["layer"]]
        assert part["top_share"].to_numpy() == pytest.approx(expected)
    overall = layers[layers["class"] == "overall"]
    assert overall["pos_weight"].sum() == pytest.approx(W[W > 0].sum())
    summary = pd.DataFrame(json.loads(out))
    assert summary["top_weight"].tolist() == pytest.approx([W[k, np.argmax(np.abs(W[k]))] for k in range(len(W))])

    sim = pd.read_csv(run.dir / "class_similarity.csv")
    assert sim["class"].tolist() == run.classes
    values = sim.drop(columns="class").to_numpy()
    assert np.allclose(np.diag(values), 1) and np.allclose(values, values.T)
    unit = W / np.linalg.norm(W, axis=1, keepdims=True)
    assert np.allclose(values, unit @ unit.T)


def test_a_class_resting_on_negative_weights_names_its_strongest_unit():
    units = pd.DataFrame({"unit": range(4), "layer": ["conv1", "conv1", "conv2", "conv2"],
                          "node": ["conv1", "conv1", "conv2", "conv2"], "channel": range(4)})
    head = Head(weight=np.array([[0.0, 0.0, 2.0, 0.0], [0.0, -3.0, 0.0, 0.0]]), bias=np.zeros(2), units=units,
                classes=["on", "off"], name="sparse1")
    overview = class_overview(head, class_similarity(head))
    assert overview["top_unit"].tolist() == [2, 1] and overview["top_weight"].tolist() == [2.0, -3.0]
    assert overview["top_layer"].tolist() == ["conv2", "conv1"]


def test_weights_plot_has_one_colour_per_layer(runs):
    head = read_head(runs["nv"])
    fig = weights_figure(class_weights(head, "red"), "red")
    lines = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    layers = head.units.groupby("layer")["unit"].agg(["min", "max"])
    assert len(lines) == len(layers)
    colours = []
    for collection, (lo, hi) in zip(lines, layers.itertuples(index=False)):
        assert len({to_hex(c) for c in collection.get_colors()}) == 1
        colours.append(to_hex(collection.get_colors()[0]))
        xs = [seg[0][0] for seg in collection.get_segments()]
        assert min(xs) == lo and max(xs) == hi  # each layer's lines span exactly its units
    assert len(set(colours)) == len(layers)
    grid = weights_grid(head.weight, head.units, head.classes, "all")
    assert sum(ax.get_visible() for ax in grid.axes) == len(head.classes)


def test_multiview_head_keeps_views_and_colours_by_layer():
    model = MultiViewNeuroView(lambda: SmallCNN(3), 3, views=2, input_shape=(3, 16, 16))
    head = Head.from_tensors(model.head.weight, model.head.bias, model.units(), ["a", "b", "c"])
    frame = class_weights(head, "b")
    assert list(frame.columns) == ["unit", "view", "layer", "node", "label", "channel", "weight", "rank"]
    summary = layer_summary(head)
    assert len(summary[summary["class"] == "a"]) == 2 * 3 and summary.groupby("class")["units"].sum().eq(224).all()
    lines = [c for c in weights_figure(frame, "b").axes[0].collections if isinstance(c, LineCollection)]
    assert len(lines) == 6 and len({to_hex(c.get_colors()[0]) for c in lines}) == 3  # colour = layer, not view


def test_unknown_class_is_a_one_line_error_with_a_suggestion(runs):
    result = subprocess.run([sys.executable, "-m", "nvcli", "weights", "--class", "reed", "--run", str(runs["nv"].dir)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    used, error = result.stderr.strip().splitlines()  # which run was read, then the one-line error
    assert used == f"run: {runs['nv'].dir}" and "Traceback" not in result.stderr
    assert "'reed'" in result.stderr and "Did you mean 'red'?" in result.stderr


def test_weights_refuses_baseline_and_missing_choice(runs, nv):
    code, _, err = nv("weights", "--class", "red", "--run", runs["base"].dir)
    assert code == 2 and "NeuroView run" in err
    code, _, err = nv("weights", "--run", runs["nv"].dir)
    assert code == 2 and "--class" in err and "--all" in err


def test_file_stems_are_safe_and_distinct():
    assert file_stem("baseball field") == "baseball_field" and file_stem("a/b") == "a_b" and file_stem("..") == "_"
    assert class_stems(["a b", "a_b", "c"]) == {"a b": "a_b_0", "a_b": "a_b_1", "c": "c"}


# --- perturb ---------------------------------------------------------------------------------------

def test_zeroing_a_colour_channel_removes_exactly_its_colour_class(runs, nv):
    run = runs["nv"]
    code, _, _ = nv("perturb", "--run", run.dir, "--example", "3")
    assert code == 0
    frame = pd.read_csv(run.dir / "perturb.csv")
    assert list(frame.columns) == ["head", "class", "condition", "support", "correct", "accuracy", "change"]
    acc = frame.pivot(index="class", columns="condition", values="accuracy")
    for colour in ("red", "green", "blue"):
        assert acc.at[colour, "none"] >= 0.9
        assert acc.at[colour, colour] <= 0.2  # the object turns as dark as the background
        for other in {"red", "green", "blue"} - {colour}:
            assert acc.at[colour, other] >= 0.8  # still the most saturated channel
    # Colour carries no information about shape classes (half of them are trained with a channel
    # removed), so removing red costs them far less than it costs the red class.
    shapes = ["circle", "square", "triangle"]
    shape_drop = (acc.loc[shapes, "none"] - acc.loc[shapes, "red"]).mean()
    red_drop = acc.at["red", "none"] - acc.at["red", "red"]
    assert red_drop >= 0.8 and shape_drop <= red_drop - 0.4
    overall = frame[frame["class"] == "overall"].set_index("condition")
    assert (overall["support"] == 20 * len(run.classes)).all()
    assert np.allclose(overall["accuracy"], overall["correct"] / overall["support"])
    assert (run.dir / "perturb.png").is_file() and (run.dir / "perturb_examples.png").is_file()


def test_perturb_reads_the_data_once(runs, monkeypatch):
    run = runs["nv"]
    bundle = run.data()
    reads = []
    original = type(bundle.val).__getitem__
    monkeypatch.setattr(type(bundle.val), "__getitem__", lambda self, i: reads.append(i) or original(self, i))
    monkeypatch.setattr(Run, "data", lambda self, **kw: bundle)
    result = perturb(run, ["red", "green", "blue"], compute=Compute(device="cpu", batch_size=64))
    assert len(reads) == len(bundle.val) + 1  # one pass for all four conditions, plus the example sample
    assert set(result.accuracy["condition"]) == {"none", "red", "green", "blue"}


def test_examples_show_the_channel_zeroed(runs):
    x, _ = runs["nv"].data().val[0]
    fig = examples_figure(x, ["none", "red", "green", "blue"], "example")
    shown = [ax.images[0].get_array() for ax in fig.axes]
    assert np.allclose(shown[0], x.permute(1, 2, 0).numpy())
    for channel, image in enumerate(shown[1:]):
        assert np.all(image[..., channel] == 0)
        others = [c for c in range(3) if c != channel]
        assert np.allclose(image[..., others], x.permute(1, 2, 0).numpy()[..., others])


def test_perturb_side_by_side_with_a_baseline(runs, nv):
    code, out, _ = nv("perturb", "--channel", "green", "--run", runs["nv"].dir,
                      "--run", runs["base"].dir, "-f", "csv", "--force")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    assert list(table.columns) == ["run", "network", "head", "class", "none", "green"]
    assert set(table["network"]) == {"NeuroView smallcnn", "smallcnn"}
    assert len(table) == 2 * (len(runs["nv"].classes) + 1)
    assert (runs["base"].dir / "perturb.csv").is_file()


def test_perturb_refuses_sound_data_and_bad_channel(runs, nv):
    run = runs["nv"]
    model = replace(run.config.model, input_shape=(1, 32, 32), mean=(0.0,), std=(1.0,))
    sound = Run(run.dir, replace(run.config, model=model, data=replace(run.config.data, kind="sound")))
    with pytest.raises(NvError, match="1 channel.*choose an image run"):
        perturb(sound, compute=Compute(device="cpu"))
    code, _, err = nv("perturb", "--channel", "gren", "--run", runs["nv"].dir)
    assert code == 2 and "Did you mean 'green'?" in err


# --- explain ---------------------------------------------------------------------------------------

def test_contributions_plus_bias_are_the_logit(runs, nv):
    run = runs["nv"]
    code, out, _ = nv("explain", "--index", "7", "--run", run.dir, "--top", "3", "-f", "json")
    assert code == 0 and len(json.loads(out)) <= 6
    x, label = run.data().val[7]
    with torch.no_grad():
        logits = run.model()(x.unsqueeze(0))[0].double()
    frame = pd.read_csv(run.dir / "explain_index7.csv")
    assert list(frame.columns) == ["unit", "layer", "node", "label", "channel", "z", "weight", "contribution", "rank"]
    c = int(logits.argmax())
    bias = state(run)["head.bias"][c].item()
    assert frame["contribution"].sum() + bias == pytest.approx(logits[c].item(), abs=1e-5)
    assert np.array_equal(frame["weight"].to_numpy(), state(run)["head.weight"][c].double().numpy())
    assert np.allclose(frame["contribution"], frame["weight"] * frame["z"])
    assert ((frame["z"] > 0) & (frame["z"] < 1)).all()  # soft codes are sigmoids
    layers = pd.read_csv(run.dir / "explain_index7_layers.csv")
    assert layers["contribution"].sum() == pytest.approx(frame["contribution"].sum())
    classes = pd.read_csv(run.dir / "explain_index7_classes.csv")
    assert np.allclose(classes["logit"], logits.numpy(), atol=1e-6) and classes["probability"].sum() == pytest.approx(1)
    assert (run.dir / "explain_index7.png").is_file()


def test_explain_an_image_file_like_the_validation_sample(runs, tmp_path):
    run = runs["nv"]
    x, label = run.data().val[0]
    path = tmp_path / "sample 0.png"
    Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    from_file = explain_run(run, path=path, target="blue")
    from_index = explain_run(run, index=0, target="blue")
    assert np.allclose(from_file.units["contribution"], from_index.units["contribution"], atol=1e-6)
    assert from_file.summary.class_ == "blue" and from_index.summary.true == run.classes[label]
    s = from_file.summary
    assert s.contributions + s.bias == pytest.approx(s.logit, abs=1e-5)


def test_a_red_object_is_explained_as_red(runs):
    run = runs["nv"]
    val = run.data().val
    index = next(i for i in range(len(val)) if run.classes[val[i][1]] == "red")
    result = explain_run(run, index=index)
    assert result.summary.predicted == "red" and result.summary.true == "red"


def test_colour_decisions_rest_on_units_of_their_colour(runs):
    """Ground truth: a colour class is its colour, so the units that push its logit up are, far more often than
    chance, units the dissection labels with that colour (measured: 2.1-2.3x their share of the units)."""
    from nvcli.analysis.dissect.concepts import dissect_run

    run = runs["nv"]
    dissected = dissect_run(run, options=DissectOptions(probe_count=200), compute=Compute(device="cpu"))
    concept = dissected.units.set_index("unit")["concept"]
    val = run.data().val
    for name in ("red", "green", "blue"):
        own = concept == name
        indices = [i for i in range(len(val)) if run.classes[val[i][1]] == name][:5]
        shares = []
        for i in indices:
            units = explain_run(run, index=i, target=name).units.set_index("unit")["contribution"].clip(lower=0)
            shares.append(units[own.reindex(units.index, fill_value=False)].sum() / units.sum())
        assert np.mean(shares) >= 1.5 * own.mean(), (name, shares, own.mean())


def test_explain_errors(runs, tmp_path, nv):
    code, _, err = nv("explain", "--index", "999", "--run", runs["nv"].dir)
    assert code == 2 and "0..179" in err
    code, _, err = nv("explain", "--index", "0", "--run", runs["base"].dir)
    assert code == 2 and "NeuroView run" in err
    code, _, err = nv("explain", "--index", "0", "--class", "sqaure", "--run", runs["nv"].dir)
    assert code == 2 and "Did you mean 'square'?" in err
    code, _, err = nv("explain", "--run", runs["nv"].dir)
    assert code == 2 and "exactly one of --index (a validation sample) or --input (an image file)" in err
    run = runs["nv"]
    sound = Run(run.dir, replace(run.config, data=replace(run.config.data, kind="sound")))
    with pytest.raises(NvError, match="path reads an RGB image.*use index instead") as refused:  # Python's names
        load_image(tmp_path / "any.png", sound)
    assert refused.value.params == ("path", "index")


def _identity_holds(rows: list[dict], logits: torch.Tensor, bias: torch.Tensor, classes: list[str]) -> None:
    """`nv explain --where -f json` rows against the model's own logits and the head's bias."""
    (row,) = rows
    c = classes.index(row["class"])
    assert row["logit"] == pytest.approx(logits[c].item(), abs=1e-6) and row["bias"] == pytest.approx(bias[c].item())
    assert abs(row["logit"] - row["bias"] - row["map_sum"]) <= 1e-4 * max(1, abs(row["logit"]))


def _where_sample(nv, run: Run, index: int) -> tuple[dict, torch.Tensor]:
    """`nv explain --where --index INDEX -f json` on a dense head: its row, checked, and the model's logits."""
    code, out, err = nv("explain", "--where", "--index", index, "--run", run.dir, "-f", "json")
    assert code == 0, err
    x, _ = run.data().val[index]
    with torch.no_grad():
        logits = run.model()(x.unsqueeze(0))[0]
    _identity_holds(json.loads(out), logits, state(run)["head.bias"], run.classes)
    return json.loads(out)[0], logits


def test_where_maps_add_up_to_the_logit_and_are_recorded(nv_run, nv):
    run = nv_run
    row, logits = _where_sample(nv, run, 7)
    assert row["class"] == run.classes[int(logits.argmax())]
    maps = np.load(run.dir / "where_index7.npy")
    assert maps.shape == (3, 32, 32) and maps.dtype == np.float64
    assert maps.sum() == pytest.approx(row["map_sum"])
    assert (run.dir / "where_index7.png").is_file() and (run.dir / "explain_index7.csv").is_file()
    recorded = json.loads((run.dir / "results.json").read_text())["results"]
    assert recorded["where/index7"]["files"] == ["where_index7.npy", "where_index7.png"]
    assert "explain/index7" in recorded
    code, out, err = nv("explain", "--where", "--index", "7", "--run", run.dir, "--class", "red")
    assert code == 2 and "--force" in err  # another class replaces nothing silently
    assert np.array_equal(np.load(run.dir / "where_index7.npy"), maps)


def test_where_for_an_image_file_and_a_sparse_head(nv_run, nv, tmp_path):
    run = nv_run
    x, _ = run.data().val[0]
    path = tmp_path / "shape.png"
    Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    generator = torch.Generator().manual_seed(0)
    weight = state(run)["head.weight"] * (torch.rand(state(run)["head.weight"].shape, generator=generator) < 0.2)
    bias = torch.randn(len(run.classes), generator=generator)
    save_head(run.dir, "rand", weight, bias)
    code, out, err = nv("explain", "--where", "--input", path, "--class", "square", "--head", "rand", "--run",
                        run.dir, "-f", "json", "--no-plot")
    assert code == 0, err
    image = load_image(path, run)
    with torch.no_grad():
        logits = run.model().features(image.unsqueeze(0))[0] @ weight.T + bias
    _identity_holds(json.loads(out), logits, bias, run.classes)
    assert json.loads(out)[0]["class"] == "square"
    assert np.load(run.dir / "where_shape@rand.npy").shape == (3, 32, 32)
    assert not (run.dir / "where_shape@rand.png").exists()  # --no-plot


def test_where_of_a_class_is_the_mean_of_its_images_maps(nv_run, nv):
    run = nv_run
    code, out, err = nv("explain", "--where", "--class", "triangle", "--run", run.dir, "-f", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    val = run.data().val
    chosen = [i for i in range(len(val)) if run.classes[val[i][1]] == "triangle"]
    x = torch.stack([val[i][0] for i in chosen])
    c = run.classes.index("triangle")
    with torch.no_grad():
        logits = run.model()(x)[:, c].double()
    assert row["images"] == len(chosen) == 20 and row["logit"] == pytest.approx(logits.mean().item(), abs=1e-6)
    assert abs(row["logit"] - row["bias"] - row["map_sum"]) <= 1e-4 * max(1, abs(row["logit"]))
    expected = where(run.model(), read_head(run), x, classes=[c]).maps[:, 0].mean(axis=0)
    assert np.allclose(np.load(run.dir / "class_where_triangle.npy"), expected, rtol=0, atol=1e-9)
    assert (run.dir / "class_where_triangle.png").is_file()
    assert "class_where/triangle" in json.loads((run.dir / "results.json").read_text())["results"]
    code, _, err = nv("explain", "--where", "--run", run.dir)
    assert code == 2 and "--index or --input" in err and "--class" in err


def test_where_refuses_recurrent_runs_and_maps_a_class_in_parts(runs, monkeypatch):
    run = runs["nv"]
    recurrent = Run(run.dir, replace(run.config, model=replace(run.spec, arch="rnn")))
    with pytest.raises(NvError, match="recurrent rnn: its decisions split over time steps"):
        where_run(recurrent, index=0)
    whole = class_where(run, "red")
    monkeypatch.setattr("nvcli.analysis.where.MAP_BUDGET", 3 * 32 * 32 * 7)  # seven images' maps at a time
    assert np.allclose(class_where(run, "red").maps, whole.maps, rtol=0, atol=1e-9)


def test_where_on_sound_and_multiview_runs(nv, tmp_path):
    """Sound runs map over the spectrogram (bands x frames); multi-view runs give one stack of maps per view."""
    for data, name, extra in [("tones", "t", ["--data", "tones", "-D", "per_class=2", "-D", "val_per_class=1"]),
                              ("views", "mv", ["--image-size", "32", "-D", "train_per_class=1", "-D",
                                               "val_per_class=1", "--views", "3"])]:
        command = "multiview" if data == "views" else "train"
        trained = nv(command, "--arch", "smallcnn", "--reduce", "mean", "--epochs", "1", *extra, "--runs-dir",
                     tmp_path, "--name", name)
        assert trained.code == 0, trained.err
        run = load_run(tmp_path / name)
        _where_sample(nv, run, 0)
        views = (3,) if data == "views" else ()
        assert np.load(run.dir / "where_index0.npy").shape == (*views, 3, *run.spec.input_shape[1:])
        assert (run.dir / "where_index0.png").is_file()


# --- compare ---------------------------------------------------------------------------------------

def test_compare_two_runs(runs, tmp_path, nv):
    a, b = runs["nv"], runs["nv2"]
    out = tmp_path / "cmp"
    code, stdout, _ = nv("compare", a.dir, b.dir, "--out", out, "-f", "csv")
    assert code == 0
    overall = pd.read_csv(io.StringIO(stdout))
    assert list(overall.columns) == ["layer", "node", "label", "units", "unit_share", "pos_share_a", "pos_share_b",
                                     "neg_share_a", "neg_share_b", "top_share_a", "top_share_b"]
    for column in overall.columns[4:]:
        assert overall[column].sum() == pytest.approx(1)
    expected = layer_summary(read_head(b))
    assert np.allclose(overall["pos_share_b"], expected.loc[expected["class"] == "overall", "pos_share"])
    accuracy = pd.read_csv(out / "compare_accuracy.csv")
    eval_acc = pd.read_csv(a.dir / "metrics.csv")["val_acc"].iloc[-1]
    assert accuracy["accuracy"].iloc[0] == pytest.approx(eval_acc, abs=1e-6) and set(accuracy["source"]) == {"computed"}
    layers = pd.read_csv(out / "compare_layers.csv")
    assert set(layers["side"]) == {"a", "b"} and (out / "compare.png").is_file()


def test_compare_reads_a_current_eval_csv_and_writes_into_run_a_by_default(runs, tmp_path, nv):
    a = runs["nv"]
    assert output_dir(None, a, runs["nv2"]) == a.dir / "compare_nv2" and (a.dir / "compare_nv2").is_dir()
    run = load_run(shutil.copytree(a.dir, tmp_path / "a"))
    assert nv("eval", "--run", run.dir, "--device", "cpu", "--no-plot", "--force").code == 0
    saved = pd.read_csv(run.dir / "eval.csv")["accuracy"].iloc[0]
    result = compare(run, run, compute=Compute(device="cpu"))
    assert result.accuracy["accuracy"].tolist() == [saved, saved] and set(result.accuracy["source"]) == {"eval.csv"}
    expected = layer_summary(read_head(run))
    assert np.allclose(result.overall["pos_share_a"], expected.loc[expected["class"] == "overall", "pos_share"])

    # eval.csv made from other weights (model.pt replaced since) is not read: the run is evaluated again.
    shutil.copy(runs["nv2"].dir / "model.pt", run.dir / "model.pt")
    run = load_run(run.dir)
    now = evaluate(run, compute=Compute(device="cpu")).summary.accuracy
    result = compare(run, run, compute=Compute(device="cpu"))
    assert result.accuracy["accuracy"].tolist() == [now, now] and set(result.accuracy["source"]) == {"computed"}
    assert now != saved
    # So is one without a record of what it was made from (written by hand, or before nv recorded it).
    pd.DataFrame([{"run": run.name, "head": "dense", "accuracy": 0.123}]).to_csv(run.dir / "eval.csv", index=False)
    assert set(compare(run, run, compute=Compute(device="cpu")).accuracy["source"]) == {"computed"}


def test_compare_refuses_other_architectures_units_and_baselines(runs, tmp_path, nv):
    a = runs["nv"]
    other = tmp_path / "other"
    shutil.copytree(a.dir, other)
    config = json.loads((other / "config.json").read_text())
    config["model"]["arch"] = "alexnet"
    (other / "config.json").write_text(json.dumps(config))
    code, _, err = nv("compare", a.dir, other)
    assert code == 2 and "different architectures" in err and "alexnet" in err
    assert not (a.dir / "compare_other").exists()

    narrow = tmp_path / "narrow"
    shutil.copytree(a.dir, narrow)
    units = pd.read_csv(narrow / "units.csv")
    units[units["unit"] < len(units) - 8].to_csv(narrow / "units.csv", index=False)
    config = json.loads((narrow / "config.json").read_text())
    (narrow / "config.json").write_text(json.dumps({**config, "units": len(units) - 8}))  # as its own run says
    with pytest.raises(NvError, match="different units"):
        check_comparable(a, load_run(narrow))
    code, _, err = nv("compare", a.dir, runs["base"].dir)
    assert code == 2 and "NeuroView run" in err


def test_concept_map_by_importance_is_the_weight_times_the_code_spread_and_finds_each_colour(runs):
    from nvcli.analysis.dissect.concepts import DEFAULT_AGGREGATE, concepts_classes, dissect_run
    from nvcli.analysis.importance import code_stats

    run = runs["nv"]
    result = dissect_run(run, options=DissectOptions(probe_count=200, rank="importance"),
                         compute=Compute(device="cpu"))
    head, stats = read_head(run), code_stats(run, device="cpu")
    expected = concepts_classes(head.weight * stats.std, result.units, run.classes, DEFAULT_AGGREGATE)
    pd.testing.assert_frame_equal(result.classes, expected)
    table = result.classes
    top = table[(table["sign"] == "+") & (table["rank"] == 1)].set_index("class")["concept"]
    assert [top[c] for c in ("red", "green", "blue")] == ["red", "green", "blue"], top
