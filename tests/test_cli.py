"""The convert, train, eval and data commands as a user runs them."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from nvcli.models.archs import build_network

TINY = ["--arch", "smallcnn", "--image-size", "32", "--epochs", "1", "-D", "train_per_class=8",
        "-D", "val_per_class=4", "--batch-size", "16"]


def test_convert_vgg11_has_the_papers_2752_units(nv, tmp_path: Path) -> None:
    result = nv("convert", "--arch", "vgg11", "--num-classes", "10", "--runs-dir", tmp_path, "--name", "v",
                "--format", "csv")
    assert result.code == 0, result.err
    table = pd.read_csv(io.StringIO(result.out))
    assert table.iloc[-1]["node"] == "total" and table.iloc[-1]["units"] == 2752
    assert table["units"].iloc[:-1].tolist() == [64, 128, 256, 256, 512, 512, 512, 512]
    run = tmp_path / "v"
    units = pd.read_csv(run / "units.csv")
    assert len(units) == 2752 and units["layer"].max() == 7
    state = torch.load(run / "model.pt", weights_only=True)
    assert state["head.weight"].shape == (10, 2752)
    assert json.loads((run / "config.json").read_text())["model"]["arch"] == "vgg11"


def test_convert_loads_a_trained_standard_network(nv, tmp_path: Path) -> None:
    standard = build_network("smallcnn", 4)
    torch.save(standard.state_dict(), tmp_path / "w.pt")
    result = nv("convert", "--arch", "smallcnn", "--classes", "a,b,c,d", "--weights", tmp_path / "w.pt",
                "--runs-dir", tmp_path, "--name", "c")
    assert result.code == 0, result.err
    state = torch.load(tmp_path / "c" / "model.pt", weights_only=True)
    torch.testing.assert_close(state["codes.body.features.4.weight"], standard.features[4].weight)


def test_user_factory_architecture(nv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mynets.py").write_text(
        "from torch import nn\n"
        "def tiny(num_classes=10):\n"
        "    return nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 7, 3), nn.ReLU(),\n"
        "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(7, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = nv("convert", "--arch", "mynets:tiny", "-n", "3", "--runs-dir", tmp_path, "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [r["units"] for r in rows] == [5, 7, 12]


@pytest.mark.parametrize("args, message", [
    (["convert", "--arch", "vgg_11", "-n", "3"], "Did you mean 'vgg11'"),
    (["convert", "--arch", "vgg11", "-n", "1"], "--num-classes 1"),
    (["train", "--data", "shapez"], "Did you mean 'shapes'"),
    (["train", "--epochs", "-1"], "'--epochs' / '-e': -1 is not in the range 1<=x<=100000."),
    (["train", "--batch-size", "0"], "'--batch-size' / '-b': 0 is not in the range 1<=x<=65536."),
    (["train", "--reduce", "median"], "unknown --reduce value 'median'; valid: max, mean. Did you mean 'mean'?"),
    (["train", "--data", "imagefolder"], "--data-dir"),
    (["train", "--data", "imagefolder", "--data-dir", "/nonexistent"], "'/nonexistent' is not a directory"),
    (["eval", "--run", "/tmp"], "not an nv run directory"),
    (["eval"], "no runs yet"),
    (["convert", "--arch", "smallcnn", "--classes", "a,a,b"], "names a more than once"),
    (["convert", "--arch", "smallcnn"], "needs the number of classes"),
    (["multiview", "--data", "shapes"], "--data shapes is not multi-view data; use one of views, modelnet40"),
    (["train", "-D", "train_per_class=abc"], "dataset 'shapes' setting: 'train_per_class' is 'abc'; expected int"),
    (["train", "-D", "val_per_class=0"], "option val_per_class=0 must be > 0"),
    (["train", "-D", "image_size=8"], "image size 8 is too small"),
    (["train", "--baseline", "--freeze-backbone"], "cannot be combined"),
    (["train", "--run", "runs/x"], "--run only selects the run to continue with --resume"),
    (["train", "-D", "colour_bias=2"],
     "dataset 'shapes' takes no setting colour_bias (given by a flag or -D); its settings: seed,"),
    (["train", "--image-size", "8"], "image size 8 is too small; use 16 or more"),
    (["train", "--opt", "lbfgs"], "unknown --opt value 'lbfgs'; valid: adamw, adam, sgd"),
    (["train", "--lr", "-0.1"], "learning rate -0.1"),
    (["train", "--code", "fuzzy"], "unknown --code value 'fuzzy'"),
    (["train", "--data", "tones", "--on-error", "ignore"], "unknown --on-error value 'ignore'"),
    (["train", "--on-error", "skip"], "dataset 'shapes' takes no setting on_error"),
])
def test_bad_input_is_one_line_exit_2_without_traceback(nv, tmp_path: Path, args: list, message: str) -> None:
    result = nv(*args, "--runs-dir", tmp_path)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_a_library_error_names_the_commands_flag(nv, tmp_path: Path) -> None:
    result = nv("train", "--data", "imagefolder", "--runs-dir", tmp_path)  # the library says data_dir
    assert result.code == 2 and "dataset 'imagefolder' needs --data-dir: a directory holding train/" in result.err
    assert "data_dir" not in result.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_a_gpu(nv, tmp_path: Path) -> None:
    result = nv("train", *TINY, "--device", "cuda", "--runs-dir", tmp_path)
    assert result.code == 2 and "no CUDA GPU is available" in result.err


def test_empty_data_directory(nv, tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    result = nv("train", "--data", "imagefolder", "--data-dir", tmp_path, "--runs-dir", tmp_path / "runs")
    assert result.code == 2 and "has no class subfolders" in result.err


def test_train_eval_pipeline_and_min_acc_gate(nv, tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = nv("train", *TINY, "--name", name, "--runs-dir", tmp_path, *(["--baseline"] if name == "b" else []))
        assert result.code == 0, result.err
    result = nv("eval", "--run", tmp_path / "a", "--run", tmp_path / "b", "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [r["network"] for r in rows] == ["NeuroView smallcnn", "smallcnn"]
    assert [r["activation"] for r in rows] == ["soft/max", "-"]
    acc = rows[0]["accuracy"]
    for name in ("eval.csv", "per_class.csv", "confusion.csv", "confusion.png"):
        assert (tmp_path / "a" / name).is_file()
    confusion = pd.read_csv(tmp_path / "a" / "confusion.csv")
    assert confusion.drop(columns="true").to_numpy().sum() == 36  # every validation image counted once
    assert nv("eval", "--run", tmp_path / "a", "--min-acc", acc).code == 0
    if acc < 1:
        assert nv("eval", "--run", tmp_path / "a", "--min-acc", min(1.0, acc + 0.01)).code == 1
    piped = nv("eval", "--run", tmp_path / "a", "--run", tmp_path / "b")
    assert "NeuroView smallcnn" in piped.out  # piped tables are not squeezed to 80 columns
    per_class = json.loads(nv("eval", "--run", tmp_path / "a", "--per-class", "--format", "json").out)
    assert [row["class"] for row in per_class][:3] == ["red", "green", "blue"] and per_class[0]["run"] == "a"
    latest = nv("eval", "--runs-dir", tmp_path, "--format", "csv")  # default: runs/latest = b
    assert pd.read_csv(io.StringIO(latest.out))["run"].tolist() == ["b"]


def test_later_commands_see_the_training_data(nv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-zero seed and a relative --data-dir are recorded so eval scores the same validation images."""
    monkeypatch.chdir(tmp_path)
    assert nv("data", "make", "shapes", "--out", "tree", "--image-size", "32", "-D", "train_per_class=6",
              "-D", "val_per_class=3").code == 0
    seeded = ["--seed", "3", "-D", "train_per_class=6", "-D", "val_per_class=3"]
    for name, data in (("seeded", seeded), ("folder", ["--data", "imagefolder", "--data-dir", "tree"])):
        result = nv("train", *TINY[:4], "--epochs", "2", *data, "--name", name, "--runs-dir", "runs")
        assert result.code == 0, result.err
    monkeypatch.chdir("/")
    for name in ("seeded", "folder"):
        run_dir = tmp_path / "runs" / name
        last = pd.read_csv(run_dir / "metrics.csv")["val_acc"].iloc[-1]
        evaluated = json.loads(nv("eval", "--run", run_dir, "--format", "json").out)[0]["accuracy"]
        assert evaluated == pytest.approx(last)


def test_resume_finished_run_and_refuse_overwrite(nv, tmp_path: Path) -> None:
    assert nv("train", *TINY, "--name", "r", "--runs-dir", tmp_path).code == 0
    again = nv("train", *TINY, "--name", "r", "--runs-dir", tmp_path)
    assert again.code == 2 and "--force" in again.err
    assert nv("train", "--resume", "--run", tmp_path / "r").code == 0
    assert len(pd.read_csv(tmp_path / "r" / "metrics.csv")) == 1
    assert nv("eval", "--run", tmp_path / "r").code == 0
    replaced = nv("train", *TINY, "--baseline", "--name", "r", "--runs-dir", tmp_path, "--force")
    assert replaced.code == 0, replaced.err
    assert not (tmp_path / "r" / "eval.csv").exists() and not (tmp_path / "r" / "units.csv").exists()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    refused = nv("train", *TINY, "--name", "notes", "--runs-dir", tmp_path, "--force")
    assert refused.code == 2 and "not an nv run directory" in refused.err
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep"


def test_edited_config_is_refused(nv, tmp_path: Path) -> None:
    assert nv("train", *TINY, "--name", "e", "--runs-dir", tmp_path).code == 0
    config = tmp_path / "e" / "config.json"
    data = json.loads(config.read_text())
    data["model"]["num_classes"] = 3
    config.write_text(json.dumps(data))
    result = nv("eval", "--run", tmp_path / "e")
    assert result.code == 2 and "num_classes=3" in result.err
    config.write_text("{ nonsense")
    assert "not valid JSON" in nv("eval", "--run", tmp_path / "e").err


def test_data_list_info_make_and_train_from_the_written_tree(nv, tmp_path: Path) -> None:
    listing = json.loads(nv("data", "list", "--format", "json").out)
    assert {"shapes", "imagefolder", "places10"} <= {row["name"] for row in listing}
    info = json.loads(nv("data", "info", "shapes", "-D", "train_per_class=2", "-D", "val_per_class=1",
                         "--format", "json").out)
    cues = {row["class"]: row["cue"] for row in info}
    assert cues["red"].startswith("colour") and cues["striped"].startswith("texture")
    assert cues["circle"].startswith("shape")
    out = tmp_path / "tree"
    made = nv("data", "make", "shapes", "--out", out, "--image-size", "32", "-D", "train_per_class=3",
              "-D", "val_per_class=2")
    assert made.code == 0, made.err
    assert len(list((out / "train" / "red").glob("*.png"))) == 3
    assert nv("data", "make", "shapes", "--out", out).code == 2  # not empty, no --force
    assert nv("data", "make", "shapes", "--out", out, "--image-size", "32", "-D", "train_per_class=2",
              "-D", "val_per_class=1", "--force").code == 0
    assert len(list((out / "train").rglob("*.png"))) == 18  # replaced, not mixed with the earlier images
    assert nv("data", "make", "shapes", "--out", out, "--image-size", "32", "-D", "train_per_class=3",
              "-D", "val_per_class=2", "--force").code == 0
    result = nv("train", "--arch", "smallcnn", "--data", "imagefolder", "--data-dir", out, "--image-size", "32",
                "--epochs", "1", "--name", "f", "--runs-dir", tmp_path)
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "f" / "config.json").read_text())["data"]["classes"][0] == "blue"  # sorted


def test_progress_bars_on_a_terminal_survive_many_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from nvcli.cli import render

    screen = io.StringIO()
    monkeypatch.setattr(render, "err", Console(file=screen, force_terminal=True, width=100))
    with render.progress("training") as update:
        for _ in range(3):  # epochs: a train pass then a validation pass each
            for step in range(1, 4):
                update("train", step, 3)
            for step in range(1, 3):
                update("val", step, 2)
    assert "training train" in screen.getvalue() and "training val" in screen.getvalue()


def test_usage_errors_exit_2(nv) -> None:
    result = nv("train", "--no-such-flag")
    assert result.code == 2 and "No such option" in result.err and "Traceback" not in result.err


def test_console_script_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "nvcli", "convert", "--arch", "nonet", "-n", "2"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown architecture 'nonet'" in result.stderr and "Traceback" not in result.stderr


def test_convert_then_train_init_with_a_frozen_backbone(nv, tmp_path: Path) -> None:
    converted = nv("convert", "--arch", "smallcnn", "-n", "9", "--image-size", "32", "--freeze-backbone",
                   "--runs-dir", tmp_path, "--name", "c")
    assert converted.code == 0, converted.err
    trained = nv("train", "--init", tmp_path / "c", "--image-size", "32", "--epochs", "2", "-D", "train_per_class=8",
                 "-D", "val_per_class=4", "--runs-dir", tmp_path, "--name", "t")
    assert trained.code == 0, trained.err
    before = torch.load(tmp_path / "c" / "model.pt", weights_only=True)
    after = torch.load(tmp_path / "t" / "model.pt", weights_only=True)
    backbone = [k for k in before if k.startswith("codes.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)  # weights and BN statistics
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert json.loads((tmp_path / "t" / "config.json").read_text())["model"]["freeze_backbone"] is True
    wrong = nv("train", "--init", tmp_path / "c", "--data", "tones", "--runs-dir", tmp_path, "--name", "w")
    assert wrong.code == 2 and "has 9 classes but dataset 'tones' has 7" in wrong.err


@pytest.mark.parametrize("flags, applied", [
    (["--reduce", "mean"], {"reduce": "mean"}),
    (["--code", "hard"], {"code": "hard"}),
    (["--freeze-backbone"], {"freeze_backbone": True}),
    (["--arch", "smallcnn"], {"arch": "smallcnn"}),  # agreeing with the converted run is fine
    (["--arch", "alexnet"], "--arch alexnet disagrees with the --init run"),
    (["--weights", "w.pt"], "--weights w.pt disagrees with the --init run"),
    (["--baseline"], "cannot start from an --init run"),
    (["--shared-backbone"], "--shared-backbone True disagrees with the --init run"),
])
def test_init_applies_or_refuses_each_model_flag(nv, tmp_path: Path, flags: list, applied) -> None:
    assert nv("convert", "--arch", "smallcnn", "-n", "9", "--image-size", "32", "--runs-dir", tmp_path,
              "--name", "c").code == 0
    result = nv("train", "--init", tmp_path / "c", *flags, "--image-size", "32", "--epochs", "1",
                "-D", "train_per_class=4", "-D", "val_per_class=2", "--runs-dir", tmp_path, "--name", "t")
    if isinstance(applied, str):
        assert result.code == 2 and applied in result.err
        assert not (tmp_path / "t").exists()  # refused before any run directory is made
        return
    assert result.code == 0, result.err
    model = json.loads((tmp_path / "t" / "config.json").read_text())["model"]
    assert {k: model[k] for k in applied} == applied


def test_debug_shows_the_traceback(nv) -> None:
    from nvcli.errors import NvError

    with pytest.raises(NvError, match="unknown architecture"):
        nv("--debug", "convert", "--arch", "nonet", "-n", "2")
    assert nv("convert", "--arch", "nonet", "-n", "2").code == 2  # the next call is one line again


def test_a_head_named_twice_is_refused(nv, tmp_path: Path) -> None:
    result = nv("eval", "--run", tmp_path, "--head", "dense", "--head", "dense")
    assert result.code == 2 and "--head names dense more than once; name each head once" in result.err


@pytest.mark.parametrize("args, usage", [((), "Usage: nv [OPTIONS] COMMAND"), (("data",), "Usage: nv data [OPTIONS]")])
def test_a_group_alone_shows_its_help(nv, args: tuple[str, ...], usage: str) -> None:
    """Issue 31: `nv` and `nv data` alone printed `error: NoArgsIsHelpError`. They print the help `--help` prints, on
    stdout, and exit 0: help is what a bare group asks for, and nothing failed."""
    result = nv(*args)
    assert result.code == 0 and result.err == ""
    assert usage in result.out and " list " in nv("data").out and " train " in nv().out
    assert result.out == nv(*args, "--help").out


def test_a_refusal_under_torchrun_is_said_once(nv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 31: under torchrun every process printed the refusal of a command that does not share its work. Rank 0
    alone says it and fails; the others end quietly (one failing first would let torchrun stop rank 0 unheard)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    ends = {}
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        ends[rank] = nv("sparsify", "--run", tmp_path)
    assert ends["0"].code == 2 and ends["0"].err.count("\n") == 1 and "nv sparsify runs in one process" in ends["0"].err
    assert (ends["1"].code, ends["1"].out, ends["1"].err) == (0, "", "")
    launcher = Path(sys.executable).with_name("torchrun")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    result = subprocess.run([str(launcher), "--standalone", "--nproc_per_node", "2", "-m", "nvcli", "--", "sparsify",
                             "--run", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and result.stderr.count("nv sparsify runs in one process") == 1, result.stderr
