"""Every JSON and CSV file nv reads back from a run is checked against its schema (types, ranges, finiteness, and
agreement with the model): a hand edit ends in one line naming the file and the field, exit 2, no traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from nvcli.data.registry import data_options
from nvcli.errors import NvError

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NeuroView smallcnn trained 1 epoch on a few 32 px shapes (112 units)."""
    from nvcli.data.shapes import ShapesOptions
    from nvcli.models.spec import ModelChoice
    from nvcli.training.config import TrainConfig
    from nvcli.training.recipes import train

    options = ShapesOptions(image_size=32, train_per_class=4, val_per_class=2)
    return train(ModelChoice(arch="smallcnn"), "shapes", options, TrainConfig(epochs=1, batch_size=16, device="cpu"),
                 name="t", runs_dir=tmp_path_factory.mktemp("schema")).dir


def config(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        data = json.loads((run / "config.json").read_text())
        edit(data)
        (run / "config.json").write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them
    return apply


def csv_cell(name: str, line: int, column: str, value: str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        rows = [row.split(",") for row in (run / name).read_text().splitlines()]
        rows[line - 1][rows[0].index(column)] = value
        (run / name).write_text("\n".join(",".join(row) for row in rows) + "\n")
    return apply


def model_state(edit: Callable[[dict[str, torch.Tensor]], dict[Any, torch.Tensor]]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        torch.save(edit(torch.load(run / "model.pt", weights_only=True)), run / "model.pt")
    return apply


EVAL, WEIGHTS, RESUME = ["eval"], ["weights", "--all", "--no-plot"], ["train", "--resume"]
CASES = [  # (file, edit, command, what the one line says after the file's path)
    ("config.json", config(lambda c: c.update(units=999)), EVAL, ": 'units' is 999 but its model reads 112 codes"),
    ("config.json", config(lambda c: c.update(units=0)), WEIGHTS, ": 'units' is 0; expected an integer in [1, "),
    ("config.json", config(lambda c: c.update(units="many")), EVAL, ": 'units' is 'many'; expected int or null"),
    ("config.json", config(lambda c: c.update(weights=5)), EVAL, ": 'weights' is 5; expected dict or null"),
    ("config.json", config(lambda c: c.update(kind="baseline")), WEIGHTS,
     ": 'kind' is 'baseline' but its model section describes a neuroview model"),
    ("config.json", config(lambda c: c.update(precision="int8")), EVAL,
     ": 'precision' is 'int8'; expected one of float32, bfloat16, float16 or null"),
    ("config.json", config(lambda c: c["model"].update(mean=[0.5, NAN, 0.5])), EVAL,
     ": 'model.mean[1]' is NaN or infinite; nv reads only finite numbers"),
    ("config.json", config(lambda c: c["train"].update(lr=INF)), RESUME, ": 'train.lr' is NaN or infinite"),
    ("config.json", config(lambda c: c["data"]["info"].update(image_size=NAN)), WEIGHTS,
     ": 'data.info.image_size' is NaN or infinite"),
    ("config.json", config(lambda c: c["train"].update(lr=0)), RESUME,
     " 'train' ('lr'): learning rate 0.0 is out of range; use a positive number"),
    ("config.json", config(lambda c: c["train"].update(momentum=1.5)), EVAL,
     " 'train' ('momentum'): momentum 1.5 is out of range; use a number in [0, 1)"),
    ("config.json", config(lambda c: c["model"].update(std=[0.3, 0.3])), EVAL,
     " 'model': normalisation mean [0.3, 0.3, 0.3] / std [0.3, 0.3] does not fit 3 input channel(s)"),
    ("config.json", config(lambda c: c["model"].update(code="fuzzy")), EVAL,
     " 'model': 'code' is 'fuzzy'; expected 'soft' | 'hard' | 'raw'"),
    ("config.json", config(lambda c: c["data"].update(kind="video")), EVAL,
     " data 'kind' is 'video'; expected one of image, sound, views, sequence"),
    ("config.json", config(lambda c: c["data"]["options"].update(image_size="big")), EVAL,
     " data section: dataset 'shapes' setting: 'image_size' is 'big'; expected int"),
    ("config.json", config(lambda c: c["data"]["options"].update(train_per_class=-4)), EVAL,
     " data section: option train_per_class=-4 must be > 0"),
    ("config.json", config(lambda c: c["data"]["cues"].update(red=3)), WEIGHTS,
     " data 'cues.red' is 3; expected a text saying what defines the class"),
    ("config.json", config(lambda c: c["versions"].update(nv=4)), WEIGHTS, ": 'versions.nv' is 4; expected a version"),
    ("config.json", config(lambda c: c.update(format=True)), EVAL, " has config format 'true'"),
    ("model.pt", model_state(lambda s: {i: v for i, v in enumerate(s.values())}), EVAL,
     " does not hold a state_dict of tensors (named by text)"),
    ("model.pt", model_state(lambda s: {k: v * INF if k == "head.bias" else v for k, v in s.items()}), EVAL,
     " holds NaN or infinite values in 'head.bias'; a model with them computes nothing (train the run again)"),
    ("units.csv", csv_cell("units.csv", 2, "layer", "NaN"), WEIGHTS,
     " line 2 column 'layer' is 'NaN'; expected an integer >= 0"),
    ("units.csv", csv_cell("units.csv", 5, "channel", "-1"), WEIGHTS,
     " line 5 column 'channel' is '-1'; expected an integer >= 0"),
    ("units.csv", csv_cell("units.csv", 3, "unit", "0"), WEIGHTS,
     " line 3 column 'unit' is '0'; expected units numbered 0..111 in order"),
    ("units.csv", csv_cell("units.csv", 4, "node", " "), WEIGHTS, " line 4 column 'node' is blank"),
    ("metrics.csv", csv_cell("metrics.csv", 2, "val_acc", "abc"), RESUME,
     " line 2 column 'val_acc' is 'abc'; expected an accuracy in [0, 1] (remove the file: resuming the training "
     "writes it again from checkpoint.pt)"),
    ("metrics.csv", csv_cell("metrics.csv", 2, "val_acc", "nan"), RESUME,
     " line 2 column 'val_acc' is 'nan'; expected an accuracy in [0, 1]"),
    ("metrics.csv", csv_cell("metrics.csv", 2, "epoch", "7"), RESUME,
     " line 2 column 'epoch' is '7'; expected 1 (epochs are numbered from 1, one per line)"),
    ("metrics.csv", csv_cell("metrics.csv", 2, "lr", "-inf"), RESUME,
     " line 2 column 'lr' is '-inf'; expected a finite number"),
]


@pytest.mark.parametrize("name, edit, command, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_an_edited_run_file_is_refused_in_one_line_naming_file_and_field(nv, tiny: Path, tmp_path: Path, name: str,
                                                                          edit, command: list[str],
                                                                          message: str) -> None:
    run = shutil.copytree(tiny, tmp_path / "t")
    edit(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = nv(*command, "--run", run)
    lines = [line for line in result.err.strip().splitlines() if not line.startswith("run: ")]
    assert result.code == 2 and "Traceback" not in result.err and len(lines) == 1, result.err
    path = run.resolve() / name  # quoted, or unquoted where the section follows it ("config.json 'train'")
    assert lines[0].startswith((f"error: '{path}'{message}", f"error: {path}{message}")), lines[0]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name != ".nv-lock"} == before


def test_a_damaged_head_init_ends_in_a_whole_sentence(nv, tiny: Path, tmp_path: Path) -> None:
    run = shutil.copytree(tiny, tmp_path / "t")
    (run / "head_init.pt").write_bytes((run / "head_init.pt").read_bytes()[:100])
    result = nv(*WEIGHTS, "--run", run)
    lines = [line for line in result.err.strip().splitlines() if not line.startswith("run: ")]
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith(
        f"error: cannot read '{run.resolve() / 'head_init.pt'}' as a state_dict (RuntimeError: "), result.err
    assert lines[0].endswith("failed finding central directory); it is optional: remove it to read the run without "
                             "the head's starting weights"), lines[0]
    (run / "head_init.pt").unlink()
    assert nv(*WEIGHTS, "--run", run).code == 0


def test_a_dataset_setting_must_be_a_finite_number() -> None:
    for value in (NAN, INF):
        with pytest.raises(NvError, match=f"dataset 'sequences' setting: noise must be a finite number, got {value}"):
            data_options("sequences", {"noise": value})
    assert data_options("sequences", {"noise": 0.5}).noise == 0.5
