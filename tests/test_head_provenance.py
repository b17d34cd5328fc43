"""A sparse head belongs to the weights it was fitted on, and no head that breaks its own rule is ever saved."""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import trained_copy

from nvcli.analysis.head import read_head
from nvcli.analysis.settings import Compute
from nvcli.analysis.sparse.path import PathSettings
from nvcli.analysis.sparse.selection import Selection
from nvcli.analysis.sparse.sparsify import fit_path, sparse_head
from nvcli.errors import NvError
from nvcli.runs import files
from nvcli.runs.results import read_manifest
from nvcli.runs.run import Run, load_run

CPU = Compute(device="cpu")
FAST = PathSettings(steps=3)


@pytest.fixture(scope="module")
def two_runs(shapes_runs: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Two copies of the trained run, B's weights nudged (another run of the same architecture), each with a
    three-unit head `h`."""
    root = tmp_path_factory.mktemp("heads")
    runs = {name: trained_copy(shapes_runs, root / name) for name in ("a", "b")}
    state = torch.load(runs["b"].dir / files.MODEL, weights_only=True)
    state["head.weight"] = state["head.weight"] * 1.01
    torch.save(state, runs["b"].dir / files.MODEL)
    runs["b"] = load_run(runs["b"].dir)
    for run in runs.values():
        sparse_head(fit_path(run, FAST, compute=CPU), "h", Selection(units_per_class=3)).save(run)
    return runs


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(run: Run, to: Path) -> Run:
    return load_run(shutil.copytree(run.dir, to))


def _refused(run: Run, head: str, words: str) -> None:
    with pytest.raises(NvError, match=words):
        read_head(load_run(run.dir), head)


def test_a_head_reads_back_with_the_weights_it_was_fitted_on(two_runs: dict[str, Run]) -> None:
    run = two_runs["a"]
    record = json.loads((run.dir / "heads" / "h.json").read_text())
    assert record["made_from"]["model.pt"] == _sha256(run.dir / "model.pt")  # hashed here, not by nv
    assert record["weights_sha256"] == _sha256(run.dir / "heads" / "h.pt")
    assert set(record["made_from"]) == {"model.pt", "data/train", "data/val"}
    assert read_head(run, "h").weight.shape == (len(run.classes), len(run.units()))


def test_a_head_copied_from_another_run_is_refused(two_runs: dict[str, Run], tmp_path: Path) -> None:
    a = _copy(two_runs["a"], tmp_path / "a")
    for suffix in (".pt", ".json"):
        shutil.copyfile(two_runs["b"].dir / "heads" / f"h{suffix}", a.dir / "heads" / f"foreign{suffix}")
    fitted, present = _sha256(two_runs["b"].dir / files.MODEL)[:12], _sha256(a.dir / files.MODEL)[:12]
    _refused(a, "foreign", r"head 'foreign' was fitted on other weights than run 'a' has: .*records model.pt "
             rf"{fitted}, the run's model.pt is {present}")


def test_a_head_whose_run_was_trained_on_since_is_refused(two_runs: dict[str, Run], tmp_path: Path) -> None:
    a = _copy(two_runs["a"], tmp_path / "a")
    shutil.copyfile(two_runs["b"].dir / files.MODEL, a.dir / files.MODEL)
    _refused(a, "h", "was fitted on other weights")


def test_weights_swapped_under_their_record_are_refused(two_runs: dict[str, Run], tmp_path: Path) -> None:
    a = _copy(two_runs["a"], tmp_path / "a")
    shutil.copyfile(two_runs["b"].dir / "heads" / "h.pt", a.dir / "heads" / "h.pt")
    _refused(a, "h", r"heads/h.pt' is not the head saved with")


@pytest.mark.parametrize("edit", ["no record", "no made_from", "made_from of numbers"])
def test_a_head_without_a_usable_record_is_refused(two_runs: dict[str, Run], tmp_path: Path, edit: str) -> None:
    a = _copy(two_runs["a"], tmp_path / "a")
    path = a.dir / "heads" / "h.json"
    record = json.loads(path.read_text())
    if edit == "no record":
        path.unlink()
    else:
        record["made_from"] = None if edit == "no made_from" else {"model.pt": 1.5}
        path.write_text(json.dumps(record))
    _refused(a, "h", "has no record" if edit == "no record" else "does not record the model.pt")


@pytest.mark.parametrize("edit, words", [({"per_class": "x"}, r"heads/h.json': 'per_class' is 'x'; expected"),
                                         ({"units": 3, "unit_count": 3}, r"unknown key\(s\) unit_count"),
                                         ({"group_members": [[0, "one"]]}, "'group_members' is")])
def test_a_head_record_edited_out_of_its_shape_is_refused_naming_the_key(two_runs: dict[str, Run], tmp_path: Path,
                                                                          edit: dict, words: str) -> None:
    """Its provenance intact: the record as a whole is read typed (`SparseHeadRecord`), not only the keys used."""
    a = _copy(two_runs["a"], tmp_path / "a")
    path = a.dir / "heads" / "h.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    _refused(a, "h", words)


def test_the_cli_refuses_a_foreign_head_in_one_line(two_runs: dict[str, Run], tmp_path: Path, nv) -> None:
    a = _copy(two_runs["a"], tmp_path / "a")
    for suffix in (".pt", ".json"):
        shutil.copyfile(two_runs["b"].dir / "heads" / f"h{suffix}", a.dir / "heads" / f"foreign{suffix}")
    for command in (["eval"], ["weights", "--class", "red"], ["explain", "--index", "0"]):
        result = nv(*command, "--run", a.dir, "--head", "foreign")
        assert result.code == 2 and "was fitted on other weights" in result.err and "Traceback" not in result.err
        assert len(result.err.strip().splitlines()) == 2  # the run line, then the one-line error
    assert not list(a.dir.glob("*@foreign*"))


def test_a_head_over_its_budget_is_never_saved(two_runs: dict[str, Run], tmp_path: Path) -> None:
    a = _copy(two_runs["a"], tmp_path / "a")
    made = sparse_head(fit_path(a, FAST, compute=CPU), "over", Selection(units_per_class=3))
    weight = made.head.weight.copy()
    weight[1, :5] = 0.5  # class 1 now rests on more units than its rule allows, as a faulty solver could leave it
    broken = replace(made, head=replace(made.head, weight=weight))
    with pytest.raises(NvError, match=r"breaks its rule of at most 3 units per class: green \(\d+\)"):
        broken.save(a)
    nan = replace(made, head=replace(made.head, bias=np.full_like(made.head.bias, np.nan)))
    with pytest.raises(NvError, match="NaN or infinite"):
        nan.save(a)
    assert not (a.dir / "heads" / "over.pt").exists() and "head/over" not in read_manifest(a.dir)
    made.save(a)  # the head as the solver left it keeps its budget
    assert (np.count_nonzero(read_head(load_run(a.dir), "over").weight, axis=1) <= 3).all()
