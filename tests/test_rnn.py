"""NeuroView-RNN (issue 24): recurrent models, the UCR layout, the sequences world and the analyses along time.

The ground truth is the `sequences` world: `early` / `late` are decided by a pulse inside a known window, `sine`
by a frequency present throughout. A small GRU trained once (seconds on one thread) must put the weight mass of
`early` and `late` in their windows, spread `sine`'s, and lose `early` / `late` when their top steps are removed
while as many random steps leave them intact.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nvcli.analysis.ablation import ablate
from nvcli.analysis.head import Head, read_head
from nvcli.analysis.timesteps import step_grid, time_weights
from nvcli.data.registry import data_options, load_data, make_dataset
from nvcli.data.sequences import SequencesOptions, window
from nvcli.errors import NvError
from nvcli.models.build import build_model
from nvcli.models.recurrent import hidden_code
from nvcli.models.spec import ModelChoice, ModelSpec
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import convert, train

LENGTH = 32
WORLD = SequencesOptions(length=LENGTH, train_per_class=60, val_per_class=40)


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory: pytest.TempPathFactory):
    """NeuroView-GRU (16 hidden units) trained 10 epochs on the sequences world; ~80% validation accuracy."""
    cfg = TrainConfig(epochs=10, batch_size=32, lr=3e-3, device="cpu", threads=1)
    return train(ModelChoice(arch="gru", hidden_size=16), "sequences", WORLD, cfg, name="gru",
                 runs_dir=tmp_path_factory.mktemp("rnn-runs"))


def test_units_are_layer_step_hidden_unit(gru_run) -> None:
    units = gru_run.units()
    assert list(units.columns) == ["unit", "layer", "node", "label", "step", "channel"]
    assert len(units) == LENGTH * 16 and units["step"].max() == LENGTH - 1
    assert (units["unit"] == units["step"] * 16 + units["channel"]).all()  # step-major inside a layer


def test_an_event_class_puts_its_mass_in_its_window_and_a_frequency_class_spreads_it(gru_run) -> None:
    result = time_weights(gru_run.name, read_head(gru_run, "dense"))
    summary = result.summary.set_index("class")
    for name in ("early", "late"):
        start, end = window(name, LENGTH)
        # The state that has seen the whole pulse lies at most its width (1.5 steps) past the window.
        assert start <= summary.loc[name, "peak_step"] < end + 2, (name, summary.loc[name].to_dict())
    assert summary.loc["sine", "spread"] > max(summary.loc["early", "spread"], summary.loc["late", "spread"]) + 0.02
    shares = result.frame.groupby("class")["share"].sum()
    assert np.allclose(shares.to_numpy(), 1.0)


def test_removing_an_event_class_top_steps_destroys_it_and_random_steps_do_not(gru_run) -> None:
    frame = ablate(gru_run).frame
    k = max(step_grid(LENGTH))
    for name in ("early", "late"):
        part = frame[frame["class"] == name]
        clean = part[part["policy"] == "none"]["accuracy"].iloc[0]
        top = part[(part["policy"] == "top-steps") & (part["k"] == k)]["accuracy"].mean()
        random = part[(part["policy"] == "random-steps") & (part["k"] == k)]["accuracy"].mean()
        assert clean >= 0.8, (name, clean)
        assert top <= 0.5 * clean, (name, clean, top)
        assert random >= clean - 0.15, (name, clean, random)


def test_hidden_codes() -> None:
    pre = torch.linspace(-4, 4, 9)
    h = torch.tanh(pre)
    assert torch.allclose(hidden_code(h, "soft"), torch.sigmoid(2 * pre), atol=1e-6)  # (tanh + 1) / 2
    assert torch.equal(hidden_code(h, "raw"), h)
    assert torch.equal(hidden_code(h, "hard"), (h > 0).float())


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
def test_padding_is_masked(arch: str) -> None:
    """A series NaN-padded to 20 steps classifies as the same series on its own 14 steps (both directions, every
    layer); its padded steps' codes are 0."""
    torch.manual_seed(0)
    choice = ModelChoice(arch=arch, hidden_size=5, rnn_layers=2, bidirectional=True)
    spec = ModelSpec.of(choice, num_classes=3, input_shape=(1, 1, 20), mean=(0.0,), std=(1.0,))
    model = build_model(spec).eval()
    short = ModelSpec.of(ModelChoice(arch=arch, hidden_size=5, rnn_layers=2, bidirectional=True, baseline=True),
                         num_classes=3, input_shape=(1, 1, 14), mean=(0.0,), std=(1.0,))
    baseline = build_model(short).eval()
    x = torch.randn(2, 1, 1, 20)
    x[0, ..., 14:] = float("nan")
    with torch.no_grad():
        z = model.features(x).view(2, 2, 20, 10)  # [batch, layer, step, hidden]
        assert (z[0, :, 14:] == 0).all() and (z[1, :, 14:] != 0).any()
        padded = baseline(x[:1])
        alone = baseline(x[:1, ..., :14])
    assert torch.allclose(padded, alone, atol=1e-5)


def _write(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def test_ucr_layouts_variable_lengths_and_normalisation(tmp_path: Path) -> None:
    _write(tmp_path / "Toy" / "Toy_TRAIN.tsv", ["2\t1\t2\t3\t4", "1\t5\t6\tNaN\tNaN", "2\t0\t0\t1\tNaN"])
    _write(tmp_path / "Toy" / "Toy_TEST.tsv", ["1\t1\t1\t2\t2"])
    _write(tmp_path / "Toy" / "Toy_CLASSES.tsv", ["1\tlow", "2\thigh"])
    bundle = load_data("ucr", {"data_dir": str(tmp_path / "Toy"), "normalize": "none"})
    assert bundle.kind == "sequence" and bundle.classes == ["low", "high"] and bundle.input_shape == [1, 1, 4]
    assert bundle.train.labels == [1, 0, 1]
    second = bundle.train[1][0][0, 0].numpy()
    assert second[:2].tolist() == [5, 6] and np.isnan(second[2:]).all()
    series = load_data("ucr", {"data_dir": str(tmp_path), "name": "Toy"}).train[0][0][0, 0].numpy()
    assert abs(series.mean()) < 1e-6 and abs(series.std() - 1) < 1e-5
    glob = load_data("ucr", {"data_dir": str(tmp_path / "Toy"), "normalize": "global"})
    assert glob.mean == [pytest.approx(np.mean([1, 2, 3, 4, 5, 6, 0, 0, 1]))]
    # The older archive: comma separated .txt and space separated files without extension, labels as floats.
    _write(tmp_path / "Old" / "Old_TRAIN.txt", ["1.0000000e+00,1,2,3", "-1.0000000e+00,3,2,1"])
    _write(tmp_path / "Old" / "Old_TEST", ["  1   1 2 3", " -1   3 ? 1"])
    old = load_data("ucr", {"data_dir": str(tmp_path / "Old"), "normalize": "none"})
    assert old.classes == ["-1", "1"] and old.train.labels == [1, 0]
    assert old.val[1][0][0, 0].tolist() == [3, 3, 1]  # a missing value inside takes the one before it


def test_ucr_refusals(tmp_path: Path) -> None:
    with pytest.raises(NvError, match="needs data_dir"):
        load_data("ucr", {})
    _write(tmp_path / "A_TRAIN.tsv", ["1\t1"])
    _write(tmp_path / "B_TRAIN.tsv", ["1\t1"])
    with pytest.raises(NvError, match="holds A, B; choose one with name"):
        load_data("ucr", {"data_dir": str(tmp_path)})
    with pytest.raises(NvError, match="has no A_TEST"):
        load_data("ucr", {"data_dir": str(tmp_path), "name": "A"})
    _write(tmp_path / "A_TEST.tsv", ["1\tx"])
    with pytest.raises(NvError, match="line 1"):
        load_data("ucr", {"data_dir": str(tmp_path), "name": "A"})
    with pytest.raises(NvError, match="normalize"):
        data_options("ucr", {"normalize": "minmax"})


@pytest.mark.parametrize("lines, message", [
    (["1\tlow"], "names no class for label(s) 2 of the data"),  # partial: 'low, 2' mixed names and labels before
    (["1 low", "2\thigh"], "line 1 is '1 low'; each line is a label, a tab and its class name"),
    (["1\tlow", "2\t"], "line 2 is '2\\t'; each line is a label, a tab and its class name"),
    (["1\tlow", "2\thigh\textra"], "line 2 is '2\\thigh\\textra'; each line is a label, a tab and its class name"),
    (["1\tlow", "1.0\thigh"], "line 2 names label 1.0 again; name each label once"),
    (["1\tlow", "2\tlow"], "gives two labels the same class name"),
])
def test_a_malformed_classes_file_is_refused_naming_its_line(tmp_path: Path, lines: list[str], message: str) -> None:
    _write(tmp_path / "Toy" / "Toy_TRAIN.tsv", ["1\t1\t2", "2\t2\t1"])
    _write(tmp_path / "Toy" / "Toy_TEST.tsv", ["2\t1\t1"])
    _write(tmp_path / "Toy" / "Toy_CLASSES.tsv", lines)
    with pytest.raises(NvError) as caught:
        load_data("ucr", {"data_dir": str(tmp_path / "Toy")})
    assert str(caught.value).startswith(f"'{tmp_path / 'Toy' / 'Toy_CLASSES.tsv'}' ") and message in str(caught.value)
    _write(tmp_path / "Toy" / "Toy_CLASSES.tsv", ["", "2\thigh", "1\tlow", "3\tunused", ""])  # blank lines, any order
    assert load_data("ucr", {"data_dir": str(tmp_path / "Toy")}).classes == ["low", "high"]


def test_a_byte_order_mark_is_not_part_of_the_first_label(tmp_path: Path) -> None:
    for name, lines in (("TRAIN", ["1\t1\t2", "2\t2\t1"]), ("TEST", ["1\t1\t1"]), ("CLASSES", ["1\tlow", "2\thigh"])):
        (tmp_path / f"Toy_{name}.tsv").write_bytes(("\ufeff" + "\n".join(lines) + "\n").encode("utf-8"))
    bundle = load_data("ucr", {"data_dir": str(tmp_path)})  # was a third class '\ufeff1' (and an unnamed label)
    assert bundle.classes == ["low", "high"] and bundle.train.labels == [0, 1] and bundle.val.labels == [0]


def test_a_run_refuses_series_of_another_length_naming_the_file(tmp_path: Path, nv) -> None:
    folder, runs = tmp_path / "Toy", tmp_path / "runs"
    rows = {"TRAIN": ["1\t0\t0\t1\t0\t0\t0", "2\t0\t0\t0\t0\t1\t0"] * 3, "TEST": ["1\t0\t1\t0\t0\t0\tNaN"]}
    for split, lines in rows.items():
        _write(folder / f"Toy_{split}.tsv", lines)
    code, _, err = nv("train", "--arch", "gru", "--data", "ucr", "--data-dir", folder, "--epochs", "1",
                      "--hidden-size", "2", "--runs-dir", runs, "--name", "g", "--threads", "1")
    assert code == 0, err
    assert json.loads((runs / "g" / "config.json").read_text())["model"]["input_shape"] == [1, 1, 6]  # recorded
    for split, longer in (("TEST", "1\t0\t1\t0\t0\t0\t0\t2\t2"), ("TRAIN", "2\t0\t0\t0\t0\t1\t0\t0\t0\t3")):
        _write(folder / f"Toy_{split}.tsv", [*rows[split], longer])
        for command in (["eval"], ["codes", "--split", "train"]):
            code, _, err = nv(*command, "--run", runs / "g")
            lines = [line for line in err.strip().splitlines() if not line.startswith("run: ")]
            assert code == 2 and "Traceback" not in err and lines == [
                f"error: '{folder / f'Toy_{split}.tsv'}' holds series of {8 if split == 'TEST' else 9} steps (1 "
                f"channel(s)); run '{runs / 'g'}' was trained on series of 6 steps (1 channel(s)); restore the data or "
                "train a new run"], err
        _write(folder / f"Toy_{split}.tsv", rows[split])
    assert nv("eval", "--run", runs / "g").code == 0


def test_the_world_written_in_the_ucr_layout_reads_back(tmp_path: Path) -> None:
    small = {"length": 20, "train_per_class": 3, "val_per_class": 2, "seed": 4}
    out = make_dataset("sequences", tmp_path / "seq", small)
    from_disk = load_data("ucr", {"data_dir": str(out / "Sequences"), "normalize": "none", "seed": 4})
    in_memory = load_data("sequences", small)
    assert from_disk.classes == in_memory.classes
    for split in ("train", "val"):
        a, b = from_disk.split(split), in_memory.split(split)
        assert a.labels == b.labels
        assert torch.allclose(a.x, b.x, atol=1e-4)


def test_model_settings_are_checked() -> None:
    with pytest.raises(NvError, match="hidden_size: a setting of the recurrent"):
        ModelChoice(arch="smallcnn", hidden_size=8)
    with pytest.raises(NvError, match="time units"):
        ModelChoice(arch="gru", time_units="first")  # type: ignore[arg-type]
    spec = ModelSpec.of(ModelChoice(arch="lstm"), num_classes=2, input_shape=(3, 32, 32))
    with pytest.raises(NvError, match="takes sequences"):
        build_model(spec)
    last = ModelSpec.of(ModelChoice(arch="rnn", rnn_layers=3, hidden_size=4, time_units="last"), num_classes=2,
                        input_shape=(1, 1, 10), mean=(0.0,), std=(1.0,))
    model = build_model(last)
    assert model.head.in_features == 40 and set(model.units()["label"]) == {"rnn3"}
    assert ModelSpec.from_dict({k: v for k, v in last.to_dict().items() if k != "time_units"}).time_units == "all"
    frames = ModelSpec.of(ModelChoice(arch="gru", hidden_size=3), num_classes=2, input_shape=(1, 8, 12), mean=(0.0,),
                          std=(1.0,))  # a spectrogram: 12 frames of 8 bands
    model = build_model(frames)
    assert model.codes.layers[0].input_size == 8 and model(torch.randn(2, 1, 8, 12)).shape == (2, 2)
    assert model.units()["step"].max() == 11


def test_cli_on_a_ucr_dataset(tmp_path: Path, nv) -> None:
    out = make_dataset("sequences", tmp_path / "seq", {"length": 16, "train_per_class": 4, "val_per_class": 2})
    runs = tmp_path / "runs"
    code, _, err = nv("train", "--arch", "gru", "--data", "ucr", "--data-dir", out / "Sequences", "--epochs", "1",
                      "--hidden-size", "4", "--bidirectional", "--runs-dir", runs, "--name", "g", "--threads", "1")
    assert code == 0, err
    code, text, err = nv("eval", "--run", runs / "g", "-f", "csv", "--threads", "1")
    assert code == 0 and pd.read_csv(io.StringIO(text))["activation"].tolist() == ["soft"], err  # nothing reduced
    code, text, err = nv("weights", "--by", "time", "--run", runs / "g", "--class", "late", "--no-plot")
    assert code == 0, err
    assert "late" in text and "early" not in text
    frame = pd.read_csv(runs / "g" / "weights_time.csv")
    assert len(frame) == 5 * 16 and set(frame["label"]) == {"gru1"}
    for command in (["dissect-map"], ["perturb"], ["weights", "--by", "time", "--all"]):
        code, _, err = nv(*command, "--run", runs / "g")
        assert code != 0 and len(err.strip().splitlines()[-1]) > 0 and "Traceback" not in err
    image_run, _ = convert(ModelChoice(arch="smallcnn"), num_classes=2, image_size=32, runs_dir=runs, name="cnn")
    code, _, err = nv("weights", "--by", "time", "--run", image_run)
    assert code != 0 and "needs a run with a time axis" in err
    assert math.isfinite(float(pd.read_csv(runs / "g" / "metrics.csv")["val_acc"].iloc[-1]))
    # --resume takes the recurrent settings as recorded: repeating them (without --arch) is accepted, changing one is
    # refused with both values.
    code, _, err = nv("train", "--resume", "--run", runs / "g", "--hidden-size", "4", "--bidirectional")
    assert code == 0 and "already" in err, err  # the run is complete: nothing to continue
    code, _, err = nv("train", "--resume", "--run", runs / "g", "--hidden-size", "8")
    assert code == 2 and "--hidden-size 8 (the run has 4)" in err, err


def test_time_mass_is_exact_on_a_known_head() -> None:
    spec = ModelSpec.of(ModelChoice(arch="rnn", hidden_size=2, rnn_layers=2), num_classes=2, input_shape=(1, 1, 5),
                        mean=(0.0,), std=(1.0,))
    units = build_model(spec).units()
    weight = np.ones((2, len(units)))
    weight[0] = 0.0
    weight[0, ((units["layer"] == 1) & (units["step"] == 3)).to_numpy()] = [2.0, -2.0]
    head = Head(weight, np.zeros(2), units, ["one-step", "even"])
    result = time_weights("known", head)
    frame = result.frame.set_index(["class", "layer", "step"])
    assert frame.loc[("one-step", 1, 3), "share"] == 1.0 and frame.loc[("one-step", 1, 3), "neg_weight"] == -2.0
    assert frame.loc[("even", 0, 0), "share"] == pytest.approx(0.1)
    summary = result.summary.set_index("class")
    assert summary.loc["one-step", "peak_step"] == 3 and summary.loc["one-step", "spread"] == pytest.approx(0.2)
    assert summary.loc["even", "spread"] == pytest.approx(1.0) and summary.loc["even", "centre"] == pytest.approx(2.0)
