"""`audiofolder`: audio trees in the folder, Speech Commands and ESC-50 layouts, on clips of known pitch."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from nvcli.data.registry import DataBundle, load_data, split_fingerprint
from nvcli.data.sound.spectrogram import SpecParams, mel_frequencies
from nvcli.errors import NvError

PITCHES = {"high": 2400.0, "low": 300.0, "mid": 900.0}  # Hz; classes in sorted order
# 8 kHz, 0.5 s: every clip is resampled to this rate and padded or cropped to this length.
FAST = dict(sample_rate=8000, duration=0.5, n_fft=256, hop_length=128, n_mels=32)
PARAMS = SpecParams(**FAST)
# (rate, seconds, channels, suffix) cycled over a class's clips: resampled, padded, cropped, mixed down, 4 codecs.
VARIANTS = [(8000, 0.5, 1, ".wav"), (16000, 0.8, 2, ".flac"), (11025, 0.3, 1, ".ogg"), (22050, 0.6, 2, ".wav"),
            (44100, 0.5, 1, ".mp3"), (8000, 0.4, 2, ".ogg")]


def write_clip(path: Path, pitch: float, k: int, rng: np.random.Generator) -> Path:
    """A sine near `pitch` (within 4 %) with noise, in the rate, length, channels and format of variant `k`."""
    rate, seconds, channels, suffix = VARIANTS[k % len(VARIANTS)]
    t = np.arange(int(rate * seconds)) / rate
    wave = rng.uniform(0.2, 0.7) * np.sin(2 * np.pi * pitch * rng.uniform(0.96, 1.04) * t + rng.uniform(0, 6.3))
    wave = wave + 0.01 * rng.standard_normal(len(t))
    path = path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.stack([wave] * channels, axis=1).astype(np.float32), rate)
    return path


def folder_tree(root: Path, train: int = 6, val: int = 3, seed: int = 0) -> Path:
    """DATA/{train,val}/<class>/<n>.<wav|flac|ogg|mp3> of the PITCHES classes."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        for name, pitch in PITCHES.items():
            for k in range(count):
                write_clip(root / split / name / f"{k}", pitch, k, rng)
    return root


def speech_tree(root: Path) -> Path:
    """Speech Commands' layout: DATA/<class>/<n>.* (5 per class), clip 3 listed for validation, clip 4 for testing."""
    rng = np.random.default_rng(1)
    lists: dict[str, list[str]] = {"validation_list.txt": [], "testing_list.txt": []}
    for name, pitch in PITCHES.items():
        clips = [write_clip(root / name / f"{k}_nohash_0", pitch, k, rng) for k in range(5)]
        lists["validation_list.txt"].append(clips[3].relative_to(root).as_posix())
        lists["testing_list.txt"].append(clips[4].relative_to(root).as_posix())
    write_clip(root / "_background_noise_" / "white_noise", 100.0, 0, rng)
    for name, lines in lists.items():
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def esc50_tree(root: Path) -> Path:
    """ESC-50's layout: meta/esc50.csv and audio/<fold>-<n>-A-<target>.*; 3 folds of 2 clips per class."""
    rng = np.random.default_rng(2)
    rows = []
    # targets in the reverse of the names' order: classes must follow `target`
    for target, (name, pitch) in enumerate(reversed(PITCHES.items())):
        for fold in (1, 2, 3):
            for k in range(2):
                clip = write_clip(root / "audio" / f"{fold}-{target}{k}-A-{target}", pitch, fold + k, rng)
                rows.append({"filename": clip.name, "fold": fold, "target": target, "category": name,
                             "esc10": False, "src_file": target * 10 + k, "take": "A"})
    (root / "meta").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("audio")
    return {"folder": folder_tree(base / "folder"), "speechcommands": speech_tree(base / "speech"),
            "esc50": esc50_tree(base / "esc50")}


def load(root: Path, **options: object) -> DataBundle:
    return load_data("audiofolder", {"data_dir": str(root), **FAST, **options})


def peak_hz(x: torch.Tensor) -> float:
    """The centre frequency of the loudest mel band of spectrogram [1, F, T], over its loud frames."""
    spec = x[0]
    loud = spec[:, spec.max(0).values > spec.max() - 20]
    return float(mel_frequencies(PARAMS)[loud.mean(1).argmax()])


def test_folder_layout_reads_every_clip_at_one_rate_and_length(trees: dict[str, Path]) -> None:
    bundle = load(trees["folder"])
    assert bundle.kind == "sound" and bundle.classes == ["high", "low", "mid"] and bundle.info["layout"] == "folder"
    assert (len(bundle.train), len(bundle.val)) == (18, 9) and bundle.counts("val") == [3, 3, 3]
    assert bundle.input_shape == [1, 32, 32] == list(PARAMS.shape)
    for ds in (bundle.train, bundle.val):
        for i in range(len(ds)):
            x, label = ds[i]
            pitch = PITCHES[bundle.classes[label]]
            assert 0.8 * pitch < peak_hz(x) < 1.25 * pitch, (ds.paths[i], peak_hz(x))  # resampled, pitch kept
    suffixes = {Path(p).suffix for p in bundle.train.source_files()}
    assert suffixes == {".wav", ".flac", ".ogg", ".mp3"}


def test_short_clips_are_padded_with_silence_and_long_ones_cropped(trees: dict[str, Path]) -> None:
    bundle = load(trees["folder"])
    frames_of = {}
    for i, path in enumerate(bundle.train.paths):
        x = bundle.train[i][0][0]
        loud = (x.max(0).values > x.min() + 1).nonzero().flatten()
        frames_of[Path(path).stem, Path(path).parent.name] = (int(loud.max()), x.shape[1])
    # clip 2 lasts 0.3 s of the 0.5 s: its last ~40 % of frames are the floor; clip 1 (0.8 s) sound to the end
    assert all(last < 0.7 * total for (stem, _), (last, total) in frames_of.items() if stem == "2")
    assert all(last == total - 1 for (stem, _), (last, total) in frames_of.items() if stem == "1")


def test_channels_are_mixed_down_by_their_mean(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "data", train=1, val=1)
    t = np.arange(4000) / 8000
    tone = 0.5 * np.sin(2 * np.pi * 900 * t)
    sf.write(str(root / "val" / "mid" / "0.wav"), np.stack([tone, -tone], axis=1), 8000, "FLOAT")  # channels cancel
    sf.write(str(root / "val" / "low" / "0.wav"), np.stack([tone, np.zeros_like(tone)], axis=1), 8000)
    bundle = load(root, cache_dir=str(tmp_path / "cache"))
    silent = bundle.val[bundle.val.paths.index(str(root / "val" / "mid" / "0.wav"))][0]
    assert float(silent.max() - silent.min()) < 1e-3  # the mean of opposite channels is silence
    one_sided = bundle.val[bundle.val.paths.index(str(root / "val" / "low" / "0.wav"))][0]
    assert 800 < peak_hz(one_sided) < 1000


def test_speechcommands_layout_splits_by_its_lists(trees: dict[str, Path]) -> None:
    root = trees["speechcommands"]
    bundle = load(root)
    assert bundle.info["layout"] == "speechcommands" and bundle.info["val_list"] == "validation"
    assert bundle.classes == ["high", "low", "mid"]  # not _background_noise_, nor the cache folder
    assert (root / ".nv-cache").is_dir()
    stems = {split: sorted(Path(p).stem for p in getattr(bundle, split).paths) for split in ("train", "val")}
    assert stems == {"train": sorted(["0_nohash_0", "1_nohash_0", "2_nohash_0"] * 3), "val": ["3_nohash_0"] * 3}
    test = load(root, val_list="testing")
    assert sorted(Path(p).stem for p in test.val.paths) == ["4_nohash_0"] * 3 and len(test.train) == 9
    assert load(root, classes=("low", "mid")).counts("val") == [1, 1]


def test_esc50_layout_splits_by_fold_with_classes_in_target_order(trees: dict[str, Path]) -> None:
    root = trees["esc50"]
    bundle = load(root)
    assert bundle.info["layout"] == "esc50" and bundle.classes == ["mid", "low", "high"]
    assert bundle.info["val_fold"] == 3 and bundle.info["train_folds"] == [1, 2]  # default: the last fold
    assert (len(bundle.train), len(bundle.val)) == (12, 6)
    assert all(Path(p).name.startswith("3-") for p in bundle.val.paths)
    first = load(root, val_fold=1)
    assert all(Path(p).name.startswith("1-") for p in first.val.paths) and first.info["train_folds"] == [2, 3]
    for i in range(len(first.val)):
        x, label = first.val[i]
        assert 0.8 * PITCHES[first.classes[label]] < peak_hz(x) < 1.25 * PITCHES[first.classes[label]]
    with pytest.raises(NvError, match="val_fold=5 is not a fold .*valid: 1, 2, 3"):
        load(root, val_fold=5)


def test_layout_is_detected_recorded_and_chosen(trees: dict[str, Path], tmp_path: Path) -> None:
    from nvcli.data.registry import data_options

    for layout, root in trees.items():
        options = data_options("audiofolder", {"data_dir": str(root)})
        assert options.layout == layout  # recorded in config.json: a run reads its data back in this layout
        assert options.duration == {"folder": 4.0, "speechcommands": 1.0, "esc50": 5.0}[layout]
    assert load(trees["folder"], layout="folder").info["layout"] == "folder"
    (tmp_path / "plain").mkdir()
    with pytest.raises(NvError, match="cannot tell the layout .*speechcommands: .*validation_list.txt.*esc50"):
        load(tmp_path / "plain")
    with pytest.raises(NvError, match="unknown layout 'esc-50'.*Did you mean 'esc50'"):
        load(trees["esc50"], layout="esc-50")
    with pytest.raises(NvError, match="val_fold=2 applies to the esc50 layout only; .* layout is folder"):
        load(trees["folder"], val_fold=2)
    with pytest.raises(NvError, match="val_list=testing applies to the speechcommands layout only"):
        load(trees["esc50"], val_list="testing")
    with pytest.raises(NvError, match="needs data_dir"):
        load_data("audiofolder", {})
    with pytest.raises(NvError, match="training split .* is not a directory"):
        load(trees["speechcommands"], layout="folder")


def test_paths_in_metadata_must_stay_inside_the_dataset(trees: dict[str, Path], tmp_path: Path) -> None:
    esc = Path(shutil.copytree(trees["esc50"], tmp_path / "esc", ignore=shutil.ignore_patterns(".nv-cache")))
    csv = esc / "meta" / "esc50.csv"
    frame = pd.read_csv(csv)
    for bad in ("../outside.wav", "/etc/passwd"):
        frame.assign(filename=frame["filename"].where(frame.index != 4, bad)).to_csv(csv, index=False)
        with pytest.raises(NvError, match=f"esc50.csv row 6 names the path '{bad}', which is not inside"):
            load(esc, cache_dir=str(tmp_path / "cache"))
    speech = Path(shutil.copytree(trees["speechcommands"], tmp_path / "sc", ignore=shutil.ignore_patterns(".nv-cache")))
    (speech / "testing_list.txt").write_text("low/4_nohash_0.ogg\n../low/4_nohash_0.ogg\n")
    with pytest.raises(NvError, match=r"testing_list.txt line 2 names the path '../low/4_nohash_0.ogg'"):
        load(speech, cache_dir=str(tmp_path / "cache"))
    (speech / "testing_list.txt").write_text("noise.wav\n")
    with pytest.raises(NvError, match="testing_list.txt line 1 names 'noise.wav', which is not in a class folder"):
        load(speech, cache_dir=str(tmp_path / "cache"))


def test_a_corrupt_clip_is_named_or_skipped(trees: dict[str, Path], tmp_path: Path) -> None:
    root = Path(shutil.copytree(trees["folder"], tmp_path / "data", ignore=shutil.ignore_patterns(".nv-cache")))
    (root / "train" / "low" / "0.wav").write_bytes(b"RIFF not really audio")
    with pytest.raises(NvError, match=r"cannot decode 1 audio file\(s\) under .*: train/low/0.wav: .*on_error skip"):
        load(root)
    bundle = load(root, on_error="skip")
    assert bundle.info["skipped"]["count"] == 1 and list(bundle.info["skipped"]["files"]) == ["train/low/0.wav"]
    assert len(bundle.train) == 17 and str(root / "train" / "low" / "0.wav") not in bundle.train.paths
    (root / "val" / "mid" / "0.wav").unlink()
    (root / "val" / "mid" / "9.wav").mkdir()  # a folder named like a clip is no clip
    assert len(load(root, on_error="skip").val) == 8


def test_the_cache_and_the_fingerprint_follow_the_files(trees: dict[str, Path], tmp_path: Path) -> None:
    root = Path(shutil.copytree(trees["folder"], tmp_path / "data", ignore=shutil.ignore_patterns(".nv-cache")))
    first = load(root)
    everything = [first.val[i][0] for i in range(len(first.val))]
    again = load(root)
    assert all(torch.equal(again.val[i][0], x) for i, x in enumerate(everything))
    assert (first.val.decoded, again.val.decoded, again.val.cache_hits) == (9, 0, 9)
    before = split_fingerprint(again.val)
    write_clip(root / "val" / "low" / "1", 600.0, 1, np.random.default_rng(9))
    assert split_fingerprint(load(root).val) != before


def test_train_separates_pitches_and_reads_back_its_classes(nv, trees: dict[str, Path], tmp_path: Path) -> None:
    """The ground truth: pitch classes are separated far above chance (1/3) by a small CNN after a few epochs."""
    root = folder_tree(tmp_path / "data", train=10, val=6, seed=3)
    flags = [a for k, v in FAST.items() if k not in ("sample_rate", "n_mels") for a in ("-D", f"{k}={v}")]
    result = nv("train", "--arch", "smallcnn", "--reduce", "mean", "--data", "audiofolder", "--data-dir", root,
                "--sample-rate", "8000", "--n-mels", "32", *flags, "--epochs", "10", "--lr", "3e-3", "--batch-size",
                "4", "--runs-dir", tmp_path / "runs", "--name", "pitch", "--format", "json")
    assert result.code == 0, result.err
    run = tmp_path / "runs" / "pitch"
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["options"]["layout"] == "folder" and config["data"]["options"]["duration"] == 0.5
    evaluation = json.loads(nv("eval", "--run", run, "--format", "json").out)[0]
    assert evaluation["accuracy"] >= 0.8, evaluation
    for split in ("train", "val"):
        write_clip(root / split / "zzz" / "0", 1500.0, 0, np.random.default_rng(0))
    refused = nv("eval", "--run", run)
    assert refused.code != 0 and "no longer has the classes it was trained on (new: zzz)" in refused.err
    assert "Traceback" not in refused.err and len([x for x in refused.err.splitlines() if x.startswith("error")]) == 1


@pytest.mark.parametrize("arch, layout, split", [("gru", "speechcommands", []), ("lstm", "esc50", ["--val-fold", "1"])])
def test_recurrent_runs_read_spectrogram_frames(nv, trees: dict[str, Path], tmp_path: Path, arch: str, layout: str,
                                                split: list[str]) -> None:
    flags = [a for k, v in FAST.items() for a in ("-D", f"{k}={v}")]
    result = nv("train", "--arch", arch, "--data", "audiofolder", "--data-dir", trees[layout], *flags, *split,
                "--epochs", "1", "--hidden-size", "8", "--runs-dir", tmp_path, "--name", arch)
    assert result.code == 0, result.err
    info = json.loads((tmp_path / arch / "config.json").read_text())["data"]["info"]
    assert info["layout"] == layout and info["val_fold"] == (1 if split else None)
    units = pd.read_csv(tmp_path / arch / "units.csv")
    assert units["step"].nunique() == PARAMS.shape[2]  # one step per spectrogram frame
    timed = nv("weights", "--run", tmp_path / arch, "--by", "time")
    assert timed.code == 0, timed.err
    table = pd.read_csv(tmp_path / arch / "weights_time.csv")
    assert set(table["class"]) == set(PITCHES) and table["step"].max() == PARAMS.shape[2] - 1


def test_data_list_and_info_show_it(nv, trees: dict[str, Path]) -> None:
    listed = nv("data", "list", "--format", "json")
    row = next(r for r in json.loads(listed.out) if r["name"] == "audiofolder")
    assert row["kind"] == "sound" and row["data"] == "yes"
    flags = [a for k, v in FAST.items() for a in ("-D", f"{k}={v}")]
    info = nv("data", "info", "audiofolder", "--data-dir", trees["esc50"], *flags, "--format", "json")
    assert info.code == 0, info.err
    assert [(r["class"], r["train"], r["val"]) for r in json.loads(info.out)] == [("mid", 4, 2), ("low", 4, 2),
                                                                                 ("high", 4, 2)]
    table = nv("data", "info", "audiofolder", "--data-dir", trees["esc50"], *flags)
    assert table.code == 0 and "layout" in table.out and "val_list" in table.out
