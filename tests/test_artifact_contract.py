"""The artifact contract: every kind of saved result is checked where it is read, whatever happened to it since.

Generated from the artifact registry (`nvcli.runs.files.artifacts()`): every kind of result file must be made by
one of PRODUCERS (a new kind without a producer fails `test_every_artifact_kind_is_made_here`), and then every file
of every saved result is edited, truncated and replaced by another result's file; the weights under it change; its
data change; its record's fields get wrong types or NaN. Each must end in a one-line refusal, a recomputation, or a
visible stale mark in `nv report`, never in a stale result shown as current.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import torch

from nvcli.cli.app import run as nv_main
from nvcli.data.registry import make_dataset
from nvcli.runs import files
from nvcli.runs.results import read_manifest

SIZE = 32
PAGES = (files.REPORT, files.REPORT_SIDE_BY_SIDE)  # the report itself: a page, not a result
RUNS = {  # the runs the producers write into, each trained for one epoch by `nv train` / `nv multiview`
    "image": ["train", "--arch", "smallcnn", "--data", "imagefolder", "--image-size", SIZE, "--epochs", 2],
    "cues": ["train", "--arch", "smallcnn", "--data", "cues", "--image-size", SIZE, "--epochs", 1,
             "-D", "train_per_class=20", "-D", "val_per_class=10"],
    "views": ["multiview", "--data", "views", "--image-size", SIZE, "--epochs", 1, "--arch", "smallcnn",
              "-D", "train_per_class=2", "-D", "val_per_class=1"],
    "gru": ["train", "--arch", "gru", "--hidden-size", 8, "--data", "sequences", "--epochs", 1,
            "-D", "length=16", "-D", "train_per_class=10", "-D", "val_per_class=5"],
}
PRODUCERS: list[tuple[str, list[object]]] = [  # (run, the command that saves a result into it)
    ("image", ["eval"]),
    ("image", ["weights", "--class", "red"]),
    ("image", ["weights", "--all"]),
    ("image", ["perturb", "--channel", "red"]),
    ("image", ["explain", "--index", 0]),
    ("image", ["explain", "--index", 0, "--where"]),
    ("image", ["explain", "--where", "--class", "red"]),
    ("image", ["dissect-map", "--probe-count", 18]),
    ("image", ["ablate", "--max-k", 4, "--steps", 2, "--draws", 2]),
    ("image", ["attribute", "--count", 9]),
    ("image", ["sparsify", "--steps", 3, "--units-per-class", 3, "--name", "s"]),
    ("image", ["eval", "--head", "s"]),
    ("image", ["weights", "--class", "red", "--head", "s"]),
    ("image", ["compare", "{image}", "{image}", "--head", "dense", "--head", "s"]),
    ("cues", ["bias", "--per-class", 4]),
    ("gru", ["weights", "--by", "time"]),
    ("gru", ["explain", "--index", 0]),
]
READS_VAL = {"eval", "perturb", "explain", "where", "class_where", "ablation", "sparse-path", "head", "compare",
             "attribution"}  # the kinds computed from the validation data


def nv(*args: object) -> tuple[int, str, str]:
    """`nv ARGS` in this process, as the console script runs it: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["nv", *map(str, args)]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                nv_main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def _produce(root: Path, which: str, words: list[object]) -> None:
    run_dir = root / which
    words = [str(w).format(image=root / "image") for w in words]
    command = words if words[0] == "compare" else [words[0], "--run", run_dir, *words[1:]]
    code, _, err = nv(*command, "--force")
    assert code == 0, f"nv {' '.join(map(str, command))}: {err}"


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every producer's result, saved in the runs it reads (about a minute on two cores)."""
    root = tmp_path_factory.mktemp("contract")
    tree = make_dataset("shapes", root / "shapes", {"image_size": SIZE, "train_per_class": 20, "val_per_class": 6})
    for name, words in RUNS.items():
        extra = ["--data-dir", tree] if name == "image" else []
        code, _, err = nv(*words, *extra, "--threads", 1, "--name", name, "--runs-dir", root)
        assert code == 0, err
    for which, words in PRODUCERS:
        _produce(root, which, words)
    return root


@pytest.fixture
def runs(produced: Path, tmp_path: Path) -> Path:
    """A private copy of the produced runs (the image run still reads the data tree it was trained on)."""
    for run in RUNS:
        shutil.copytree(produced / run, tmp_path / run)
    return tmp_path


def _folders(run_dir: Path) -> list[Path]:
    """The run and each result folder inside it (compare_<other>/) with a results.json."""
    return [run_dir] + sorted(p.parent for p in run_dir.glob(f"*/{files.RESULTS}"))


def _entries(root: Path) -> dict[tuple[str, str], tuple[Path, dict]]:
    """(run, entry key) -> (the folder whose results.json lists it, the entry), over every run."""
    return {(run, key if folder.name == run else f"{folder.name}:{key}"): (folder, entry)
            for run in RUNS for folder in _folders(root / run) for key, entry in read_manifest(folder).items()}


def _marks(root: Path, run: str) -> dict[str, str]:
    """The stale marks of run `run`'s report page: {entry key: the mark's text}."""
    code, _, err = nv("report", "--run", root / run)
    assert code == 0, err
    page = (root / run / files.REPORT.name()).read_text()
    marks = {}
    for piece in page.split('<div class="stale" data-stale="')[1:]:
        key, _, rest = piece.partition('">')
        marks[key] = rest[:rest.index("</div>")]
    return marks


def test_every_artifact_kind_is_made_here(produced: Path) -> None:
    made = [name for (_, _), (_, entry) in _entries(produced).items() for name in entry["files"]]
    missing = [a.pattern + a.suffix for a in files.artifacts() if a not in PAGES
               and not any(fnmatchcase(Path(n).name if "/" not in a.pattern else n, a.glob()) for n in made)]
    assert not missing, f"no producer in this test makes {missing}: add one to PRODUCERS"


def test_current_results_carry_no_stale_mark(produced: Path) -> None:
    for run in RUNS:
        assert _marks(produced, run) == {}, run
    assert all(entry.get("made_from") and entry.get("digests") for _, entry in _entries(produced).values())


def _edit(path: Path, others: list[Path]) -> None:
    path.write_bytes(path.read_bytes() + b"\n0\n")


def _truncate(path: Path, others: list[Path]) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _swap(path: Path, others: list[Path]) -> None:
    """Replace the file by another result's file of its type (another run's results, copied in), or of another type
    where no other result has one (heads/<name>.json)."""
    data = path.read_bytes()
    differ = [o for o in others if o.read_bytes() != data]
    shutil.copyfile(next((o for o in differ if o.suffix == path.suffix), differ[0]), path)


@pytest.mark.parametrize("damage", [_edit, _truncate, _swap], ids=["edited", "truncated", "replaced"])
def test_every_damaged_file_marks_its_result_stale(runs: Path, damage) -> None:
    entries = _entries(runs)
    every_file = [folder / n for folder, entry in entries.values() for n in entry["digests"]]
    for folder, entry in entries.values():
        for name in entry["digests"]:
            damage(folder / name, every_file)
    for run in RUNS:
        marks = _marks(runs, run)
        for (owner, key), (folder, entry) in entries.items():
            if owner != run:
                continue
            shown = key.partition(":")[2] or key
            assert shown in marks, f"{run}: {key} is shown as current after its files were {damage.__name__}"
            for name in entry["digests"]:
                assert name in marks[shown], (key, name, marks[shown])
    code, _, err = nv("eval", "--run", runs / "image", "--head", "s")  # the damaged head is refused
    assert code == 2 and err.count("\n") == 2 and "heads/s." in err, err


def test_other_weights_mark_every_result_refuse_sparse_heads_and_recompute(runs: Path) -> None:
    for run in RUNS:
        state = torch.load(runs / run / files.MODEL, weights_only=True)
        state["head.bias"] = state["head.bias"] + 1.0
        torch.save(state, runs / run / files.MODEL)
    entries = _entries(runs)
    for run in RUNS:
        marks = _marks(runs, run)
        for (owner, key) in entries:
            if owner == run:
                shown = key.partition(":")[2] or key
                assert "model.pt changed since" in marks.get(shown, ""), (run, key, marks.get(shown))
    code, _, err = nv("eval", "--run", runs / "image", "--head", "s")
    assert code == 2 and "was fitted on other weights" in err, err
    for which, words in PRODUCERS:  # each result made again from the present weights is current again
        _produce(runs, which, words)
    for run in RUNS:
        if run != "views":  # its views result is made by training alone
            assert _marks(runs, run) == {}, run


def test_changed_data_marks_exactly_the_results_made_from_it(runs: Path, produced: Path) -> None:
    images = sorted((produced / "shapes" / "val").glob("*/*.png"))
    kept = images[0].read_bytes(), images[0].stat()
    try:
        shutil.copyfile(images[-1], images[0])  # another image in its place
        marks = _marks(runs, "image")
    finally:  # the tree as it was, modification time included (the other tests read it)
        images[0].write_bytes(kept[0])
        os.utime(images[0], ns=(kept[1].st_atime_ns, kept[1].st_mtime_ns))
    entries = {key: entry for (run, key), (_, entry) in _entries(runs).items() if run == "image"}
    read_val = {key.partition(":")[2] or key for key, entry in entries.items() if "data/val" in entry["made_from"]}
    kinds = {key.split("/")[0].split("@")[0] for key in read_val}
    assert kinds == READS_VAL  # ground truth: the kinds that read the validation split, and no other
    assert set(marks) == read_val, (sorted(marks), sorted(read_val))
    assert all("the val data changed since" in text for text in marks.values())


WRONG = {"int": 123, "nan": float("nan"), "list": ["x"], "string": "text"}
VALID = {("command", "string"), ("written", "string"), ("made_from", "string"), ("digests", "string"),
         ("files", "list")}  # of the field's type (a digest is a string; files a list of names)
WRONG_FIELDS = [(field, kind) for field in ("settings", "files", "command", "written", "made_from", "digests")
                for kind in WRONG if (field, kind) not in VALID]


@pytest.mark.parametrize("field, kind", WRONG_FIELDS, ids=[f"{f}-{k}" for f, k in WRONG_FIELDS])
def test_a_results_record_of_wrong_types_is_refused_in_one_line(runs: Path, field: str, kind: str) -> None:
    value = WRONG[kind]
    path = runs / "image" / files.RESULTS
    record = json.loads(path.read_text())
    key = next(iter(record["results"]))
    entry = record["results"][key]
    wrong = {"settings": value, "files": value, "command": value, "written": value,
             "made_from": {files.MODEL: value}, "digests": {files.EVAL.name(): value}}[field]
    entry[field] = wrong
    path.write_text(json.dumps(record))
    before = path.read_bytes()
    for command in (["report"], ["eval"]):  # a reader and a writer of results.json
        code, out, err = nv(*command, "--run", runs / "image")
        lines = [line for line in err.splitlines() if not line.startswith("run: ")]
        assert code == 2 and len(lines) == 1 and "results.json" in lines[0] and field in lines[0], err
        assert "Traceback" not in err and path.read_bytes() == before
