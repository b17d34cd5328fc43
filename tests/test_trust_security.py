"""Security: reading a run never imports its code, dataset files cannot point outside the dataset, odd inputs
cannot exhaust memory. Each refusal is checked with the code or file it guards against actually present."""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image

from nvcli.data.registry import load_data, make_dataset
from nvcli.errors import NvError

TINY = ["--arch", "smallcnn", "--image-size", "32", "-D", "train_per_class=4", "-D", "val_per_class=2",
        "--batch-size", "16", "--device", "cpu"]
EVIL = ("import pathlib\n"
        "from nvcli.models.archs import SmallCNN\n"
        "def net(num_classes=10):\n"
        "    pathlib.Path({marker!r}).write_text('ran')\n"
        "    return SmallCNN(num_classes)\n")


@pytest.fixture
def planted(nv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """A trained run whose config.json names `evil:net`, with evil.py beside it, importable, and in the cwd."""
    assert nv("train", *TINY, "--epochs", "2", "--name", "r", "--runs-dir", tmp_path).code == 0
    run = tmp_path / "r"
    marker = tmp_path / "code-ran"
    for folder in (run, tmp_path):
        (folder / "evil.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(run))
    monkeypatch.chdir(run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["arch"] = "evil:net"
    (run / "config.json").write_text(json.dumps(config))
    sys.modules.pop("evil", None)
    yield run, marker
    sys.modules.pop("evil", None)  # imported by a test that passed --trust-code


@pytest.mark.parametrize("command", [
    ["eval"], ["perturb"], ["explain", "--index", "0"], ["dissect-map", "--probe-count", "4"],
    ["compare", "RUN", "RUN"],
])
def test_reading_a_run_never_imports_the_code_its_config_names(nv, planted, command: list[str]) -> None:
    run, marker = planted
    args = [str(run) if a == "RUN" else a for a in command] + ([] if "RUN" in command else ["--run", run])
    result = nv(*args)
    assert result.code == 2 and "--trust-code" in result.err and "evil:net" in result.err, result.err
    assert not marker.exists() and "evil" not in sys.modules
    trusted = nv(*args, "--trust-code")  # the user asks for it by name: now the code runs
    assert marker.exists(), trusted.err


def test_resume_and_init_never_import_a_runs_code(nv, planted, tmp_path: Path) -> None:
    run, marker = planted
    config = json.loads((run / "config.json").read_text())
    config["train"]["epochs"] = 3  # unfinished, so --resume would train
    (run / "config.json").write_text(json.dumps(config))
    resumed = nv("train", "--resume", "--run", run)
    assert resumed.code == 2 and "--trust-code" in resumed.err and not marker.exists()
    assert nv("convert", "--arch", "smallcnn", "-n", "9", "--image-size", "32", "--runs-dir", tmp_path,
              "--name", "c").code == 0
    converted = json.loads((tmp_path / "c" / "config.json").read_text())
    converted["model"]["arch"] = "tempfile:mkdtemp"  # any importable callable, even the standard library's
    (tmp_path / "c" / "config.json").write_text(json.dumps(converted))
    init = nv("train", *TINY[2:], "--epochs", "1", "--init", tmp_path / "c", "--runs-dir", tmp_path, "--name", "i")
    assert init.code == 2 and "'tempfile:mkdtemp' is user code" in init.err and "--trust-code" in init.err
    assert not (tmp_path / "i").exists() and not marker.exists()
    converted["model"]["arch"] = "evil:net"
    (tmp_path / "c" / "config.json").write_text(json.dumps(converted))
    named = nv("train", *TINY[2:], "--epochs", "1", "--init", tmp_path / "c", "--arch", "evil:net",
               "--runs-dir", tmp_path, "--name", "i")  # naming it on the command line is asking for it
    assert named.code == 0 and marker.exists(), named.err


# ------------------------------------------------------------------------------ paths from dataset files
def _tones(tmp_path: Path) -> Path:
    return make_dataset("tones", tmp_path / "us8k", {"per_class": 2, "duration": 1.0})


@pytest.mark.parametrize("name", ["ABSOLUTE", "../../outside.wav", "../fold2/../../../outside.wav"])
def test_urbansound_rows_outside_the_data_dir_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          name: str) -> None:
    root = _tones(tmp_path)
    outside = tmp_path / "outside.wav"
    sf.write(outside, np.zeros(8000, np.float32), 8000)  # a real, decodable WAV outside the dataset
    csv = root / "metadata" / "UrbanSound8K.csv"
    frame = pd.read_csv(csv)
    frame.loc[3, "slice_file_name"] = str(outside) if name == "ABSOLUTE" else name
    frame.to_csv(csv, index=False)
    opened: list[str] = []
    real_info = sf.info
    monkeypatch.setattr(sf, "info", lambda path, *a, **k: opened.append(str(path)) or real_info(path, *a, **k))
    with pytest.raises(NvError, match=r"UrbanSound8K.csv row 5 names the path .* not inside"):
        load_data("tones", {"data_dir": str(root), "cache_dir": str(tmp_path / "cache"), "val_fold": 9})
    assert opened == []  # every listed path is checked before any clip is opened


def test_places_lists_and_broden_index_cannot_leave_the_dataset(tmp_path: Path) -> None:
    from layouts import places_fixture

    places_fixture(tmp_path)
    listing = tmp_path / "places365_val.txt"
    listing.write_text(listing.read_text() + "/../../../etc/passwd 2\n")
    with pytest.raises(NvError, match=r"line \d+ of '.*places365_val.txt' names the path '\.\./\.\./\.\./etc/passwd'"):
        load_data("places10", {"data_dir": str(tmp_path), "classes": ["barn", "aquarium"]})

    from nvcli.data.broden import BrodenProbe
    from nvcli.data.shapes import ProbeOptions, write_probe

    probe = write_probe(tmp_path / "probe", ProbeOptions(image_size=32, count=3))
    index = pd.read_csv(probe / "index.csv", dtype=str, keep_default_na=False)
    BrodenProbe(probe)  # as written: fine
    for column, value in (("image", "/etc/hostname"), ("color", "../../outside.png"), ("sh", "1000000000")):
        bad = index.copy()
        bad.loc[1, column] = value
        bad.to_csv(probe / "index.csv", index=False)
        with pytest.raises(NvError, match=r"index.csv row 3(:| names the path .* not inside)"):
            BrodenProbe(probe)  # (a mask size of 10^9 x w would be built as label layers: refused too)


def test_places_categories_with_or_without_a_leading_slash(tmp_path: Path) -> None:
    from layouts import places_fixture

    places_fixture(tmp_path)
    categories = tmp_path / "categories_places365.txt"
    categories.write_text("\n".join(line.lstrip("/") for line in categories.read_text().splitlines()) + "\n")
    bundle = load_data("places10", {"data_dir": str(tmp_path), "classes": ["barn", "aquarium"], "image_size": 32})
    assert bundle.classes == ["aquarium", "barn"] and len(bundle.train) == 6
    categories.write_text(categories.read_text() + "a/aquarium 7\n")
    with pytest.raises(NvError, match="repeats the category 'aquarium'"):
        load_data("places10", {"data_dir": str(tmp_path), "classes": ["barn"]})


# ---------------------------------------------------------------------------------------- resources
def _sinc_reference(x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """torchaudio's own filter bank applied in float64 (exact, and affordable only for small rates)."""
    from torchaudio.functional.functional import _get_sinc_resample_kernel

    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    kernel, width = _get_sinc_resample_kernel(orig, new, g)
    padded = torch.nn.functional.pad(x.double(), (width, width + o))
    frames = padded.unfold(0, kernel.shape[-1], o)  # [frame, taps]
    out = (frames @ kernel[:, 0].double().T).reshape(-1)
    return out[:math.ceil(n * len(x) / o)]


@pytest.mark.parametrize("orig, new", [(1001, 1000), (1000, 1001), (977, 1499), (8001, 1600), (44100, 22050)])
def test_bounded_resampling_matches_the_exact_sinc_resample(orig: int, new: int) -> None:
    from nvcli.data.sound import spectrogram

    x = torch.randn(3 * orig, generator=torch.Generator().manual_seed(orig))
    exact = _sinc_reference(x, orig, new)
    g = math.gcd(orig, new)
    width = math.ceil(6 * orig // g / (min(orig, new) // g * 0.99))
    taps = spectrogram._resample_taps(x, orig // g, new // g, width)
    assert taps.shape == exact.shape
    assert (taps.double() - exact).abs().max() < 2e-6  # float32 rounding only


def test_resampling_coprime_rates_never_builds_the_full_filter_bank(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import torchaudio

    from nvcli.data.sound import spectrogram

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torchaudio's resample would build a 22050 x 22065 filter bank (1.95 GB)")

    monkeypatch.setattr(torchaudio.functional, "resample", refuse)
    rate = 22051
    t = np.arange(rate) / rate
    sf.write(tmp_path / "odd.wav", np.sin(2 * np.pi * 440 * t).astype(np.float32), rate)
    params = spectrogram.SpecParams(sample_rate=22050, duration=1.0)
    with sf.SoundFile(tmp_path / "odd.wav") as f:
        wave = torch.from_numpy(f.read(dtype="float32"))
    out = spectrogram.resample(wave, rate, 22050)
    expected = torch.sin(2 * torch.pi * 440 * torch.arange(22050) / 22050)
    assert out.shape == (22050,) and (out[200:-200] - expected[200:-200]).abs().max() < 1e-3  # away from the edges
    assert spectrogram.decode(tmp_path / "odd.wav", params).shape == params.shape


def test_oversize_images_are_refused_in_one_line(nv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from layouts import write_image

    for split in ("train", "val"):
        for name in ("a", "b"):
            for i in range(2):
                write_image(tmp_path / "tree" / split / name / f"{i}.png", (40 * i, 10, 10))
    Image.new("RGB", (60, 50)).save(tmp_path / "tree" / "train" / "a" / "big.png")
    monkeypatch.setenv("NV_MAX_IMAGE_PIXELS", "2000")  # the 60x50 image is over it, the others are not
    for workers in ("0", "1"):
        result = nv("train", "--arch", "smallcnn", "--data", "imagefolder", "--data-dir", tmp_path / "tree",
                    "--image-size", "16", "--epochs", "1", "--workers", workers, "--runs-dir", tmp_path / "runs",
                    "--name", f"w{workers}")
        assert result.code == 2 and "big.png' is 60x50 pixels, more than the limit of 2,000" in result.err
        assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    monkeypatch.delenv("NV_MAX_IMAGE_PIXELS")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own bomb check (at twice its limit)
    assert nv("train", *TINY, "--epochs", "1", "--runs-dir", tmp_path / "runs", "--name", "r").code == 0
    explained = nv("explain", "--input", tmp_path / "tree" / "train" / "a" / "big.png", "--run",
                   tmp_path / "runs" / "r")
    assert explained.code == 2 and "--input" in explained.err and "too large to decode safely" in explained.err
    assert "internal error" not in explained.err and len(explained.err.strip().splitlines()) == 2  # "run: ..." + error
    monkeypatch.setenv("NV_MAX_IMAGE_PIXELS", "many")
    bad = nv("explain", "--input", tmp_path / "tree" / "val" / "a" / "0.png", "--run", tmp_path / "runs" / "r")
    assert bad.code == 2 and "NV_MAX_IMAGE_PIXELS='many' is not valid" in bad.err


def test_runaway_sizes_are_refused_before_allocating(nv, tmp_path: Path) -> None:
    for args, message in ((["--data", "tones", "-D", "duration=1e308"], "more than 33554432 samples per clip"),
                          (["--data", "tones", "-D", "duration=1e999"], "duration must be a finite number, got inf"),
                          (["--data", "tones", "--sample-rate", "99999999"], "above 768000 Hz"),
                          (["--image-size", "100000"], "image size 100000 is too large")):
        result = nv("train", *args, "--runs-dir", tmp_path)
        assert result.code == 2 and message in result.err, result.err
    assert not any(tmp_path.iterdir())


def test_a_run_copied_with_its_planted_module_stays_inert(nv, planted, tmp_path: Path) -> None:
    run, marker = planted
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert nv("weights", "--all", "--run", copy).code == 0  # reads the head from model.pt, builds nothing
    assert not marker.exists()


@pytest.mark.parametrize("edit, message", [
    ({"input_shape": [3, 100_000, 100_000]}, "input shape [3, 100000, 100000] with 0 views is too large"),
    ({"views": 10**6}, "with 1000000 views is too large"),
    ({"num_classes": 10**9}, "a classifier needs 2..1000000 classes"),
])
def test_a_config_cannot_make_nv_build_a_giant_model(nv, tmp_path: Path, edit: dict, message: str) -> None:
    assert nv("convert", "--arch", "smallcnn", "-n", "9", "--runs-dir", tmp_path, "--name", "c").code == 0
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    config["model"].update(edit)
    (tmp_path / "c" / "config.json").write_text(json.dumps(config))
    result = nv("train", "--init", tmp_path / "c", "--image-size", "32", "--runs-dir", tmp_path, "--name", "t")
    assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1, result.err
