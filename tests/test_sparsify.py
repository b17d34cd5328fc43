"""`nv sparsify` on a trained shapes model: a head of about ten units per class keeps the dense head's accuracy,
its colour classes read colour units, and every analysis reads the stored head like the dense one."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import trained_copy

from nvcli.analysis.code_cache import split_codes
from nvcli.analysis.head import Head, read_head
from nvcli.analysis.settings import Compute, HeadSettings
from nvcli.analysis.sparse.groups import UnitGroups
from nvcli.analysis.sparse.path import PATH_COLUMNS, PathSettings
from nvcli.analysis.sparse.selection import Selection
from nvcli.analysis.sparse.sparsify import fit_path, sparse_head
from nvcli.analysis.weights import class_weights, kept_units
from nvcli.errors import NvError
from nvcli.runs.results import read_manifest, save_files
from nvcli.runs.run import Run, load_run

COLOURS = ("red", "green", "blue")


@pytest.fixture(scope="module")
def sparse_run(shapes_runs: dict, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A copy of the shared shapes run (these tests write heads and results into it)."""
    return trained_copy(shapes_runs, tmp_path_factory.mktemp("sparse") / "nv")


def test_ten_units_per_class_keep_the_dense_accuracy_and_colour_classes_read_colour_units(nv, sparse_run: Run) -> None:
    run_dir = sparse_run.dir
    classes = sparse_run.classes
    made = nv("sparsify", "--run", run_dir, "--units-per-class", "10", "--device", "cpu", "--format", "json")
    assert made.code == 0, made.err
    summary = json.loads(made.out)
    assert [row["head"] for row in summary] == ["dense", "sparse10 (penalised)", "sparse10"]
    record = json.loads((run_dir / "heads" / "sparse10.json").read_text())
    weight = torch.load(run_dir / "heads" / "sparse10.pt", weights_only=True)["weight"]
    per_class = (weight != 0).sum(dim=1)
    # The budget holds for every class, not on average; the printed table and the record say so class by class.
    assert int(per_class.max()) <= 10 and record["units_per_class_max"] == int(per_class.max())
    assert [summary[-1][f"units:{c}"] for c in classes] == per_class.tolist()
    assert [row["units"] for row in record["per_class"]] == per_class.tolist()
    assert per_class.double().mean().item() == pytest.approx(record["units_per_class_mean"])
    assert record["units"] == int((weight != 0).any(dim=0).sum())
    # Ground truth 1: ten units per class lose at most 3 points of the dense head's validation accuracy.
    assert record["val_acc"] >= record["dense_val_acc"] - 0.03, record
    assert record["val_acc_min"] == min(row["val_acc"] for row in record["per_class"])

    # The stored head is an ordinary W z + b over the run's codes: nv eval, through the network, agrees.
    rows = json.loads(nv("eval", "--run", run_dir, "--head", "dense", "--head", "sparse10", "--device", "cpu",
                         "--format", "json").out)
    assert [r["head"] for r in rows] == ["dense", "sparse10"]
    assert rows[0]["accuracy"] == pytest.approx(record["dense_val_acc"], abs=1e-6)
    assert rows[1]["accuracy"] == pytest.approx(record["val_acc"], abs=1e-6)
    assert (run_dir / "eval@sparse10.csv").is_file() and (run_dir / "eval.csv").is_file()

    path = pd.read_csv(run_dir / "sparse_path.csv")
    assert list(path.columns) == PATH_COLUMNS + [f"units:{c}" for c in classes]
    assert (run_dir / "sparse_path.png").is_file()
    assert path["units"].iloc[0] == 0 and path["lambda"].is_monotonic_decreasing
    assert (path[[f"units:{c}" for c in classes]].max(axis=1) == path["units_per_class_max"]).all()
    assert path.iloc[record["step"]]["lambda"] == pytest.approx(record["lambda"])
    # The shared penalty alone would not keep every class within 10 units at the step the budget read up to.
    assert record["step"] == max(row["entered"] for row in record["per_class"])

    # Ground truth 2: the colour classes' kept units detect the class's own colour (Network Dissection labels).
    dissected = nv("dissect-map", "--run", run_dir, "--probe-count", "200", "--device", "cpu", "--format", "json")
    assert dissected.code == 0, dissected.err
    concepts = pd.read_csv(run_dir / "concepts_units.csv", keep_default_na=False)
    classes = sparse_run.classes
    for colour in COLOURS:
        listed = nv("weights", "--run", run_dir, "--head", "sparse10", "--class", colour, "--format", "json")
        assert listed.code == 0, listed.err
        units = json.loads(listed.out)
        assert len(units) == int(per_class[classes.index(colour)])
        # Listed largest positive weight first, then the most negative first.
        signs = [u["weight"] > 0 for u in units]
        assert signs == sorted(signs, reverse=True)
        assert [abs(u["weight"]) for u in units if u["weight"] > 0] == sorted(
            (abs(u["weight"]) for u in units if u["weight"] > 0), reverse=True)
        assert [abs(u["weight"]) for u in units if u["weight"] < 0] == sorted(
            (abs(u["weight"]) for u in units if u["weight"] < 0), reverse=True)
        positive = [u for u in units if u["weight"] > 0]
        # Criterion: the class's largest-weight unit, and most of its positive-weight units, carry the class's
        # own colour as their concept. Chance would not do it: fewer than a third of all units carry that colour.
        assert positive and positive[0]["concept"] == colour, units
        assert sum(u["concept"] == colour for u in positive) > len(positive) / 2, units
        assert (concepts["concept"] == colour).mean() < 1 / 3

    # The report shows the head as its path plot beside one table per class: its units with layer and concept.
    assert nv("report", "--run", run_dir).code == 0
    page = (run_dir / "report.html").read_text()
    section = page[page.index('<section id="head">'):]
    assert "sparse_path.png" in section
    for c, n, row in zip(classes, per_class.tolist(), record["per_class"]):
        assert f"{c}: {n} units, accuracy {row['val_acc']:.3f}" in section
    red = record["per_class"][classes.index("red")]["kept"][0]
    label = concepts.loc[concepts["unit"] == red["unit"], "concept"].item()
    assert f"<td class=\"num\">{red['unit']}</td><td>{red['layer']}</td><td>{label}</td>" in section


def test_the_refit_keeps_the_support_and_lowers_the_training_loss(sparse_run: Run) -> None:
    fitted = fit_path(sparse_run, PathSettings(steps=30), compute=Compute(device="cpu"))
    penalised = sparse_head(fitted, "p5", Selection(units_per_class=None, max_drop=0.1))
    refit = sparse_head(fitted, "r5", Selection(units_per_class=None, max_drop=0.1), finetune=True)
    W0, W1 = penalised.head.weight, refit.head.weight
    assert np.array_equal(W0 != 0, W1 != 0)  # the same units for each class, only their weights change
    assert [r["head"] for r in refit.summary.to_dict("records")] == ["dense", "r5 (penalised)", "r5"]
    record = refit.record
    assert record.finetune.penalised_val_acc == pytest.approx(penalised.record.val_acc, abs=1e-6)
    z, labels = split_codes(sparse_run, "train", device="cpu").tensors()

    def loss(head) -> float:
        logits = z.double() @ torch.from_numpy(head.weight).T + torch.from_numpy(head.bias)
        return torch.nn.functional.cross_entropy(logits, labels).item()

    assert loss(refit.head) < loss(penalised.head)  # debiased: the penalty no longer shrinks the weights
    assert record.train_acc >= record.finetune.penalised_train_acc - 0.02
    # A budget head is always refitted (its classes' supports come from different steps), within each budget.
    budget = sparse_head(fitted, "b3", Selection(units_per_class=3))
    assert budget.record.finetune is not None and int((budget.head.weight != 0).sum(axis=1).max()) <= 3
    # Near-copies: every recorded member correlates with its representative past the threshold on the training
    # codes, and only representatives carry weight.
    X = fitted.scale(fitted.codes.train[0]).numpy()
    members = budget.record.group_members
    for group in members:
        for unit, r in zip(group[1::2], group[2::2]):
            actual = float(np.mean(X[:, group[0]] * X[:, unit]))
            assert abs(actual) >= budget.record.group_corr - 1e-6 and actual == pytest.approx(r, abs=1e-5)
    grouped = [unit for group in members for unit in group[1::2]]
    assert budget.record.groups == X.shape[1] - len(grouped)
    assert not budget.head.weight[:, grouped].any()


def test_the_listing_names_each_group_s_members_with_their_layers_and_concepts() -> None:
    units = pd.DataFrame({"unit": range(6), "layer": [0, 0, 1, 1, 1, 1], "node": ["f.1"] * 2 + ["f.4"] * 4,
                          "label": ["conv1"] * 2 + ["conv2"] * 4, "channel": [0, 1, 0, 1, 2, 3]})
    groups = UnitGroups.from_record(6, [[1, 3, 0.995, 5, -0.993]])  # units 3 and 5 copy unit 1 (5 negated)
    weight = np.zeros((2, 6))
    weight[0, 1], weight[0, 2], weight[1, 4] = 2.0, -1.0, 0.5
    head = Head(weight, np.zeros(2), units, ["a", "b"], "s", groups)
    concepts = pd.DataFrame({"unit": range(6), "concept": ["red", "red", "green", "red", "", "blue"],
                             "category": "color", "iou": 0.1})
    kept = kept_units(head, "a", concepts)
    assert kept["unit"].tolist() == [1, 2] and kept["concept"].tolist() == ["red", "green"]
    assert kept["group_size"].tolist() == [3, 1]
    assert kept["members"].tolist() == ["3 conv2 red (+0.995); 5 conv2 blue (-0.993)", ""]
    frame = class_weights(head, "a")
    assert frame["group"].tolist() == [0, 1, 2, 1, 4, 1] and frame["group_size"].tolist() == [1, 3, 1, 3, 1, 3]
    assert frame["group_corr"].tolist() == [1.0, 1.0, 1.0, 0.995, 1.0, -0.993]


def test_heads_are_read_by_weights_compare_and_explain(nv, sparse_run: Run, tmp_path: Path) -> None:
    run_dir = sparse_run.dir
    assert nv("sparsify", "--run", run_dir, "--units-per-class", "3", "--device", "cpu", "--no-plot").code == 0
    weight = torch.load(run_dir / "heads" / "sparse3.pt", weights_only=True)["weight"]
    # A sparse head's weights file lists every unit (zeros too), like the dense head's.
    listed = nv("weights", "--run", run_dir, "--head", "sparse3", "--class", "green", "--format", "csv")
    assert listed.code == 0, listed.err
    frame = pd.read_csv(run_dir / "weights_green@sparse3.csv")
    assert len(frame) == weight.shape[1]
    np.testing.assert_array_equal(frame["weight"].to_numpy(np.float32), weight[sparse_run.classes.index("green")])

    out = tmp_path / "cmp"
    compared = nv("compare", run_dir, run_dir, "--head", "dense", "--head", "sparse3", "--out", out,
                  "--device", "cpu", "--format", "csv")
    assert compared.code == 0, compared.err
    accuracy = pd.read_csv(out / "compare_accuracy.csv")
    assert accuracy["head"].tolist() == ["dense", "sparse3"]
    record = json.loads((run_dir / "heads" / "sparse3.json").read_text())
    assert accuracy["accuracy"].iloc[1] == pytest.approx(record["val_acc"], abs=1e-6)
    layers = pd.read_csv(out / "compare_layers.csv")
    overall = layers[(layers["side"] == "b") & (layers["class"] == "overall")]
    weighed = set(overall.loc[(overall["pos_share"] > 0) | (overall["neg_share"] > 0), "node"])
    # Side b's weight lies only in the layers of the sparse head's kept units, and in each of them.
    assert weighed == {layer["node"] for layer in record["kept"]}
    three = nv("compare", run_dir, run_dir, "--head", "a", "--head", "b", "--head", "c")
    assert three.code == 2 and "--head was given 3 times" in three.err

    explained = nv("explain", "--run", run_dir, "--head", "sparse3", "--index", "0", "--device", "cpu",
                   "--format", "json")
    assert explained.code == 0, explained.err
    [path] = run_dir.glob("explain_*@sparse3.csv")
    units = pd.read_csv(path).sort_values("unit")
    sparse = read_head(load_run(run_dir), "sparse3")
    z = np.asarray(split_codes(load_run(run_dir), "val", device="cpu").z[0], dtype=np.float64)
    logits = sparse.weight @ z + sparse.bias  # the stored head on sample 0's cached codes
    c = int(logits.argmax())  # explain's default target: the predicted class
    assert np.allclose(units["weight"], sparse.weight[c], atol=1e-6)  # the sparse head's weights, not the dense
    assert (units.loc[units["weight"] == 0, "contribution"] == 0).all()
    assert np.allclose(units["contribution"], sparse.weight[c] * z, atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--name", "dense"], "is the head trained with the network"),
    (["--name", "a/b"], "head name 'a/b' is not valid"),
    (["--units-per-class", "3", "--max-drop", "0.1"], "not both"),
    (["--units-per-class", "0"], "--units-per-class 0 is not valid"),
    (["--max-drop", "1.5"], "--max-drop 1.5 is not valid"),
    (["--alpha", "0"], "--alpha 0.0 is not valid"),
    (["--steps", "1"], "--steps 1 is not valid"),
    (["--lambda-ratio", "2"], "--lambda-ratio 2.0 is not valid"),
])
def test_bad_settings_are_one_line_errors(nv, sparse_run: Run, args: list[str], message: str) -> None:
    result = nv("sparsify", "--run", sparse_run.dir, *args)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


def test_refusals_and_what_is_kept(nv, shapes_runs: dict, sparse_run: Run) -> None:
    baseline = nv("sparsify", "--run", shapes_runs["base"].dir)
    assert baseline.code == 2 and "needs a NeuroView run" in baseline.err
    unknown = nv("weights", "--run", sparse_run.dir, "--head", "sparse99", "--class", "red")
    assert unknown.code == 2 and "unknown head" in unknown.err
    # A drop the path cannot reach: its two steps lie next to lambda_max. The path is still saved.
    run_dir = sparse_run.dir
    before = (run_dir / "heads").is_dir() and sorted(p.name for p in (run_dir / "heads").iterdir())
    unreachable = nv("sparsify", "--run", run_dir, "--max-drop", "0", "--steps", "2", "--lambda-ratio", "0.99",
                     "--force", "--device", "cpu")
    assert unreachable.code == 2 and "no head with units on the path is within --max-drop 0.0" in unreachable.err
    assert len(pd.read_csv(run_dir / "sparse_path.csv")) == 2
    assert ((run_dir / "heads").is_dir() and sorted(p.name for p in (run_dir / "heads").iterdir())) == before
    # Another rule under an existing name is refused unless --force.
    assert nv("sparsify", "--run", run_dir, "--units-per-class", "4", "--name", "mine", "--device", "cpu",
              "--force").code == 0
    again = nv("sparsify", "--run", run_dir, "--units-per-class", "2", "--name", "mine", "--device", "cpu")
    assert again.code == 2 and "head/mine" in again.err and "pass --force" in again.err
    assert json.loads((run_dir / "heads" / "mine.json").read_text())["rule"] == {"units_per_class": 4}
    # A drop so large that the empty head (step 0: the class prior) would meet it: the sparsest head with units.
    lax = nv("sparsify", "--run", run_dir, "--max-drop", "0.99", "--name", "lax", "--device", "cpu", "-f", "json")
    assert lax.code == 0, lax.err
    record = json.loads((run_dir / "heads" / "lax.json").read_text())
    assert record["step"] >= 1 and record["units"] > 0


@pytest.mark.parametrize("link", ["heads", "codes/val.json", "sparse_path.png"])
def test_a_link_where_sparsify_would_write_is_refused_before_anything_is_written(nv, shapes_runs: dict,
                                                                                  tmp_path: Path, link: str) -> None:
    run = trained_copy(shapes_runs, tmp_path / "nv")
    outside = tmp_path / "outside"
    outside.mkdir()
    (run.dir / link).parent.mkdir(exist_ok=True)
    (run.dir / link).symlink_to(outside if link == "heads" else outside / "x")
    before = sorted(p.relative_to(run.dir) for p in run.dir.rglob("*"))
    made = nv("sparsify", "--run", run.dir, "--units-per-class", "2", "--device", "cpu")
    assert made.code == 2 and f"{link}' is a symbolic link" in made.err and made.err.count("\n") == 2, made.err
    assert sorted(p.relative_to(run.dir) for p in run.dir.rglob("*")) == before  # no path, no codes, no results
    assert not list(outside.iterdir())


@pytest.mark.parametrize("solver", ["memory", "stream"])
def test_codes_that_are_not_finite_stop_the_path_naming_the_store_and_the_fix(shapes_runs: dict, tmp_path: Path,
                                                                            solver: str) -> None:
    from nvcli.analysis import code_store

    run = trained_copy(shapes_runs, tmp_path / "nv")
    split_codes(run, "train", device="cpu")
    folder = run.dir / "codes"
    shard = np.load(folder / "train-00000.npy", mmap_mode="r+")
    shard[5, 7] = np.nan
    shard.flush()
    del shard
    manifest = json.loads((folder / "train.json").read_text())  # recorded as if written so (outside nv)
    manifest["shards"][0].update(stamp=code_store._stamp(folder, "train", 0), crc32=code_store._crc(folder, "train", 0))
    (folder / "train.json").write_text(json.dumps(manifest))
    message = f"the code store '{folder / 'train.json'}' holds NaN or infinite codes in train-00000.npy; remove " \
              f"'{folder / 'train.json'}' so that the codes are computed again"
    with pytest.raises(NvError, match=re.escape(message)):
        fit_path(run, PathSettings(steps=4), compute=Compute(device="cpu"), solver=solver)


def test_an_interrupted_sparsify_says_what_its_code_stores_kept(nv, shapes_runs: dict, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from nvcli.analysis.code_store import StoreWriter
    from nvcli.cli.interrupt import INTERRUPTED

    run = trained_copy(shapes_runs, tmp_path / "nv")
    original = StoreWriter.write

    def write(self, index, batches):
        if self.name == "val":
            raise KeyboardInterrupt  # the training codes are done, the validation codes not begun
        return original(self, index, batches)

    monkeypatch.setattr(StoreWriter, "write", write)
    cut = nv("sparsify", "--run", run.dir, "--device", "cpu")
    codes = run.dir / "codes"
    assert cut.code == 130 and cut.err.splitlines()[-1] == (f"{INTERRUPTED}; the train codes in '{codes}' are "
                                                            "complete; no shard of the val codes was finished")
    assert not (run.dir / "sparse_path.csv").exists()


def test_result_files_in_a_subfolder_are_saved_together_and_stray_names_never_deleted(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("the user's")
    run_dir = tmp_path / "run"
    (run_dir / "deep" / "er").mkdir(parents=True)
    (run_dir / "deep" / "er" / "x.txt").write_text("the user's")

    def writer(text: str):
        return lambda path: path.write_text(text)

    save_files(run_dir, "head/h", HeadSettings("v1"), {"heads/h.pt": writer("1"), "heads/h.json": writer("1")},
               made_from={})
    assert (run_dir / "heads" / "h.pt").read_text() == "1"
    manifest = read_manifest(run_dir)
    manifest["head/h"]["files"] += ["../outside.txt", str(outside), "deep/er/x.txt", "heads/gone.txt", "heads/old.json"]
    (run_dir / "heads" / "gone.txt").write_text("not a name nv writes")
    (run_dir / "heads" / "old.json").write_text("old result")
    (run_dir / "results.json").write_text(json.dumps({"format": 1, "results": manifest}))
    save_files(run_dir, "head/h", HeadSettings("v2"), {"heads/h.pt": writer("2"), "heads/h.json": writer("2")},
               made_from={},
               force=True)
    assert outside.read_text() == "the user's" and (run_dir / "deep" / "er" / "x.txt").is_file()
    assert not (run_dir / "heads" / "old.json").exists()  # a file of the replaced result, in its own subfolder
    assert (run_dir / "heads" / "gone.txt").exists()  # listed, but not a name nv writes: never removed
    assert read_manifest(run_dir)["head/h"]["files"] == ["heads/h.pt", "heads/h.json"]


def test_multiview_and_sound_runs(nv, tmp_path: Path) -> None:
    trained = nv("multiview", "--arch", "smallcnn", "--image-size", "32", "--epochs", "2", "-D", "train_per_class=8",
                 "-D", "val_per_class=4", "--views", "3", "--reduce", "mean", "--runs-dir", tmp_path, "--name", "mv")
    assert trained.code == 0, trained.err
    made = nv("sparsify", "--run", tmp_path / "mv", "--steps", "12", "--patience", "0", "--units-per-class", "6",
              "--device", "cpu")
    assert made.code == 0, made.err
    assert "kept units per view" in made.out
    record = json.loads((tmp_path / "mv" / "heads" / "sparse6.json").read_text())
    assert set(record["units_per_view"]) <= {"0", "1", "2"}
    assert sum(record["units_per_view"].values()) == record["units"]
    assert all("view" in layer for layer in record["kept"])
    listed = nv("weights", "--run", tmp_path / "mv", "--head", "sparse6", "--class", "cube")
    assert listed.code == 0 and "units per view" in listed.out
    rows = json.loads(nv("weights", "--run", tmp_path / "mv", "--head", "sparse6", "--class", "cube",
                         "--format", "json").out)
    assert all("view" in row for row in rows)

    trained = nv("train", "--arch", "smallcnn", "--reduce", "mean", "--data", "tones", "--epochs", "1",
                 "-D", "per_class=10", "-D", "val_per_class=5", "--runs-dir", tmp_path, "--name", "t")
    assert trained.code == 0, trained.err
    made = nv("sparsify", "--run", tmp_path / "t", "--steps", "8", "--device", "cpu", "--format", "json")
    assert made.code == 0, made.err
    rows = json.loads(nv("eval", "--run", tmp_path / "t", "--head", "sparse10", "--device", "cpu",
                         "--format", "json").out)
    assert rows[0]["accuracy"] == pytest.approx(json.loads(made.out)[-1]["val_acc"], abs=1e-6)


def test_path_settings_are_checked_in_the_core() -> None:
    with pytest.raises(NvError, match="patience 0 is not valid"):
        PathSettings(patience=0)
    with pytest.raises(NvError, match="not both"):
        Selection(units_per_class=None, max_drop=None)
    with pytest.raises(NvError, match="group_corr 1.5 is not valid"):
        PathSettings(group_corr=1.5)


def test_a_head_far_less_accurate_than_the_dense_one_is_flagged(nv, sparse_run: Run) -> None:
    near_lambda_max = ("--lambda-ratio", "0.99", "--steps", "2", "--patience", "0", "--device", "cpu", "--no-plot")
    made = nv("sparsify", "--run", sparse_run.dir, *near_lambda_max, "--units-per-class", "100", "--name", "weak",
              "--format", "json", "--force")
    assert made.code == 0, made.err
    weak = {row["head"]: row for row in json.loads(made.out)}
    assert weak["dense"]["val_acc"] - weak["weak"]["val_acc"] > 0.05
    assert "warning: head 'weak' is" in made.err and "--max-drop" in made.err
    fine = nv("sparsify", "--run", sparse_run.dir, "--max-drop", "0.03", "--name", "fine", "--device", "cpu",
              "--no-plot", "--force")
    assert fine.code == 0 and "warning" not in fine.err, fine.err


def test_a_refit_stopped_at_its_limit_says_so(nv, sparse_run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from nvcli.analysis.sparse import sparsify

    monkeypatch.setattr(sparsify, "REFIT_MAX_ITER", 3)
    made = nv("sparsify", "--run", sparse_run.dir, "--units-per-class", "3", "--name", "capped", "--device", "cpu",
              "--no-plot", "--force")
    assert made.code == 0, made.err
    refit = json.loads((sparse_run.dir / "heads" / "capped.json").read_text())["finetune"]
    assert (refit["iterations"], refit["max_iterations"], refit["tol"], refit["converged"]) == (3, 3, 1e-4, False)
    assert "warning: the unpenalised refit of head 'capped' stopped at its limit of 3 iterations" in made.err


def test_a_sparse_head_is_labelled_by_its_own_dissection_else_the_dense_one(nv_run: Run) -> None:
    from nvcli.analysis.dissect.concepts import ConceptMap
    from nvcli.runs import provenance
    from nvcli.runs.results import table

    def saved(key: str, name: str, concepts: list[str]) -> None:
        frame = pd.DataFrame({"unit": [0, 1], "concept": concepts})
        save_files(nv_run.dir, key, HeadSettings("s"), {name: table(frame)}, made_from=provenance.made_from(nv_run))

    assert ConceptMap.labels_for(nv_run, "s") is None  # before any dissection
    saved("concepts", "concepts_units.csv", ["red", "green"])
    saved("concepts@s", "concepts_units@s.csv", ["blue", "dotted"])
    assert ConceptMap.labels_for(nv_run, "s")["concept"].tolist() == ["blue", "dotted"]  # its own probe
    assert ConceptMap.labels_for(nv_run, "t")["concept"].tolist() == ["red", "green"]  # the dense head's
    assert ConceptMap.labels_for(nv_run, "dense")["concept"].tolist() == ["red", "green"]
    (nv_run.dir / "concepts_units@s.csv").write_text("unit,concept\n0,edited\n1,by hand\n")
    with pytest.warns(UserWarning, match=r"concepts_units@s.csv was edited or replaced"):
        assert ConceptMap.labels_for(nv_run, "s")["concept"].tolist() == ["red", "green"]  # a stale one is passed