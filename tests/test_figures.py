"""Figures as a reader sees them: readable layer labels, legends that hide nothing, values that show, axes with
units."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import trained_copy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from nvcli.analysis.explain import ExplainSummary, Explanation
from nvcli.analysis.head import extremes, read_head
from nvcli.analysis.weights import class_weights
from nvcli.data.sound.spectrogram import SpecParams
from nvcli.models.archs import SmallCNN, build_network
from nvcli.models.multiview import MultiViewNeuroView
from nvcli.models.neuroview import NeuroView
from nvcli.plots.compare import compare_figure
from nvcli.plots.concepts import concept_figure
from nvcli.plots.explain import explain_figure
from nvcli.plots.metrics import metrics_figure
from nvcli.plots.perturb import perturb_figure
from nvcli.plots.units import layer_labels
from nvcli.plots.weights import weights_figure
from nvcli.runs import files
from nvcli.runs.run import Run
from nvcli.training.recipes import resume
from tests.test_units import Functional


def _labels(arch: str) -> list[str]:
    return [layer.label for layer in NeuroView(build_network(arch, 3, 3, 32), 3, input_shape=(3, 32, 32)).layers]


# --- layer labels -------------------------------------------------------------------------------------------------

def test_conv_nets_label_layers_conv1_to_convN() -> None:
    assert _labels("alexnet") == [f"conv{k}" for k in range(1, 6)]
    assert _labels("vgg11") == [f"conv{k}" for k in range(1, 9)]
    assert _labels("smallcnn") == ["conv1", "conv2", "conv3"]


def test_resnet_and_densenet_label_blocks_by_their_convolutions() -> None:
    resnet = _labels("resnet18")
    # the stem, then per basic block the ReLU after conv1 and the one after conv2 (+ the skip connection)
    assert resnet[:5] == ["conv1", "layer1.0 conv1", "layer1.0 conv2", "layer1.1 conv1", "layer1.1 conv2"]
    assert resnet[-1] == "layer4.1 conv2" and len(set(resnet)) == len(resnet) == 17
    dense = _labels("densenet121")
    # pre-activation: each ReLU is named for the convolution it feeds
    assert dense[:3] == ["conv0", "denseblock1.denselayer1 conv1", "denseblock1.denselayer1 conv2"]
    assert "transition1 conv" in dense and dense[-1] == "norm5 relu"
    assert len(set(dense)) == len(dense) == 121


def test_user_models_fall_back_to_node_names_and_labels_stay_unique() -> None:
    model = NeuroView(Functional(), 2, input_shape=(3, 8, 8))
    pairs = [(layer.node, layer.label) for layer in model.layers]
    assert pairs[:2] == [("relu", "conv1"), ("act", "conv2")]
    assert [label for _, label in pairs[2:]] == [node for node, _ in pairs[2:]]  # no convolution to name them by


def test_units_table_keeps_node_and_adds_label_also_per_view() -> None:
    model = MultiViewNeuroView(lambda: SmallCNN(3), 3, views=2, input_shape=(3, 16, 16))
    units = model.units()
    assert list(units.columns) == ["unit", "view", "layer", "node", "label", "channel"]
    assert units.groupby("view")["label"].apply(lambda s: list(dict.fromkeys(s))).tolist() == \
        [["conv1", "conv2", "conv3"]] * 2


@pytest.fixture
def run_copy(shapes_runs: dict[str, Run], tmp_path: Path) -> Run:
    """A private copy of the trained NeuroView shapes run."""
    return trained_copy(shapes_runs, tmp_path / "nv")


def test_old_runs_without_labels_fall_back_to_node_names(run_copy: Run, nv) -> None:
    path = run_copy.dir / "units.csv"
    units = pd.read_csv(path)
    assert units["label"].tolist()[:1] == ["conv1"]
    units.drop(columns="label").to_csv(path, index=False)
    result = nv("weights", "--run", run_copy.dir, "--class", "red", "-f", "csv", "--force")
    assert result.code == 0, result.err
    frame = pd.read_csv(run_copy.dir / "weights_red.csv")
    assert (frame["label"] == frame["node"]).all()
    assert (run_copy.dir / "weights_red.png").is_file()


# --- figures ------------------------------------------------------------------------------------------------------

def _inside(inner, outer) -> bool:
    return inner.x0 < outer.x1 and inner.x1 > outer.x0 and inner.y0 < outer.y1 and inner.y1 > outer.y0


def test_weights_figure_legend_names_layers_and_covers_no_unit(run_copy: Run) -> None:
    frame = class_weights(read_head(run_copy), "red")
    fig = weights_figure(frame, "t")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # lays the figure out as saving it does
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["conv1", "conv2", "conv3"]
    renderer = canvas.get_renderer()
    assert not _inside(legend.get_window_extent(renderer), ax.get_window_extent(renderer))


def test_perturb_figure_writes_every_value_so_a_zero_bar_shows() -> None:
    rows = [(c, cond, acc) for c, accs in (("red", (1.0, 0.0, 1.0)), ("overall", (0.9, 0.5, 0.8)))
            for cond, acc in zip(("none", "red", "green"), accs)]
    frame = pd.DataFrame(rows, columns=["class", "condition", "accuracy"])
    ax = perturb_figure(frame, "t").axes[0]
    values = sorted(float(t.get_text()) for t in ax.texts)
    assert values == sorted(frame["accuracy"])  # one label per bar, the zero included
    assert "0.00" in [t.get_text() for t in ax.texts]


def _concepts() -> pd.DataFrame:
    rows = [("red", "+", 5.0, 60.0, 1), ("blue", "-", -3.0, 36.0, 1), ("green", "+", 0.33, 3.96, 2),
            ("steel", "+", 0.004, 0.04, 3)]
    frame = pd.DataFrame(rows, columns=["concept", "sign", "weight", "percent", "rank"])
    return frame.assign(**{"class": "red", "category": "color", "units": 3})


def test_concept_figure_names_the_class_and_leaves_out_near_zero_concepts() -> None:
    left, right = concept_figure(_concepts(), "red").axes
    shown = [t.get_text() for t in left.get_yticklabels()]
    assert shown == ["red (color)", "green (color)", "blue (color)"]  # steel holds 0.04%: not a top concept
    assert "'red'" in left.get_title() and "'red'" in right.get_title()
    assert [t.get_text() for t in right.get_yticklabels()][-1] == "other (1 concepts)"


def _summary() -> ExplainSummary:
    return ExplainSummary("validation sample 0", "a", "a", 0.9, "a", 1.0, 0.1, 0.9, "zero")


def _tables(views: int, layers: int = 2, channels: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows = [{"unit": u, "view": v, "layer": la, "node": f"features.{la}", "label": f"conv{la + 1}", "channel": c}
            for u, (v, la, c) in enumerate((v, la, c) for v in range(views) for la in range(layers)
                                           for c in range(channels))]
    units = pd.DataFrame(rows).assign(contribution=rng.normal(size=len(rows)))
    per_layer = units.groupby(["view", "layer", "node", "label"], as_index=False)["contribution"].sum()
    if views == 1:
        units, per_layer = units.drop(columns="view"), per_layer.drop(columns="view")
    return units, per_layer


def test_sound_explanation_has_time_and_frequency_axes_a_colour_bar_and_no_padding() -> None:
    spec = SpecParams(sample_rate=16000, duration=1.0, n_mels=64, n_fft=1024, hop_length=256, top_db=80.0)
    x = torch.full((1, 64, 63), -60.0)
    x[0, :, :21] = torch.rand(64, 21) * 40 - 50  # a third of the clip is sound, the rest zero padding (the floor)
    units, layers = _tables(1)
    fig = explain_figure(_summary(), extremes(units, "contribution", 3), layers, x, 3, spec)
    image_ax = next(ax for ax in fig.axes if ax.get_images())
    assert image_ax.get_xlabel() == "time (s)" and "kHz" in image_ax.get_ylabel()
    assert image_ax.get_xlim()[1] == pytest.approx(21 / 63)  # seconds shown: the padding is cut
    assert any(ax.get_ylabel() == "dB" for ax in fig.axes)  # the colour bar
    assert "padding" in fig.subfigs[0]._suptitle.get_text()


def test_a_sequence_explanation_draws_each_time_steps_contribution_under_the_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nvcli.plots.explain

    units = pd.DataFrame({"unit": range(4), "layer": 0, "node": "rnn", "label": "rnn", "channel": range(4),
                          "step": [0, 0, 1, 2], "contribution": [1.0, -0.5, 2.0, -3.0]})
    layers = pd.DataFrame({"layer": [0], "node": ["rnn"], "label": ["rnn"], "contribution": [-0.5]})
    classes = pd.DataFrame({"class": ["a"], "logit": [1.0], "probability": [1.0]})
    x = torch.rand(2, 1, 3)  # two channels, three time steps
    drawn = []
    monkeypatch.setattr(nvcli.plots.explain, "explain_figure", lambda *a: drawn.append(explain_figure(*a)) or drawn[-1])
    Explanation(_summary(), classes, units, layers, x, top=3).artifacts()[files.EXPLAIN_PNG.name(input="input")](
        tmp_path / "explain.png")
    twin = next(ax for ax in drawn[0].axes if ax.get_ylabel() == "contribution per step")
    assert [bar.get_height() for bar in twin.patches] == [0.5, 2.0, -3.0]  # steps 0, 1, 2 summed by hand
    assert len(next(ax for ax in drawn[0].axes if ax.get_xlabel() == "time step").lines) == 2


def test_multiview_explanation_shows_every_view_and_says_which_view_a_unit_is_in() -> None:
    units, layers = _tables(views=12)
    x = torch.rand(12, 3, 16, 16)
    fig = explain_figure(_summary(), extremes(units, "contribution", 3), layers, x, 3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert [t for t in titles if t.startswith("view")] == [f"view {v}" for v in range(12)]
    bars = next(ax for ax in fig.axes if ax.get_xlabel().startswith("contribution"))
    assert all(" v" in t.get_text() for t in bars.get_yticklabels())
    grid = next(ax for ax in fig.axes if ax.get_images() and ax.get_ylabel() == "" and len(ax.get_yticks()) == 12)
    assert [t.get_text() for t in grid.get_xticklabels()] == ["conv1", "conv2"]  # 2 layer columns, not 24 labels


def test_compare_figure_shows_each_layers_unit_share_and_names_runs_with_accuracy() -> None:
    wide = pd.DataFrame({"layer": [0, 1], "node": ["a", "b"], "label": ["conv1", "conv2"], "units": [16, 48],
                         "pos_share_a": [0.5, 0.5], "pos_share_b": [0.1, 0.9],
                         "neg_share_a": [0.5, 0.5], "neg_share_b": [0.2, 0.8]})
    fig = compare_figure(wide, {"a": "A", "b": "B"}, {"a": 0.9, "b": 0.55})
    for ax in fig.axes:
        (line,) = [c for c in ax.collections if c.get_label() == "share of the units"]
        assert [seg[0][1] for seg in line.get_segments()] == pytest.approx([0.25, 0.75])
    assert "90.0%" in fig._suptitle.get_text() and "55.0%" in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == layer_labels(wide) == ["conv1", "conv2"]


def test_metrics_figure_draws_both_splits() -> None:
    metrics = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0], "train_acc": [0.3, 0.6],
                            "val_loss": [2.1, 1.4], "val_acc": [0.25, 0.5]})
    loss, acc = metrics_figure(metrics, "t").axes
    assert [list(line.get_ydata()) for line in loss.lines] == [[2.0, 1.0], [2.1, 1.4]]
    assert [list(line.get_ydata()) for line in acc.lines] == [[0.3, 0.6], [0.25, 0.5]]


def test_training_and_resume_write_metrics_png(run_copy: Run, shapes_runs: dict[str, Run]) -> None:
    shown = Image.open(shapes_runs["nv"].dir / "metrics.png")
    assert shown.size[0] > 500 and shown.size[1] > 200  # written at the end of training
    (run_copy.dir / "metrics.png").unlink()
    resume(run_copy, device="cpu")  # a complete run: nothing to train, the curves are drawn again
    assert Image.open(run_copy.dir / "metrics.png").size == shown.size
    assert run_copy.config.train.epochs == run_copy.epochs_done
