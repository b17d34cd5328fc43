"""Typed records read what nv 0.5 wrote, and write it back unchanged: heads/<name>.json, results.json's keys and
settings, config.json's weights, a code store's manifest, checkpoint.pt's epoch rows.

The JSON literals were written by nv before its records were typed (0.5.0's formats), trimmed where long."""
from __future__ import annotations

import json
import math
import re

import pytest

from nvcli.analysis.code_store import StoreManifest
from nvcli.analysis.settings import (
    AblationOptions,
    AblationSettings,
    AttributionSettings,
    BiasSettings,
    ClassMapSettings,
    ClassWeightsSettings,
    CompareSettings,
    ConceptSettings,
    Dissection,
    ExplainSettings,
    HeadSettings,
    HeadSummarySettings,
    PathSettings,
    PerturbSettings,
    RankedSettings,
    WhereSettings,
)
from nvcli.analysis.sparse.record import Selection, SparseHeadRecord, SparseHeadSettings
from nvcli.errors import NvError
from nvcli.models.spec import WeightsRecord
from nvcli.runs.files import DENSE_HEAD, ResultKey, is_dense
from nvcli.training.engine import METRIC_COLUMNS, EpochRow

# heads/s2.json as nv 0.5 wrote it (sparse_head(...).save(run)), two of its nine classes kept.
HEAD_05 = json.loads("""{"alpha": 0.99, "dense_train_acc": 0.13333333333333333,
"dense_val_acc": 0.13333333333333333, "finetune": {"converged": true, "iterations": 297, "max_iterations": 5000,
"penalised_train_acc": 0.5611111111111111, "penalised_val_acc": 0.5111111111111111, "tol": 0.0001},
"group_corr": 0.99, "group_members": [], "groups": 112, "kept": [{"label": "conv1", "layer": 0, "node": "features.2",
"units": 3}, {"label": "conv2", "layer": 1, "node": "features.6", "units": 6}, {"label": "conv3", "layer": 2,
"node": "features.10", "units": 9}], "lambda": 0.02893197706209563, "lambda_max": 0.22400979107344057,
"made_from": {"data/train": "7b69759630f869f2723875f873935fed29d2d12b10ef763c1c33b8e0004cb405",
"data/val": "811786ad1ae74adfdd20dd0372abaaebc6246e343aebd01da0bfc4c02bf0106c",
"model.pt": "33964f1d308d1e56020567779065c46cca36eb1981a29e9cba652897e64c0c5e"}, "name": "s2",
"per_class": [{"class": "red", "dense_val_acc": 0.4, "entered": 1, "kept": [{"group_size": 1, "layer": "conv1",
"unit": 15, "weight": 194.63865661621094}, {"group_size": 1, "layer": "conv2", "unit": 30,
"weight": 122.576416015625}], "units": 2, "val_acc": 0.8}, {"class": "green", "dense_val_acc": 0.0, "entered": 1,
"kept": [{"group_size": 1, "layer": "conv3", "unit": 79, "weight": 35.11455535888672}, {"group_size": 1,
"layer": "conv3", "unit": 66, "weight": -199.63890075683594}], "units": 2, "val_acc": 1.0}],
"rule": {"units_per_class": 2}, "run": "nv", "solver": "memory", "step": 4, "train_acc": 0.5944444444444444,
"units": 18, "units_per_class_max": 2, "units_per_class_mean": 2.0, "val_acc": 0.4666666666666667,
"val_acc_min": 0.0, "weights_sha256": "2adf7f91883ce38c07c7f0c87f968c49468a33eb78b8f822627e5ba5261e8de8"}""")

# results.json's settings as nv 0.5 wrote them, by entry (the run of HEAD_05, its analyses saved by nv 0.5).
SETTINGS_05 = json.loads("""{"ablation": {"classes": ["red"], "draws": 2, "fraction": 0.01, "head": "dense",
"max_k": null, "mode": "mean", "rank": "weight", "seed": 0, "steps": 3},
"class_where/red": {"class": "red", "head": "dense"}, "eval": {"head": "dense"}, "eval@s2": {"head": "s2"},
"explain/index0": {"class": "striped", "head": "dense", "source": "validation sample 0", "top": 10},
"explain/index1@s2": {"class": "dotted", "head": "s2", "rank": "importance", "source": "validation sample 1",
"top": 10}, "head-summary@s2": {"head": "s2", "top": 10}, "head/d": {"alpha": 0.99, "finetune": true,
"group_corr": 0.99, "patience": 10, "ratio": 0.01, "rule": {"max_drop": 0.5}, "steps": 10},
"head/s2": {"alpha": 0.99, "finetune": true, "group_corr": 0.99, "patience": 10, "ratio": 0.01,
"rule": {"units_per_class": 2}, "steps": 10}, "perturb": {"channels": ["red"], "example": 0, "head": "dense"},
"weights/red@s2": {"class": "red", "head": "s2"},
"where/index0": {"class": "striped", "head": "dense", "source": "validation sample 0"}}""")

# codes/val.json as nv 0.5 wrote it (one shard; the split's digest shortened).
MANIFEST_05 = json.loads("""{"complete": true, "dtype": "float32", "fingerprint": {"classes": ["red", "green"],
"data": {"image_size": 32, "seed": 0, "train_per_class": 20, "val_per_class": 5, "world": 2}, "format": 3,
"model_sha256": "33964f1d308d1e56020567779065c46cca36eb1981a29e9cba652897e64c0c5e", "samples": "811786ad1ae74adf",
"split": "val"}, "format": "nv-code-store", "rows_per_shard": 149796, "samples": 45, "shards": [{"codes":
"val-00000.npy", "crc32": [40995865, 981009779], "index": 0, "labels": "val-00000-labels.npy", "rows": 45,
"stamp": [20288, 1796622160719734721, 1796622160731734722, 488, 1796622160727824687, 1796622160731349131],
"start": 0}], "units": 112, "version": 3}""")


def test_a_sparse_head_record_of_nv_0_5_reads_typed_and_writes_back_unchanged() -> None:
    record = SparseHeadRecord.from_json(HEAD_05, "heads/s2.json")
    assert record.to_json() == HEAD_05
    assert record.rule == Selection(units_per_class=2) and record.lambda_ == HEAD_05["lambda"]
    assert record.per_class[1].class_ == "green" and record.per_class[1].kept[1].weight == pytest.approx(-199.6389)
    assert record.finetune is not None and record.finetune.converged and record.kept[2].node == "features.10"
    assert record.made_from is not None and record.weights_sha256 == HEAD_05["weights_sha256"]


def test_a_max_drop_head_with_groups_and_a_class_without_samples_reads_back() -> None:
    values = {**HEAD_05, "rule": {"max_drop": 0.05}, "finetune": None, "group_members": [[3, 7, 0.995, 9, -0.991]],
              "per_class": [{**HEAD_05["per_class"][0], "entered": None, "val_acc": math.nan}],
              "units_per_view": {"0": 10, "1": 8}}
    record = SparseHeadRecord.from_json(values, "heads/d.json")
    assert record.rule == Selection(units_per_class=None, max_drop=0.05) and record.group_members == ((3, 7, 0.995,
                                                                                                      9, -0.991),)
    assert math.isnan(record.per_class[0].val_acc) and record.per_class[0].entered is None
    assert json.dumps(record.to_json(), sort_keys=True) == json.dumps(values, sort_keys=True)


@pytest.mark.parametrize("edit, named", [({"units_per_class_max": "ten"}, "'units_per_class_max' is 'ten'"),
                                         ({"lambda": None}, "'lambda' is None"),
                                         ({"surprise": 1}, "unknown key(s) surprise"),
                                         ({"rule": {"units_per_class": 0}}, "units_per_class 0 is not valid")])
def test_a_head_record_of_another_shape_is_refused_naming_its_key(edit: dict, named: str) -> None:
    with pytest.raises(NvError, match=re.escape(named)):
        SparseHeadRecord.from_json({**HEAD_05, **edit}, "heads/s2.json")
    missing = {k: v for k, v in HEAD_05.items() if k != "per_class"}
    with pytest.raises(NvError, match=r"heads/s2.json: missing key\(s\) per_class"):
        SparseHeadRecord.from_json(missing, "heads/s2.json")


def test_results_settings_are_the_ones_nv_0_5_wrote() -> None:
    path = PathSettings(steps=10)
    made = {"ablation": AblationSettings(DENSE_HEAD, AblationOptions(classes=("red",), steps=3, draws=2)),
            "class_where/red": ClassMapSettings("red", DENSE_HEAD), "eval": HeadSettings(DENSE_HEAD),
            "eval@s2": HeadSettings("s2"),
            "explain/index0": ExplainSettings("validation sample 0", "striped", DENSE_HEAD, 10),
            "explain/index1@s2": ExplainSettings("validation sample 1", "dotted", "s2", 10, "importance"),
            "head-summary@s2": HeadSummarySettings(10, "s2"),
            "head/d": SparseHeadSettings(path, Selection(units_per_class=None, max_drop=0.5), True),
            "head/s2": SparseHeadSettings(path, Selection(units_per_class=2), True),
            "perturb": PerturbSettings(("red",), 0, DENSE_HEAD), "weights/red@s2": ClassWeightsSettings("red", "s2"),
            "where/index0": WhereSettings("validation sample 0", "striped", DENSE_HEAD)}
    # Equal settings are what lets a result be saved again without force (results.save_files compares them).
    assert {key: settings.to_json() for key, settings in made.items()} == SETTINGS_05
    assert AblationSettings.from_json(SETTINGS_05["ablation"], "ablation") == made["ablation"]
    assert SparseHeadSettings.from_json(SETTINGS_05["head/d"], "head/d") == made["head/d"]
    assert RankedSettings(DENSE_HEAD).to_json() == {"head": "dense"}  # rank only when not the default
    assert RankedSettings(DENSE_HEAD, "importance").to_json() == {"head": "dense", "rank": "importance"}


@pytest.mark.parametrize("kind, written", [
    (AblationSettings, {"head": "dense", "classes": None, "rank": "weight", "mode": "zero", "max_k": 5, "steps": 12,
                        "draws": 10, "seed": 0, "fraction": 0.01, "categories": [["color", "texture"], ["object"]]}),
    (CompareSettings, {"runs": {"a": "nv", "b": "base@s2"}, "top": 10}),
    (CompareSettings, {"runs": {"a": "nv", "b": "nv"}, "top": 5, "rank": "importance",
                       "dirs": {"a": "/runs/nv", "b": "/other/nv"}}),
    (ConceptSettings, {"probe": "shapes", "quantile": 0.005, "iou_threshold": 0.04, "categories": None,
                       "image_size": 32, "head": "dense", "rank": "weight", "aggregate": "balanced", "top": 5}),
    (BiasSettings, {"head": "dense", "per_class": 100, "source": "built-in cue-conflict world"}),
    (AttributionSettings, {"methods": ["neuroview", "saliency"], "metrics": ["deletion"], "count": 90, "seed": 0,
                           "head": "dense", "steps": 32})])
def test_settings_the_report_reads_back_are_typed_and_written_the_same(kind: type, written: dict) -> None:
    """As nv 0.5's settings() wrote them (ablate, compare, dissect-map, bias, attribute)."""
    record = kind.from_json(written, "results.json")
    assert record.to_json() == written
    if kind is ConceptSettings:
        assert record.dissection == Dissection("shapes", 0.005, 0.04, None, 32, "dense")


def test_settings_of_another_kind_are_refused_naming_the_entry() -> None:
    with pytest.raises(NvError, match=r"ablation: unknown key\(s\) order"):
        AblationSettings.from_json({"head": "dense", "order": "weight"}, "ablation")


def test_result_keys_are_formatted_and_parsed_in_one_place() -> None:
    for key in SETTINGS_05:
        assert str(ResultKey.parse(key)) == key
    assert ResultKey.parse("weights/red@s2") == ResultKey("weights", "red", "s2")
    assert ResultKey.parse("eval@s2") == ResultKey("eval", head="s2") and ResultKey.parse("head/d").head == DENSE_HEAD
    assert str(ResultKey("eval", head=DENSE_HEAD)) == "eval" and is_dense("dense") and not is_dense("s2")


def test_config_weights_of_nv_0_5_read_typed() -> None:
    written = {"source": "timm", "name": "resnet18.a1_in1k", "resolved": "resnet18.a1_in1k",
               "url": "https://huggingface.co/timm/resnet18.a1_in1k", "file": "model.safetensors",
               "sha256": "cd" * 32, "crop_size": 224, "resize_size": 235}
    record = WeightsRecord.from_json(written, "config.json: weights")
    assert record.to_json() == written and list(record.to_json()) == list(written) and record.named
    file = {"source": "file", "name": "w.pt", "file": "/abs/w.pt", "sha256": "ab" * 32}
    assert WeightsRecord.from_json(file, "weights").to_json() == file  # unknown facts are left out, as before


def test_a_code_store_manifest_of_nv_0_5_reads_typed() -> None:
    manifest = StoreManifest.from_json(MANIFEST_05, "codes/val.json")
    assert manifest.to_json() == MANIFEST_05 and manifest.shards[0].recorded() == (MANIFEST_05["shards"][0]["stamp"],
                                                                                   [40995865, 981009779])


def test_epoch_rows_keep_metrics_csv_columns_and_read_checkpoints_of_nv_0_5() -> None:
    assert METRIC_COLUMNS == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    written = {"epoch": 3, "train_loss": 1.25, "train_acc": 0.5, "val_loss": 1.5, "val_acc": 0.4, "lr": 0.003,
               "seconds": 2.5}  # a row of checkpoint.pt's history
    assert EpochRow.from_json(written, "checkpoint.pt").to_json() == written
    with pytest.raises(NvError, match="'train_loss' is 'x'"):
        EpochRow.from_json({**written, "train_loss": "x"}, "checkpoint.pt")
