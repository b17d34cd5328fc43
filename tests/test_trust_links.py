"""A run directory is untrusted input (issue 21): nv never reads, writes or deletes through a link, FIFO or device
inside it, removes only the files it wrote, and refuses results that would be silently wrong.

Security cases plant a user's file outside the run and check it was not read (its content is in nothing nv wrote),
not written and not deleted. Every test works on its own copy of one tiny trained run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import save_head
from PIL import Image

from nvcli.data.shapes import ShapesOptions
from nvcli.errors import NvError
from nvcli.fs import access
from nvcli.models.spec import ModelChoice
from nvcli.runs import files
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import train

SECRET = "the user's secret 7f3a"
CPU = ["--device", "cpu"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny shapes run (1 epoch), evaluated, with its codes cached; each test copies it."""
    root = tmp_path_factory.mktemp("links")
    data = ShapesOptions(image_size=32, train_per_class=4, val_per_class=2)
    run = train(ModelChoice(arch="smallcnn"), "shapes", data, TrainConfig(epochs=1, batch_size=16, device="cpu"),
                name="r", runs_dir=root)
    return run.dir


@pytest.fixture
def run(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "runs" / "r", symlinks=True)
    return tmp_path / "runs" / "r"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A user's folder beside the run, holding a file that must never be read, written or deleted."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "important.txt").write_text(SECRET)
    return folder


def untouched(outside: Path, *written: Path) -> bool:
    """The user's folder holds exactly its one file, unchanged, and no file nv wrote contains its secret."""
    same = sorted(p.name for p in outside.iterdir()) == ["important.txt"] and \
        (outside / "important.txt").read_text() == SECRET
    leaked = [p for top in written for p in ([top] if top.is_file() else top.rglob("*"))
              if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes()]
    return same and not leaked


def one_line(result) -> bool:
    """Exit 2 with one `error:` line (progress notes may precede it) and no traceback."""
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    return result.code == 2 and len(errors) == 1 and "Traceback" not in result.err


# -- 1. links, FIFOs and devices inside a run ----------------------------------------------------------------------
def test_results_json_cannot_make_force_delete_outside_files_or_the_checkpoint(nv, run: Path, outside: Path) -> None:
    assert nv("perturb", "--run", run, *CPU, "--no-plot").code == 0
    (run / "evil").symlink_to(outside)
    manifest = json.loads((run / "results.json").read_text())
    manifest["results"]["perturb"]["files"] += ["evil/important.txt", "checkpoint.pt", "../mine/important.txt"]
    (run / "results.json").write_text(json.dumps(manifest))
    result = nv("perturb", "--run", run, *CPU, "--no-plot", "--example", "1", "--force")
    assert result.code == 0, result.err
    assert untouched(outside, run) and (run / "checkpoint.pt").is_file()


def test_a_result_file_that_is_a_link_is_never_removed_through(nv, run: Path, outside: Path) -> None:
    assert nv("perturb", "--run", run, *CPU).code == 0
    (run / "perturb.png").unlink()
    (run / "perturb.png").symlink_to(outside / "important.txt")
    result = nv("perturb", "--run", run, *CPU, "--example", "1", "--force")
    assert one_line(result) and "perturb.png' is a symbolic link" in result.err
    assert untouched(outside, run)


@pytest.mark.parametrize("folder", [files.HEADS_DIR, files.CODES_DIR])
def test_sparsify_never_writes_through_linked_heads_or_codes(nv, run: Path, outside: Path, folder: str) -> None:
    shutil.rmtree(run / folder, ignore_errors=True)
    (run / folder).symlink_to(outside)
    result = nv("sparsify", "--run", run, *CPU, "--units-per-class", "2", "--no-plot")
    assert one_line(result) and f"{folder}' is a symbolic link" in result.err, result.err
    assert untouched(outside, run)


@pytest.mark.parametrize("name", ["confusion.png", "confusion.csv"])
def test_report_never_embeds_a_file_a_link_points_to(nv, run: Path, outside: Path, name: str) -> None:
    assert nv("eval", "--run", run, *CPU).code == 0
    (run / name).unlink()
    (run / name).symlink_to(outside / "important.txt")
    result = nv("report", "--run", run)
    assert one_line(result) and f"{name}' is a symbolic link" in result.err
    assert untouched(outside, run) and not (run / "report.html").exists()


def test_a_fifo_or_linked_result_folder_is_refused_without_blocking(nv, run: Path, outside: Path) -> None:
    assert nv("eval", "--run", run, *CPU).code == 0
    (run / "confusion.csv").unlink()
    os.mkfifo(run / "confusion.csv")  # opening it to read would wait for a writer forever
    result = nv("report", "--run", run)
    assert one_line(result) and "confusion.csv' is a FIFO" in result.err
    (run / "confusion.csv").unlink()
    shutil.copy(outside / "important.txt", outside / "results.json")
    (run / "compare_x").symlink_to(outside)  # a result folder that is a link
    result = nv("report", "--run", run)
    assert one_line(result) and "compare_x' is a symbolic link" in result.err
    assert not (run / "report.html").exists()


def test_access_refuses_links_fifos_and_escapes_but_follows_the_run_dir_itself(run: Path, tmp_path: Path) -> None:
    (tmp_path / "latest").symlink_to(run)  # what nv makes: the run directory may be reached through a link
    assert access.read_text(tmp_path / "latest", files.CONFIG) == (run / files.CONFIG).read_text()
    (run / "pipe").symlink_to(run / files.CONFIG)  # even a link to a file of the run itself
    for name, message in (("pipe", "symbolic link"), ("../r/config.json", "not a file name inside"),
                          ("/etc/passwd", "not a file name inside")):
        with pytest.raises(NvError, match=message):
            access.read_bytes(run, name)
    assert not access.remove(run, "absent.csv") and access.inside(run, "new/x.csv") == run / "new" / "x.csv"


# -- 2. overwrites the user did not ask for ------------------------------------------------------------------------
def test_train_force_removes_only_what_nv_wrote(nv, run: Path, outside: Path) -> None:
    assert nv("ablate", "--run", run, *CPU).code == 0  # results, a figure and cached codes
    (run / "NOTES.md").write_text("my notes")
    (run / "my_analysis").mkdir()
    (run / "my_analysis" / "plot.py").write_text("print(1)")
    (run / "codes").mkdir(exist_ok=True)
    (run / "codes" / "mine.txt").write_text("kept")
    (run / "link").symlink_to(outside)
    result = nv("train", "--arch", "smallcnn", "--image-size", "32", "-D", "train_per_class=4", "-D",
                "val_per_class=2", "--epochs", "1", *CPU, "--runs-dir", run.parent, "--name", "r", "--force")
    assert result.code == 0, result.err
    assert (run / "NOTES.md").read_text() == "my notes" and (run / "my_analysis" / "plot.py").is_file()
    assert (run / "codes" / "mine.txt").is_file() and not (run / "codes" / "val.npy").exists()
    assert not list(run.glob("ablation*")) and (run / "link").is_symlink() and untouched(outside)


def test_report_out_refuses_a_file_it_did_not_write(nv, run: Path, tmp_path: Path) -> None:
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("chapter 1")
    result = nv("report", "--run", run, "--out", thesis)
    assert one_line(result) and "is not a report nv wrote" in result.err and thesis.read_text() == "chapter 1"
    config = (run / "config.json").read_text()
    assert one_line(nv("report", "--run", run, "--out", run / "config.json"))
    assert (run / "config.json").read_text() == config
    page = tmp_path / "page.html"
    assert nv("report", "--run", run, "--out", page).code == 0
    assert nv("report", "--run", run, "--out", page).code == 0  # its own page is replaced


def test_an_invalid_results_json_is_refused_not_rewritten(nv, run: Path) -> None:
    assert nv("eval", "--run", run, *CPU).code == 0
    for damaged in ('{"results": ', '{"results": [1, 2]}', '{"results": {"eval": 3}}'):
        (run / "results.json").write_text(damaged)
        result = nv("perturb", "--run", run, *CPU, "--no-plot")
        assert one_line(result) and "results.json" in result.err, result.err
        assert (run / "results.json").read_text() == damaged and not (run / "perturb.csv").exists()


def test_results_of_each_head_and_compared_run_own_their_files(nv, run: Path, tmp_path: Path) -> None:
    head = torch.load(run / "model.pt", weights_only=True)
    (run / "heads").mkdir(exist_ok=True)
    save_head(run, "s", head["head.weight"] * (head["head.weight"].abs() > 0.05), head["head.bias"])
    assert nv("perturb", "--run", run, *CPU).code == 0
    dense = (run / "perturb_examples.png").read_bytes()
    assert nv("perturb", "--run", run, *CPU, "--head", "s", "--example", "1", "--force").code == 0
    assert (run / "perturb_examples.png").read_bytes() == dense and (run / "perturb_examples@s.png").is_file()
    other = tmp_path / "other" / "r"
    shutil.copytree(run, other, symlinks=True)
    assert nv("compare", run, run, *CPU, "--no-plot").code == 0
    result = nv("compare", run, other, *CPU, "--no-plot")  # same name, another run: not silently replaced
    assert one_line(result) and "--force" in result.err and str(other) in result.err


# -- 3. silently wrong results -------------------------------------------------------------------------------------
def _tree(root: Path, classes: list[str], per_class: int = 2) -> None:
    for split in ("train", "val"):
        for i, name in enumerate(classes):
            for k in range(per_class):
                (root / split / name).mkdir(parents=True, exist_ok=True)
                pixels = np.full((16, 16, 3), (80 * i, 30 * k, 0), np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{k}.png")


def test_a_changed_class_list_is_refused_naming_the_classes(nv, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    _tree(tree, ["ant", "bee", "cat"])
    assert nv("train", "--arch", "smallcnn", "--data", "imagefolder", "--data-dir", tree, "--image-size", "16",
              "--epochs", "1", *CPU, "--runs-dir", tmp_path, "--name", "r").code == 0
    _tree(tree, ["dog"])  # a class folder added after training
    result = nv("eval", "--run", tmp_path / "r", *CPU)
    assert one_line(result) and "new: dog" in result.err and "ant, bee, cat" in result.err
    for split in ("train", "val"):
        shutil.rmtree(tree / split / "dog")
        (tree / split / "ant").rename(tree / split / "zebra")  # renamed: the sort order shifts every label
    result = nv("eval", "--run", tmp_path / "r", *CPU)
    assert one_line(result) and "new: zebra; missing: ant" in result.err


def test_codes_are_recomputed_when_the_images_change(nv, tmp_path: Path) -> None:
    from nvcli.analysis.code_cache import split_codes
    from nvcli.runs.run import load_run

    tree = tmp_path / "tree"
    _tree(tree, ["ant", "bee"], per_class=3)
    assert nv("train", "--arch", "smallcnn", "--data", "imagefolder", "--data-dir", tree, "--image-size", "16",
              "--epochs", "1", *CPU, "--runs-dir", tmp_path, "--name", "r").code == 0
    assert len(split_codes(load_run(tmp_path / "r"), device="cpu").labels) == 6
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tree / "val" / "bee" / "new.png")
    codes = split_codes(load_run(tmp_path / "r"), device="cpu")
    assert len(codes.labels) == 7 and np.bincount(codes.labels).tolist() == [3, 4]


@pytest.mark.parametrize("damage", ["width", "label 99", "label -5", "nan"])
def test_damaged_code_caches_are_recomputed(run: Path, damage: str) -> None:
    from nvcli.analysis.code_cache import split_codes
    from nvcli.runs.run import load_run

    good = split_codes(load_run(run), device="cpu")
    z, labels = np.array(good.z), np.array(good.labels)
    expected = z.copy(), labels.copy()
    del good  # its memory map reads the file about to be damaged
    for name in ("val-00000.npy", "val-00000-labels.npy"):
        (run / "codes" / name).unlink()
    if damage == "width":
        z = z[:, :-1]
    elif damage == "nan":
        z[0, 0] = np.nan
    else:
        labels[0] = int(damage.split()[1])
    np.save(run / "codes" / "val-00000.npy", z)
    np.save(run / "codes" / "val-00000-labels.npy", labels)
    again = split_codes(load_run(run), device="cpu")
    assert np.array_equal(np.asarray(again.z), expected[0]) and np.array_equal(again.labels, expected[1])


@pytest.mark.parametrize("edit, message", [
    (lambda w, b: (w * np.nan, b), "NaN or infinite"),
    (lambda w, b: (w[:, :-1], b), "inputs but the run has"),
    (lambda w, b: (w[:-1], b[:-1]), "outputs but the run has"),
])
def test_sparse_heads_are_validated_on_load(nv, run: Path, edit, message: str) -> None:
    head = torch.load(run / "model.pt", weights_only=True)
    weight, bias = edit(head["head.weight"], head["head.bias"])
    (run / "heads").mkdir(exist_ok=True)
    save_head(run, "bad", weight, bias)
    result = nv("weights", "--run", run, "--head", "bad", "--all", "--no-plot")
    assert one_line(result) and message in result.err and "heads/bad.pt" in result.err, result.err
    assert "units.csv lists" not in result.err  # the head is at fault, not the unit table


# -- 4. internal errors become one line ----------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--fraction", "0.5", "--max-k", "1"], "raise --max-k"),
    (["--steps", "100000000"], "--steps 100000000 is not valid"),
    (["--draws", "100000000"], "--draws 100000000 is not valid"),
])
def test_ablate_size_settings_are_checked(nv, run: Path, args: list[str], message: str) -> None:
    result = nv("ablate", "--run", run, *CPU, "--no-plot", *args)
    assert one_line(result) and message in result.err, result.err


def test_ablate_summary_k_above_the_default_grid_is_ablated(nv, run: Path) -> None:
    assert nv("ablate", "--run", run, *CPU, "--no-plot", "--fraction", "0.5").code == 0
    summary = json.loads(nv("ablate", "--run", run, *CPU, "--no-plot", "--fraction", "0.5", "-f", "json").out)
    units = json.loads((run / "config.json").read_text())["units"]
    assert {row["k"] for row in summary} == {-(-units // 2)}


@pytest.mark.parametrize("name", ["per_class.csv", "metrics.csv"])
def test_a_non_utf8_byte_in_a_table_is_one_line(nv, run: Path, name: str) -> None:
    assert nv("eval", "--run", run, *CPU).code == 0
    (run / name).write_bytes((run / name).read_bytes() + b"\xff\n")
    result = nv("report", "--run", run)
    assert one_line(result) and name in result.err and "not UTF-8" in result.err


def test_damaged_head_files_never_suggest_loading_unsafely(nv, run: Path) -> None:
    (run / "heads").mkdir(exist_ok=True)
    torch.save({"weight": torch.zeros(2, 2), "evil": argparse.Namespace(code="ran")}, run / "heads" / "x.pt")
    (run / "head_init.pt").write_bytes(b"PK\x03\x04 damaged")
    for args in (["weights", "--all", "--head", "x"], ["weights", "--all"]):
        result = nv(*args, "--run", run, "--no-plot")
        assert one_line(result) and "weights_only" not in result.err and "False" not in result.err, result.err
    assert not list(run.glob("weights_*")) and not (run / "results.json").exists()  # all or nothing


def test_a_closed_stdout_is_one_line(run: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "nvcli", "eval", "--run", str(run), "--device", "cpu", "-f", "csv"],
                          stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1), timeout=300)
    assert proc.returncode == 2 and "standard output is closed" in proc.stderr and "Traceback" not in proc.stderr
    assert not (run / "eval.csv").exists()


# -- 5. messages ---------------------------------------------------------------------------------------------------
def test_a_fifo_lock_and_a_missing_head_are_named(nv, run: Path) -> None:
    os.mkfifo(run / ".nv-lock")
    result = nv("eval", "--run", run, *CPU)
    assert one_line(result) and ".nv-lock' is a FIFO" in result.err and "Invalid argument" not in result.err
    (run / ".nv-lock").unlink()
    result = nv("weights", "--run", run, "--all", "--head", "gone", "--no-plot")
    assert one_line(result) and "train it first" not in result.err and "dense" in result.err


def test_leftover_temporary_files_are_removed(nv, run: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a process that is gone
    leftovers = [run / "codes" / f".val.npy.{dead}.abcd_123.tmp", run / f".report.html.{dead}.x1y2z3w4.tmp"]
    (run / "codes").mkdir(exist_ok=True)
    for path in leftovers:
        path.write_bytes(b"half")
    alive = run / f".report.html.{os.getpid()}.qqqqqqqq.tmp"  # a write in progress in this process: kept
    alive.write_bytes(b"writing")
    (run / "codes" / "val.json").unlink(missing_ok=True)  # so the codes are written
    assert nv("ablate", "--run", run, *CPU, "--no-plot").code == 0
    assert nv("report", "--run", run).code == 0
    assert not any(p.exists() for p in leftovers) and alive.exists()


def test_a_long_sparse_head_name_is_refused_not_shortened(nv, run: Path) -> None:
    result = nv("sparsify", "--run", run, *CPU, "--units-per-class", "2", "--name", "x" * 150)
    assert one_line(result) and "up to 100" in result.err and not (run / "heads").exists()


def test_library_warnings_are_one_line_without_a_source_path(nv, run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from nvcli.analysis import evaluate

    real = evaluate.evaluate

    def noisy(*args, **kwargs):
        warnings.warn("Tight layout not applied", UserWarning)  # as matplotlib does, from its own file
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "evaluate", noisy)
    result = nv("eval", "--run", run, *CPU)
    assert result.code == 0 and "warning: Tight layout not applied" in result.err and ".py:" not in result.err


def test_a_damaged_dataset_manifest_is_named_and_force_removes_nothing(nv, tmp_path: Path) -> None:
    out = tmp_path / "shapes"
    args = ["data", "make", "shapes", "--out", out, "--image-size", "16", "-D", "train_per_class=1", "-D",
            "val_per_class=1"]
    assert nv(*args).code == 0
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    (out / ".nv-dataset.json").write_text('{"files": ')
    result = nv(*args, "--force")
    assert one_line(result) and ".nv-dataset.json' is damaged" in result.err and "has no" not in result.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before


def test_a_runaway_worker_count_is_refused_before_spawning(nv, run: Path) -> None:
    result = nv("eval", "--run", run, *CPU, "--workers", "100000")
    assert one_line(result) and "--workers 100000 is out of range" in result.err


def test_the_report_shows_the_sparse_heads_kept(nv, run: Path) -> None:
    assert nv("sparsify", "--run", run, *CPU, "--units-per-class", "2", "--no-plot").code == 0
    assert nv("report", "--run", run).code == 0
    page = (run / "report.html").read_text()
    kept = page[page.index('id="head"'):]
    assert "heads/sparse2.json" in kept and "lambda" in kept


def test_resume_with_a_damaged_metrics_csv_is_one_line(nv, run: Path) -> None:
    (run / "metrics.csv").write_bytes((run / "metrics.csv").read_bytes() + b"\xff\n")
    result = nv("train", "--resume", "--run", run)
    assert one_line(result) and "metrics.csv' is not UTF-8" in result.err


def test_data_info_shows_unset_defaults_as_a_dash(nv) -> None:
    from nvcli.data.registry import options_of

    shown = dict(options_of("tones"))
    assert shown["data_dir"] == "-" and shown["val_fold"] == "10" and "nan" not in shown.values()
    result = nv("data", "info", "tones", "-D", "per_class=1", "-D", "val_per_class=1")
    assert result.code == 0 and "nan" not in result.out


def test_perturb_output_names_the_head(nv, run: Path) -> None:
    result = nv("perturb", "--run", run, *CPU, "--no-plot", "-f", "csv")
    assert result.code == 0 and result.out.splitlines()[0].split(",")[:3] == ["run", "network", "head"]
    assert set(pd.read_csv(run / "perturb.csv")["head"]) == {"dense"}
