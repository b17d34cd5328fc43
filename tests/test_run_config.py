"""RunConfig: config.json as nv writes it reads back unchanged; older formats upgrade; damage is named."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from nvcli.data.shapes import ShapesOptions
from nvcli.errors import NvError
from nvcli.models.spec import ModelChoice
from nvcli.runs.config import CONFIG_FORMAT, RunConfig
from nvcli.runs.run import load_run
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import convert, train

TINY = ShapesOptions(image_size=32, train_per_class=4, val_per_class=2)
HEAD_SETTINGS = ("head_init_scale", "head_lr_scale", "head_weight_decay", "head_l1", "head_warmup")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run directories as today's nv writes them: a trained NeuroView run, a trained baseline, a converted run."""
    root = tmp_path_factory.mktemp("run-config")
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    runs = {"trained": train(ModelChoice(arch="smallcnn"), "shapes", TINY, cfg, name="trained", runs_dir=root).dir,
            "base": train(ModelChoice(arch="smallcnn", baseline=True), "shapes", TINY, cfg, name="base",
                          runs_dir=root).dir}
    runs["converted"] = convert(ModelChoice(arch="smallcnn"), classes=["cat", "dog", "owl"], image_size=32,
                                name="converted", runs_dir=root)[0]
    return runs


def _raw(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "config.json").read_text())


# config.json of a trained and of a converted run, as nv wrote them before RunConfig (commit 07ce060), same
# settings as the `written` fixture's "trained" and "converted" runs.
WRITTEN_BEFORE = Path(__file__).parent / "configs"


@pytest.mark.parametrize("name", ["trained", "converted"])
def test_config_written_before_round_trips_byte_for_byte(name: str) -> None:
    text = (WRITTEN_BEFORE / f"{name}.json").read_text()
    config = RunConfig.from_dict(json.loads(text))
    assert json.dumps(config.to_json(), indent=2, sort_keys=True) + "\n" == text  # as write_json writes it


@pytest.mark.parametrize("name, before", [("trained", "trained"), ("base", None), ("converted", "converted")])
def test_config_written_today_round_trips_as_before(written: dict[str, Path], name: str, before: str | None) -> None:
    raw = _raw(written[name])
    assert RunConfig.from_dict(raw).to_json() == raw
    assert load_run(written[name]).config == RunConfig.from_dict(raw)
    if before:  # the same run written by the nv before RunConfig: the same file, but for when and on what
        old = json.loads((WRITTEN_BEFORE / f"{before}.json").read_text())
        assert {**raw, "created": None, "versions": None} == {**old, "created": None, "versions": None}


def test_fields_are_typed(written: dict[str, Path]) -> None:
    trained, baseline, converted = (load_run(written[n]).config for n in ("trained", "base", "converted"))
    assert isinstance(trained.train, TrainConfig) and trained.train.epochs == 1 and trained.precision == "float32"
    assert trained.model.arch == "smallcnn" and trained.kind == "neuroview" and trained.units == 112
    assert trained.data.name == "shapes" and trained.data.kind == "image" and trained.data.options["world"] == 2
    assert set(trained.data.cues) == set(trained.data.classes) and trained.versions["nv"]
    assert baseline.units is None and baseline.kind == "baseline"
    assert converted.train is None and converted.precision is None and converted.data.name is None
    assert converted.data.classes == ("cat", "dog", "owl") and converted.data.kind is None
    assert "kind" not in converted.to_json()["data"] and converted.to_json()["train"] == {}


def _as_old(config: dict[str, Any], fmt: int) -> dict[str, Any]:
    """`config` as nv wrote it in format `fmt`: no head settings and no shapes world; format 1 also model 'extra'
    and no 'threads'."""
    old = copy.deepcopy(config)
    if old["train"]:
        for key in HEAD_SETTINGS:
            del old["train"][key]
        if fmt == 1:
            del old["train"]["threads"]
    old["data"]["options"].pop("world", None)
    if fmt == 1:
        old["model"]["extra"] = {}
    return {**old, "format": fmt}


@pytest.mark.parametrize("fmt", [1, 2])
def test_older_formats_upgrade_to_what_they_trained_with(written: dict[str, Path], fmt: int) -> None:
    raw = _raw(written["trained"])
    config = RunConfig.from_dict(_as_old(raw, fmt))
    assert config.format == CONFIG_FORMAT == 3
    assert [getattr(config.train, k) for k in HEAD_SETTINGS] == [1.0, 1.0, None, 0.0, 0]
    assert config.data.options["world"] == 1  # shapes world 1: the images those runs saw
    assert config.train.threads is None if fmt == 1 else config.train.threads == raw["train"]["threads"]
    written_back = config.to_json()
    assert "extra" not in written_back["model"] and written_back["format"] == 3
    assert written_back["model"] == raw["model"] and written_back["train"]["epochs"] == raw["train"]["epochs"]
    # A converted run of an older format stays untrained.
    converted = RunConfig.from_dict(_as_old(_raw(written["converted"]), fmt))
    assert converted.train is None and converted.to_json()["train"] == {} and converted.data.options == {}


def test_the_current_format_reads_unchanged(written: dict[str, Path]) -> None:
    raw = _raw(written["trained"])
    assert raw["format"] == CONFIG_FORMAT and RunConfig.from_dict(raw).data.options["world"] == 2


def _set(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        (config[section] if section else config)[key] = value
    return edit


DAMAGE = [
    (lambda c: c.pop("model"), "has no valid 'model' section"),
    (_set("", "train", []), "has no valid 'train' section"),
    (_set("", "format", 0), "has config format 0"),
    (_set("train", "lr", "fast"), "config.json 'train': 'lr' is 'fast'; expected float"),
    (lambda c: c["train"].pop("epochs"), "config.json 'train': missing key(s) epochs"),
    (_set("model", "colour", "red"), "config.json 'model': unknown key(s) colour"),
    (_set("model", "num_classes", 5), "says num_classes=5 but lists 9 classes"),
    (_set("data", "classes", "abc"), "data section needs a 'classes' list of names"),
    (lambda c: c["data"].pop("name"), "data section needs a 'name'"),
    (_set("data", "options", [1]), "data 'options' must be a JSON object"),
    (_set("data", "info", "x"), "data 'info' must be a JSON object"),
    (_set("data", "kind", 3), "data 'kind' must be a name"),
    (_set("", "units", "many"), "'units' is 'many'; expected int or null"),
    (_set("", "precision", 16), "'precision' is 16; expected str or null"),
]


@pytest.mark.parametrize("edit, message", DAMAGE, ids=[m.split(";")[0][:40] for _, m in DAMAGE])
def test_a_damaged_config_is_refused_naming_the_key(written: dict[str, Path], edit: Callable, message: str) -> None:
    config = _raw(written["trained"])
    edit(config)
    with pytest.raises(NvError) as info:
        RunConfig.from_dict(config, "runs/trained/config.json")
    assert message in str(info.value) and "\n" not in str(info.value)
    if "config.json '" not in message:  # the model and train sections name their section, the rest the file
        assert "'runs/trained/config.json'" in str(info.value)


def test_reading_a_config_loads_neither_torch_nor_pandas() -> None:
    code = ("import sys\nfrom nvcli.runs.config import RunConfig\n"
            f"RunConfig.from_dict(__import__('json').loads(open({str(WRITTEN_BEFORE / 'trained.json')!r}).read()))\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'pandas', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
