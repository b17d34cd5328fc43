"""The `cues` world (case study 2): every class's three cues, stylised training, cue-conflict images, and `nv bias`
against the ground truth that stylised training moves decisions from texture and colour to shape."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nvcli.analysis.bias import COLUMNS, decision_table, shape_bias
from nvcli.analysis.categories import labelled_categories
from nvcli.analysis.dissect.concepts import dissect_run
from nvcli.analysis.settings import BiasOptions, Compute, DissectOptions
from nvcli.data.cues import CLASSES, CuesOptions, make_cues, render, render_conflicts
from nvcli.data.registry import load_data
from nvcli.data.shapes import ShapesOptions
from nvcli.data.stylize import stylize_tree
from nvcli.errors import NvError
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import Run, load_run
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import train

CUES = CuesOptions(image_size=32, train_per_class=80, val_per_class=20)
RECIPE = TrainConfig(epochs=8, batch_size=32, lr=3e-3, device="cpu")
CPU = Compute(device="cpu")


@pytest.fixture(scope="module")
def cue_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The same smallcnn trained on 32 px cues images, plain and with every training image stylised (~10 s each)."""
    root = tmp_path_factory.mktemp("cue-runs")
    choice = ModelChoice(arch="smallcnn", code="soft", reduce="max")
    return {name: train(choice, "cues", CuesOptions(**{**CUES.to_dict(), "stylize": p}), RECIPE, name=name,
                        runs_dir=root) for name, p in (("plain", 0.0), ("stylised", 1.0))}


@pytest.fixture
def plain(cue_runs: dict[str, Run], tmp_path: Path) -> Run:
    """A private copy of the plain run (commands write into it)."""
    return load_run(shutil.copytree(cue_runs["plain"].dir, tmp_path / "plain"))


def test_every_plain_image_shows_its_class_three_cues() -> None:
    rendered = render(120, 32, seed=3)
    assert np.bincount(rendered.labels).tolist() == [30] * 4
    for category in ("object", "texture", "color"):
        shown = rendered.masks[category].max((1, 2))  # the concept on the object (1-based)
        assert (shown == rendered.labels + 1).all(), category


def test_stylised_images_keep_the_shape_and_draw_texture_and_colour_apart_from_the_class() -> None:
    rendered = render(400, 32, seed=3, stylize=1.0)
    shape, texture = rendered.masks["object"].max((1, 2)) - 1, rendered.masks["texture"].max((1, 2)) - 1
    assert (shape == rendered.labels).all()
    assert 0.15 < (texture == rendered.labels).mean() < 0.35  # chance: 1 in 4
    assert rendered.masks["color"].max() == 0  # a random hue is no class's colour
    half = render(400, 32, seed=3, stylize=0.5).masks["color"].max((1, 2))
    assert 0.4 < (half == 0).mean() < 0.6


def test_cue_conflicts_name_three_classes() -> None:
    conflicts = render_conflicts(10, 32, seed=0)
    cues = conflicts.cues
    assert len(cues) == 2 * 10 * 4 and np.bincount(cues[:, 0]).tolist() == [20] * 4
    assert (cues[:, 0] != cues[:, 1]).all() and (cues[:, 0] != cues[:, 2]).all()
    assert (cues[:40, 1] == cues[:40, 2]).all() and (cues[40:, 1] != cues[40:, 2]).all()
    assert list(conflicts.table().columns) == ["shape", "texture", "colour"]


def test_the_stylize_setting_is_checked_and_recorded() -> None:
    with pytest.raises(NvError, match="stylize 1.5 is not a probability"):
        CuesOptions(stylize=1.5)
    bundle = load_data("cues", {"stylize": 0.25, "image_size": 32, "train_per_class": 4, "val_per_class": 2})
    assert bundle.info["stylize"] == 0.25 and bundle.classes == list(CLASSES)
    with pytest.raises(NvError, match="takes no setting stylize"):
        load_data("shapes", {"stylize": 0.5})


def test_decisions_are_counted_by_the_cue_they_follow() -> None:
    cues = np.array([[0, 1, 1], [0, 1, 1], [1, 2, 3], [1, 2, 3], [1, 2, 3], [2, 0, 1]])
    frame = decision_table(np.array([0, 1, 2, 3, 0, 1]), cues, list(CLASSES))
    assert list(frame.columns) == COLUMNS
    style = frame[(frame["kind"] == "style") & (frame["class"] == "overall")].iloc[0]
    assert (style["shape"], style["texture"], style["colour"], style["shape_bias"]) == (0.5, 0.5, 0.5, 0.5)
    split = frame[(frame["kind"] == "split") & (frame["class"] == "beta")].iloc[0]
    assert (split["texture"], split["colour"], split["other"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert split["shape_bias"] == 0
    assert np.isnan(frame[(frame["kind"] == "split") & (frame["class"] == "gamma")]["shape_bias"].iloc[0])


def test_stylised_training_raises_the_shape_bias_by_a_clear_margin(cue_runs: dict[str, Run]) -> None:
    """The ground truth of case study 2: the plain run may follow any cue and follows colour and texture (shape bias
    near 0); the stylised run saw texture and colour carry nothing, so it follows the shape (measured: 0.00 vs 0.89
    at 8 epochs)."""
    plain, stylised = (shape_bias(cue_runs[n], compute=CPU).overall for n in ("plain", "stylised"))
    assert plain.shape_bias < 0.2 < 0.6 < stylised.shape_bias
    assert stylised.shape > plain.shape + 0.4


def test_nv_bias_writes_its_files_and_a_written_world_gives_the_same_decisions(plain: Run, nv, tmp_path: Path) -> None:
    code, out, err = nv("bias", "--run", plain.dir, "--per-class", 20, "--format", "csv", "--device", "cpu")
    assert code == 0, err
    assert "shape bias" in err and (plain.dir / "bias.png").is_file()
    built_in = pd.read_csv(plain.dir / "bias.csv")
    assert pd.read_csv(io.StringIO(out)).equals(built_in)
    make_cues(tmp_path / "world", CuesOptions(**{**CUES.to_dict(), "val_per_class": 20}))
    written = shape_bias(plain, BiasOptions(20), conflicts=tmp_path / "world" / "conflict", compute=CPU)
    pd.testing.assert_frame_equal(written.frame, built_in)  # PNG files hold the same pixels


def test_nv_bias_refuses_what_it_cannot_measure(plain: Run, nv, tmp_path: Path) -> None:
    tiny = ShapesOptions(image_size=32, train_per_class=2, val_per_class=1)
    other = train(ModelChoice(arch="smallcnn"), "shapes", tiny, TrainConfig(epochs=1, device="cpu"), name="shapes",
                  runs_dir=tmp_path)
    code, _, err = nv("bias", "--run", other.dir, "--device", "cpu")
    assert code == 2 and "not on the built-in 'cues' world" in err and "--conflicts" in err
    code, _, err = nv("bias", "--run", plain.dir, "--conflicts", tmp_path)
    assert code == 2 and "holds neither conflicts.csv nor stylize.csv" in err
    (tmp_path / "conflicts.csv").write_text("image,shape,texture\n../x.png,alpha,beta\n")
    code, _, err = nv("bias", "--run", plain.dir, "--conflicts", tmp_path)
    assert code == 2 and "which is not inside" in err
    (tmp_path / "conflicts.csv").write_text("image,shape,texture\nx.png,alpha,zeta\n")
    code, _, err = nv("bias", "--run", plain.dir, "--conflicts", tmp_path)
    assert code == 2 and "zeta" in err and len(err.strip().splitlines()) <= 2
    code, _, err = nv("train", "--data", "shapes", "--stylize", "0.5", "--epochs", 1, "--runs-dir", tmp_path)
    assert code == 2 and "takes no setting stylize" in err


@pytest.fixture(scope="module")
def dissected(cue_runs: dict[str, Run], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Copies of both runs, each dissected on the built-in cues probe (the default for a cues run)."""
    root = tmp_path_factory.mktemp("dissected")
    out = {}
    for name, run in cue_runs.items():
        copy = load_run(shutil.copytree(run.dir, root / name))
        options = DissectOptions(probe_count=150)
        dissect_run(copy, None, options, compute=Compute(device="cpu", batch_size=16)).save(copy.dir)
        out[name] = copy
    return out


def _shares(frame: pd.DataFrame, side: str, categories: tuple[str, ...]) -> float:
    return float(frame.loc[frame["category"].isin(categories), f"weight_share_{side}"].sum())


def test_compare_shows_the_stylised_head_moving_weight_from_texture_and_colour_to_shape(dissected: dict[str, Run],
                                                                                         nv, tmp_path: Path) -> None:
    """By concept category (the dissection's labels): the plain head puts nearly all its weight on colour and texture
    units, the stylised head far less, and some on shape (`object`) units (measured: 0.99 vs 0.55 and 0.00 vs 0.14; the
    stylised network also has fewer colour units: 57 of 112 against 106)."""
    code, _, err = nv("compare", dissected["plain"].dir, dissected["stylised"].dir, "--out", tmp_path / "cmp",
                      "--device", "cpu")
    assert code == 0, err
    categories = pd.read_csv(tmp_path / "cmp" / "compare_categories.csv")
    assert {"object", "color"} <= set(categories["category"])
    for share in ("weight_share", "unit_share"):
        assert categories[[f"{share}_a", f"{share}_b"]].sum().to_numpy() == pytest.approx([1, 1])
    style = ("color", "texture")
    assert _shares(categories, "a", style) > _shares(categories, "b", style) + 0.2, categories
    assert _shares(categories, "b", ("object",)) > _shares(categories, "a", ("object",)) + 0.05, categories
    layers = pd.read_csv(tmp_path / "cmp" / "compare.csv")  # by layer: reported (docs/case-study-2.md), not a truth
    assert layers[["pos_share_a", "pos_share_b"]].sum().to_numpy() == pytest.approx([1, 1])


def test_removing_colour_and_texture_units_hurts_the_plain_run_more(dissected: dict[str, Run], nv) -> None:
    """`nv ablate --category` agrees: without its colour and texture units (codes at their validation mean) the plain
    run falls towards chance, the stylised run keeps more of its accuracy (measured mean drops: 0.75 vs 0.11)."""
    drops = {}
    for name, run in dissected.items():
        code, out, err = nv("ablate", "--run", run.dir, "--category", "color,texture", "--category", "object",
                            "--device", "cpu", "--no-plot", "-f", "csv", "--force")
        assert code == 0, err
        frame = pd.read_csv(run.dir / "ablation.csv")
        removed = frame[frame["policy"] == "drop-category"]
        assert set(removed["category"]) == {"color+texture", "object"}
        categories = labelled_categories(run)
        assert (removed.loc[removed["category"] == "object", "k"] == (categories == "object").sum()).all()
        clean = frame[frame["policy"] == "none"].set_index("class")["accuracy"]
        style = removed[removed["category"] == "color+texture"].set_index("class")["accuracy"]
        drops[name] = float((clean - style).mean())
        assert "color+texture" in out and "object" in out  # the per-class table of the removed categories
    assert drops["plain"] > drops["stylised"] + 0.1, drops


def test_ablating_a_category_needs_the_dissection(plain: Run, nv) -> None:
    code, _, err = nv("ablate", "--run", plain.dir, "--category", "color", "--device", "cpu", "--no-plot")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 2  # the run, then the error
    assert "needs a current dissection of" in err


def test_on_a_users_stylised_images_the_stylised_run_follows_the_shape_more(cue_runs: dict[str, Run],
                                                                           tmp_path: Path) -> None:
    """The user's path: the cues world written as files, its validation images stylised with its training images
    (class folders) as styles; every content/style pair of two classes is a cue conflict (measured shape bias: 0.02
    plain, 0.48 stylised)."""
    make_cues(tmp_path / "world", CUES)
    stylize_tree(tmp_path / "world" / "val", tmp_path / "world" / "train", tmp_path / "styled")
    plain, stylised = (shape_bias(cue_runs[n], conflicts=tmp_path / "styled", compute=CPU).overall
                       for n in ("plain", "stylised"))
    assert plain.kind == "style" and plain.images > 40
    assert stylised.shape_bias > plain.shape_bias + 0.25


def test_the_report_shows_the_shape_bias_and_draws_its_figure(plain: Run, nv, tmp_path: Path) -> None:
    assert nv("bias", "--run", plain.dir, "--per-class", 5, "--device", "cpu").code == 0
    (plain.dir / "bias.png").unlink()
    assert nv("report", "--run", plain.dir, "--out", tmp_path / "page.html").code == 0
    page = (tmp_path / "page.html").read_text()
    assert "Shape bias (case study 2)" in page and "bias.csv: Per kind of conflict" in page
    assert page.count("drawn for this page") == 1 and not (plain.dir / "bias.png").exists()  # from bias.csv


def test_the_probe_draws_the_three_cues_independently(tmp_path: Path, nv) -> None:
    code, _, err = nv("data", "make", "cues-broden", "--out", tmp_path / "probe", "-D", "count=40")
    assert code == 0, err
    index = pd.read_csv(tmp_path / "probe" / "index.csv", keep_default_na=False)
    labels = pd.read_csv(tmp_path / "probe" / "label.csv", keep_default_na=False)
    categories = pd.read_csv(tmp_path / "probe" / "category.csv", keep_default_na=False)
    assert len(index) == 40 and all((index[c] != "").all() for c in ("color", "texture", "object"))
    assert set(categories["name"]) == {"color", "texture", "object"} and len(labels) == 12


def test_nv_train_stylize_is_recorded_and_a_baseline_gets_its_bias(nv, tmp_path: Path) -> None:
    code, _, err = nv("train", "--data", "cues", "--stylize", "0.5", "--baseline", "--arch", "smallcnn",
                      "--image-size", 16, "-D", "train_per_class=3", "-D", "val_per_class=2", "--epochs", 1,
                      "--name", "tiny", "--runs-dir", tmp_path)
    assert code == 0, err
    run = load_run(tmp_path / "tiny")
    assert run.config.data.options["stylize"] == 0.5 and "50% of training images" in run.config.data.cues["alpha"]
    code, out, err = nv("bias", "--run", run.dir, "--per-class", 3, "--device", "cpu", "--format", "csv")
    assert code == 0, err
    assert pd.read_csv(io.StringIO(out))["images"].tolist() == [3] * 4 + [12] + [3] * 4 + [12]
