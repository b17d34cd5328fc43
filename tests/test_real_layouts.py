"""Every real-data layout nv reads, through the command lines docs/ show, on small trees in those layouts.

Each test gives a non-default `--image-size` and a `--classes` subset named out of order, and checks that both
reached the data: config.json records the chosen classes in the dataset's own order, the model's input shape is
that of a loaded sample, and later commands (eval's per-class rows, the views table) report exactly those classes.
Models are small where the docs' network would be slow, epochs 1; every other flag is the docs' own.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from layouts import places_fixture

from nvcli.data.broden import BrodenProbe


def trained(nv, runs: Path, name: str, *args: object, command: str = "train") -> tuple[Path, dict[str, Any]]:
    """`nv COMMAND ARGS --runs-dir RUNS --name NAME` must succeed; the run directory and its config.json."""
    result = nv(command, *args, "--runs-dir", runs, "--name", name)
    assert result.code == 0, result.err
    return runs / name, json.loads((runs / name / "config.json").read_text())


def check_data(cfg: dict[str, Any], name: str, data_dir: Path, classes: list[str], shape: list[int]) -> None:
    """config.json names the dataset, its directory and the chosen classes; the model takes samples of `shape`."""
    assert (cfg["data"]["name"], cfg["data"]["options"]["data_dir"]) == (name, str(data_dir))
    assert cfg["data"]["classes"] == classes and cfg["model"]["num_classes"] == len(classes)
    assert cfg["model"]["input_shape"] == shape  # the shape of a loaded sample: --image-size reached the loader


def per_class(nv, run_dir: Path) -> list[tuple[str, int]]:
    """`nv eval --per-class`: (class, validation samples) in the order eval prints them."""
    result = nv("eval", "--run", run_dir, "--per-class", "--format", "json")
    assert result.code == 0, result.err
    return [(row["class"], row["support"]) for row in json.loads(result.out)]


def test_imagefolder_as_reproduce_row_13(nv, tmp_path: Path) -> None:
    """reproduce.md row 13 (`--data imagefolder --data-dir DIR $R`) on a tree `nv data make shapes` wrote."""
    tree = tmp_path / "places10-stylized"
    made = nv("data", "make", "shapes", "--out", tree, "--image-size", "32", "-D", "train_per_class=3",
              "-D", "val_per_class=2")
    assert made.code == 0, made.err
    run, cfg = trained(nv, tmp_path / "runs", "nv-alexnet-stylized", "--arch", "alexnet", "--reduce", "mean",
                       "--data", "imagefolder", "--data-dir", tree, "--image-size", "40", "--epochs", "1",
                       "--batch-size", "64", "--classes", "striped,blue,circle")
    check_data(cfg, "imagefolder", tree, ["blue", "circle", "striped"], [3, 40, 40])  # the folders' sorted order
    assert per_class(nv, run) == [("blue", 2), ("circle", 2), ("striped", 2)]


def test_places365_as_reproduce_table_1_and_data_md(nv, tmp_path: Path) -> None:
    """data.md's `nv data info places10 --data-dir DIR --format json`, then reproduce.md's row 8 with $P."""
    root = tmp_path / "places365"
    places_fixture(root)
    info = nv("data", "info", "places10", "--data-dir", root, "--format", "json", "--classes", "canyon,aquarium",
              "--image-size", "24")
    assert info.code == 0, info.err
    assert [(r["class"], r["train"], r["val"]) for r in json.loads(info.out)] == [("aquarium", 3, 1), ("canyon", 3, 1)]
    run, cfg = trained(nv, tmp_path / "runs", "nv-vgg11-places", "--arch", "vgg11", "--reduce", "max",
                       "--data", "places10", "--data-dir", root, "--image-size", "32", "--epochs", "1",
                       "--batch-size", "64", "--classes", "canyon,aquarium,barn")
    check_data(cfg, "places10", root, ["aquarium", "barn", "canyon"], [3, 32, 32])  # Places365's category order
    assert cfg["model"]["arch"] == "vgg11"
    assert per_class(nv, run) == [("aquarium", 1), ("barn", 1), ("canyon", 1)]


def test_urbansound_as_sound_md_on_a_tones_tree(nv, tmp_path: Path) -> None:
    """sound.md: `nv data make tones --out DIR`, then `--data urbansound --data-dir DIR --sample-rate 16000 -D
    duration=1`, reading metadata/UrbanSound8K.csv and audio/foldK/*.wav (fold 10 validates)."""
    tree = tmp_path / "tones"
    assert nv("data", "make", "tones", "--out", tree, "-D", "per_class=10").code == 0
    run, cfg = trained(nv, tmp_path / "runs", "us", "--arch", "alexnet", "--reduce", "mean", "--data", "urbansound",
                       "--data-dir", tree, "--sample-rate", "16000", "-D", "duration=1", "--image-size", "48",
                       "--epochs", "1", "--classes", "noise_burst,low_tone,chirp_down")
    # classID order (0, 3, 4); the spectrogram (64 mels x 32 frames) resized to --image-size
    check_data(cfg, "urbansound", tree, ["low_tone", "chirp_down", "noise_burst"], [1, 48, 48])
    info = cfg["data"]["info"]
    assert (info["sample_rate"], info["duration"], info["val_fold"]) == (16000, 1.0, 10)
    assert (info["n_train"], info["n_val"]) == (27, 3)  # 3 classes x 10 clips, one per fold
    assert per_class(nv, run) == [("low_tone", 1), ("chirp_down", 1), ("noise_burst", 1)]


@pytest.mark.parametrize("doc_flags, views", [
    (["--arch", "smallcnn", "--reduce", "mean", "--views", "12"], 12),  # multiview.md (smallcnn for speed)
    (["--arch", "smallcnn", "--reduce", "mean", "--views", "4", "--shared-backbone"], 4),  # multiview.md
    (["--baseline", "--arch", "vgg11", "--views", "1"], 1),  # reproduce.md row 14
], ids=["neuroview", "shared-backbone", "baseline"])
def test_modelnet40_as_multiview_md(nv, tmp_path: Path, doc_flags: list[str], views: int) -> None:
    """`nv data make views --out DIR` (MVCNN's `<class>/{train,test}/<object>.obj.shaded_vNNN.png`), then
    `nv multiview --data modelnet40 --data-dir DIR` with the Data panel's flags."""
    tree = tmp_path / "modelnet40_images_new_12x"
    made = nv("data", "make", "views", "--out", tree, "--image-size", "40", "-D", "train_per_class=2",
              "-D", "val_per_class=1")
    assert made.code == 0, made.err
    assert len(list((tree / "cube" / "train").glob("cube_*.obj.shaded_v0[01][0-9].png"))) == 2 * 12
    run, cfg = trained(nv, tmp_path / "runs", "mv", *doc_flags, "--data", "modelnet40", "--data-dir", tree,
                       "--image-size", "32", "--epochs", "1", "--classes", "sphere,cube,cone", command="multiview")
    check_data(cfg, "modelnet40", tree, ["cone", "cube", "sphere"], [3, 32, 32])  # the class folders' sorted order
    assert cfg["model"]["views"] == views
    assert cfg["data"]["info"]["view_numbers"] == list(range(1, 13, 12 // views))  # evenly: v001, v004, ...
    assert cfg["model"]["shared_backbone"] == ("--shared-backbone" in doc_flags)
    assert per_class(nv, run) == [("cone", 1), ("cube", 1), ("sphere", 1)]
    if "--baseline" not in doc_flags:
        table = pd.read_csv(run / "views.csv")
        assert list(dict.fromkeys(table["class"])) == ["cone", "cube", "sphere"]
        assert sorted(table["view"].unique()) == list(range(views))


def test_broden_probe_as_dissect_md(nv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dissect.md: `nv data make broden --out DIR` (index.csv, category/label CSVs, PNG masks), then
    `nv dissect-map --run RUN --probe DIR --image-size S --class C` on a run trained on Places365's layout."""
    root = tmp_path / "places365"
    places_fixture(root)
    run, _ = trained(nv, tmp_path / "runs", "places", "--arch", "smallcnn", "--data", "places10", "--data-dir", root,
                     "--image-size", "32", "--epochs", "1", "--classes", "barn,ballroom")
    probe = tmp_path / "broden"
    made = nv("data", "make", "broden", "--out", probe, "--image-size", "16", "-D", "count=12")
    assert made.code == 0, made.err
    for name in ("index.csv", "category.csv", "label.csv", "c_color.csv", "c_texture.csv", "c_object.csv"):
        assert (probe / name).is_file(), name
    index = pd.read_csv(probe / "index.csv")
    assert set(index["ih"]) == set(index["iw"]) == {32} and len(index) == 12  # objects at 16 px on a 32 px canvas
    seen: list[tuple[int, ...]] = []
    image = BrodenProbe.image

    def spy(self: BrodenProbe, i: int) -> torch.Tensor:
        x = image(self, i)
        seen.append(tuple(x.shape))
        return x

    monkeypatch.setattr(BrodenProbe, "image", spy)
    result = nv("dissect-map", "--run", run, "--probe", probe, "--image-size", "48", "--class", "ballroom",
                "--format", "json")
    assert result.code == 0, result.err
    assert seen and set(seen) == {(3, 48, 48)}  # resized for the network (the run's own side is 32)
    settings = json.loads((run / "results.json").read_text())["results"]
    (entry,) = [v["settings"] for v in settings.values() if "probe" in v.get("settings", {})]
    assert entry["probe"] == str(probe) and entry["image_size"] == 48
    units = pd.read_csv(run / "concepts_units.csv")
    assert len(units) == len(pd.read_csv(run / "units.csv"))
    assert set(units["category"].dropna()) <= {"color", "texture", "object"}
    classes = pd.read_csv(run / "concepts_classes.csv")
    assert set(classes["class"]) <= {"ballroom", "barn"}
    assert [p.name for p in run.glob("concepts_*.png")] == ["concepts_ballroom.png"]
