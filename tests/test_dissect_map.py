"""`nv dissect-map` end to end: the built-in probe, a trained run, and the command's files and errors."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nvcli.data.broden import BrodenProbe
from nvcli.data.registry import make_dataset
from nvcli.data.shapes import CONCEPTS, TEXTURE_CLASSES


def test_make_broden_writes_a_readable_probe_with_the_shapes_concepts(tmp_path: Path) -> None:
    make_dataset("broden", tmp_path / "p", {"image_size": 32, "count": 12})
    probe = BrodenProbe(tmp_path / "p")
    assert len(probe) == 12 and set(probe.categories) == set(CONCEPTS)
    names = {label.name for label in probe.labels.values()}
    assert set(CONCEPTS["texture"]) <= names and set(CONCEPTS["object"]) <= names


def test_dissect_map_on_a_trained_run(nv, shapes_runs: dict, tmp_path: Path) -> None:
    run = shapes_runs["nv"]
    result = nv("dissect-map", "--run", run.dir, "--probe-count", "200", "--format", "json")
    assert result.code == 0, result.err
    units = pd.read_csv(run.dir / "concepts_units.csv")
    assert list(units.columns) == ["unit", "layer", "node", "label", "channel", "concept", "category", "iou",
                                   "threshold", "interpretable"]
    assert len(units) == 112 and units["unit"].tolist() == list(range(112))
    classes = pd.read_csv(run.dir / "concepts_classes.csv")
    top_positive = classes[(classes["sign"] == "+") & (classes["rank"] <= 5)]
    # Ground truth: a texture-defined class relies on units that detect its own texture.
    hits = [t for t in TEXTURE_CLASSES
            if t in top_positive[top_positive["class"] == t]["concept"].tolist()]
    assert hits, top_positive[top_positive["class"].isin(TEXTURE_CLASSES)]
    # and colour-defined classes on units that detect their colour
    for colour in ("red", "green", "blue"):
        assert colour in top_positive[top_positive["class"] == colour]["concept"].tolist()
    assert all((run.dir / f"concepts_{c}.png").is_file() for c in run.classes)
    printed = json.loads(result.out)
    assert {row["class"] for row in printed} == set(run.classes)


def test_dissect_map_errors(nv, shapes_runs: dict, tmp_path: Path) -> None:
    run = shapes_runs["nv"]
    bad_quantile = nv("dissect-map", "--run", run.dir, "--quantile", "1.5")
    assert bad_quantile.code == 2 and "--quantile 1.5" in bad_quantile.err
    baseline = nv("dissect-map", "--run", shapes_runs["base"].dir)
    assert baseline.code == 2 and "needs a NeuroView run" in baseline.err
    missing = nv("dissect-map", "--run", run.dir, "--probe", tmp_path / "nothing")
    assert missing.code == 2 and "not found" in missing.err
    wrong_class = nv("dissect-map", "--run", run.dir, "--class", "circel")
    assert wrong_class.code == 2 and "Did you mean 'circle'" in wrong_class.err
