"""docs/api.md's examples, run in order on a model trained by their own loop: objects in, typed results out, and
no file written before the probe and the run are asked for."""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

import nvcli
from nvcli.analysis.code_cache import ArrayStore, Codes
from nvcli.errors import NvError

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def _written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def api_doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The namespace docs/api.md's examples leave, run in an empty folder; with what each block wrote."""
    folder = tmp_path_factory.mktemp("api-doc")
    namespace: dict = {}
    written = []
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for block in _blocks():
            exec(compile(block, str(DOC), "exec"), namespace)
            written.append(_written(folder))
    finally:
        os.chdir(cwd)
    namespace["__written__"], namespace["__folder__"] = written, folder
    return namespace


def test_nothing_is_written_until_the_probe_and_the_run_are_asked_for(api_doc: dict) -> None:
    blocks, written = _blocks(), api_doc["__written__"]
    first_writer = next(i for i, b in enumerate(blocks) if "write_probe(" in b)
    assert len(blocks) == 4 and first_writer == 3
    assert all(files == [] for files in written[:first_writer]), written
    assert "runs/mine/model.pt" in written[-1] and "runs/mine/perturb.csv" in written[-1]


def test_results_are_the_ones_the_commands_make(api_doc: dict) -> None:
    """The model's own numbers, recomputed here by hand: codes, accuracy under no perturbation, one class's weights."""
    model, data, codes = api_doc["model"], api_doc["data"], api_doc["codes"]
    model.eval()
    with torch.no_grad():
        x = torch.stack([data.val[i][0] for i in range(len(data.val))])
        z = model.features(x).numpy()
        predicted = model(x).argmax(1).numpy()
    labels = [int(data.val[i][1]) for i in range(len(data.val))]
    assert abs(codes.z - z).max() < 1e-5 and list(codes.labels) == labels
    overall = api_doc["overall"].set_index("condition")
    assert overall.loc["none", "accuracy"] == pytest.approx((predicted == labels).mean())
    red = api_doc["red"].to_frame()
    row = model.head.weight[data.classes.index("red")].detach().double().numpy()
    assert red["weight"].to_numpy() == pytest.approx(row)
    assert api_doc["abl"].accuracy == pytest.approx((predicted == labels).mean())
    sparse = api_doc["sparse"]
    per_class = (sparse.head.weight != 0).sum(axis=1)
    assert per_class.max() <= 5 and sparse.record.units_per_class_max == per_class.max()
    assert abs(sparse.record.val_acc - _accuracy(api_doc["codes"], sparse.head)) < 1e-6
    units = api_doc["dis"].units
    assert len(units) == model.codes.num_units and units["concept"].notna().any()


def _accuracy(codes, head) -> float:
    """A head's accuracy on codes, by hand."""
    logits = codes.z.astype("float64") @ head.weight.T + head.bias
    return float((logits.argmax(1) == codes.labels).mean())


def test_a_saved_run_works_with_the_commands_and_results_check_their_weights(api_doc: dict, nv) -> None:
    run, model, per = api_doc["run"], api_doc["model"], api_doc["per"]
    result = nv("eval", "--run", run.dir, "--format", "json")
    assert result.code == 0, result.err
    # Where the head started is unknown: the trained head saved as its start would claim training moved nothing.
    assert not (run.dir / "head_init.pt").exists()
    weights = nv("weights", "--run", run.dir, "--all", "--no-plot")
    assert weights.code == 0 and "random start" not in weights.err, weights.err
    result = nv("eval", "--run", run.dir, "--head", "sparse5", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)[0]["accuracy"] == pytest.approx(api_doc["sparse"].record.val_acc, abs=1e-6)
    saved = pd.read_csv(run.dir / "perturb.csv")
    pd.testing.assert_frame_equal(saved, per.to_frame(), check_dtype=False)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.head.bias += 1.0
    moved = nvcli.perturb(other, api_doc["val"], classes=api_doc["classes"])
    with pytest.raises(NvError, match="computed from other weights"):
        moved.save(run, force=True)
    assert pd.read_csv(run.dir / "perturb.csv").equals(saved)  # the refused save wrote nothing


def test_objects_in_errors_name_the_parameter(api_doc: dict, tmp_path: Path) -> None:
    model, data = api_doc["model"], api_doc["data"]
    with pytest.raises(NvError) as caught:
        nvcli.ablate(model)
    assert caught.value.params == ("data",)
    with pytest.raises(NvError) as caught:
        nvcli.save(model, tmp_path / "mine", data=data, arch="alexnet")
    assert caught.value.params == ("arch",) and "does not rebuild" in str(caught.value)
    assert not (tmp_path / "mine").exists()
    with pytest.raises(NvError) as caught:
        nvcli.codes(torch.nn.Linear(2, 2), api_doc["val"])
    assert caught.value.params == ("model",)
    headless = Codes("val", ArrayStore(api_doc["codes"].z, api_doc["codes"].labels))  # as read from a run's store
    with pytest.raises(NvError) as caught:
        nvcli.ablate(headless)
    assert caught.value.params == ("head",)
    with pytest.raises(NvError) as caught:
        nvcli.sparsify(api_doc["train_codes"], headless)
    assert caught.value.params == ("train", "val")


def test_every_result_kind_names_its_main_table() -> None:
    """`to_frame()` works on every result kind: a `main_table` field of the dataclass, or its own `to_frame`."""
    import dataclasses
    import importlib
    import pkgutil

    import nvcli.analysis
    from nvcli.runs.results import RunResult

    for module in pkgutil.walk_packages(nvcli.analysis.__path__, "nvcli.analysis."):
        importlib.import_module(module.name)
    kinds, seen = [RunResult], []
    while kinds:
        for sub in kinds.pop().__subclasses__():
            kinds.append(sub)
            seen.append(sub)
    assert len(seen) >= 16
    for kind in seen:
        fields = {f.name for f in dataclasses.fields(kind)}
        assert "to_frame" in vars(kind) or kind.main_table in fields, kind.__name__
