"""The sound data path: make_tones trees, the fold-split loader, decoding, skipping, caching, tone mechanisms."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from nvcli.data.registry import DataBundle, load_data, make_dataset
from nvcli.data.sound.spectrogram import SpecParams, decode, fit_length, log_mel, mel_frequencies
from nvcli.data.sound.tones import TONE_CLASSES, TONE_CUES, TONE_RATES, TONE_SUBTYPES
from nvcli.data.sound.urbansound import CSV_COLUMNS, METADATA_CSV
from nvcli.errors import NvError


def load_urbansound(data_dir: str | None = None, **options: object) -> DataBundle:
    return load_data("urbansound", {"data_dir": data_dir, **options})


def load_tones(**options: object) -> DataBundle:
    return load_data("tones", options)


def make_tones(out: Path, force: bool = False, **options: object) -> Path:
    return make_dataset("tones", out, options, force=force)


PER_CLASS = 10  # one clip per class in each of the 10 folds
FAST = dict(sample_rate=16000, duration=1.0, hop_length=256)  # the tones defaults, for urbansound's loader
FAST_PARAMS = SpecParams(16000, 1.0, 64, 1024, 256)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Clip-sized tensors gain nothing from intra-op threads, and on a busy CPU their spin-waits cost ~5x.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tones(tmp_path_factory.mktemp("tones") / "us8k", seed=0, per_class=PER_CLASS)


@pytest.fixture
def own_tree(tree: Path, tmp_path: Path) -> Path:
    """A private copy of the tree, free to corrupt."""
    return Path(shutil.copytree(tree, tmp_path / "us8k", ignore=shutil.ignore_patterns(".nv-cache")))


def csv_of(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / METADATA_CSV)


def load(root: Path, cache: Path, **options) -> DataBundle:
    return load_urbansound(str(root), cache_dir=str(cache), **{**FAST, **options})


def everything(ds) -> torch.Tensor:
    return torch.stack([ds[i][0] for i in range(len(ds))])


# ---------------------------------------------------------------------------------------------- make_tones


def test_make_tones_writes_the_urbansound_layout_with_mixed_formats(tree: Path) -> None:
    frame = csv_of(tree)
    assert list(frame.columns) == list(CSV_COLUMNS)
    assert len(frame) == PER_CLASS * len(TONE_CLASSES)
    assert sorted(frame["fold"].unique()) == list(range(1, 11))
    heads = [sf.info(str(tree / "audio" / f"fold{f}" / n)) for f, n in zip(frame["fold"], frame["slice_file_name"])]
    assert {h.samplerate for h in heads} == set(TONE_RATES)
    assert {h.channels for h in heads} == {1, 2}
    assert {h.subtype for h in heads} == set(TONE_SUBTYPES)
    rates_per_class = pd.Series([h.samplerate for h in heads]).groupby(frame["classID"].to_numpy()).nunique()
    assert (rates_per_class > 1).all(), "sample rate must not give the class away"
    # fsIDs (source recordings) never straddle folds, as in UrbanSound8K.
    assert (frame.groupby("fsID")["fold"].nunique() == 1).all()


def test_make_tones_is_deterministic_and_refuses_a_non_empty_dir(tmp_path: Path) -> None:
    a = make_tones(tmp_path / "a", seed=3, per_class=1)
    b = make_tones(tmp_path / "b", seed=3, per_class=1)
    c = make_tones(tmp_path / "c", seed=4, per_class=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert len(files) == len(TONE_CLASSES) and files == sorted(p.relative_to(b) for p in b.rglob("*.wav"))
    assert (a / METADATA_CSV).read_bytes() == (b / METADATA_CSV).read_bytes()
    for f in files:  # samples, not bytes: libsndfile stamps float WAVs with the time of writing
        (x, rate_x), (y, rate_y) = sf.read(str(a / f)), sf.read(str(b / f))
        assert rate_x == rate_y and np.array_equal(x, y) and sf.info(str(a / f)).subtype == sf.info(str(b / f)).subtype
    assert (a / METADATA_CSV).read_bytes() != (c / METADATA_CSV).read_bytes()
    with pytest.raises(NvError, match="not empty"):
        make_tones(a, per_class=1)
    make_tones(a, seed=5, per_class=1, force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NvError, match="not a directory"):
        make_tones(tmp_path / "file", per_class=1)


# ---------------------------------------------------------------------------------------------- loader


def test_urbansound_loader_reads_the_tree(tree: Path, tmp_path: Path) -> None:
    frame = csv_of(tree)
    assert list(frame["class"].drop_duplicates()) != list(TONE_CLASSES), "the CSV order must not be classID order"
    bundle = load_urbansound(str(tree), cache_dir=str(tmp_path / "cache"))  # UrbanSound8K defaults: 22.05 kHz, 4 s
    assert bundle.name == "urbansound" and bundle.kind == "sound" and bundle.in_channels == 1
    assert bundle.classes == list(TONE_CLASSES)  # ordered by classID, names from the `class` column
    x, label = bundle.train[0]
    assert x.shape == (1, 64, 1 + 22050 * 4 // 512) and x.dtype == torch.float32 and isinstance(label, int)
    class_of = dict(zip(frame["slice_file_name"], frame["class"]))
    for ds in (bundle.train, bundle.val):
        assert [bundle.classes[t] for t in ds.targets] == [class_of[Path(p).name] for p in ds.paths]
    assert len(bundle.mean) == len(bundle.std) == 1 and np.isfinite(bundle.mean[0]) and bundle.std[0] > 0
    info = bundle.info
    assert (info["sample_rate"], info["duration"], info["n_mels"], info["n_fft"], info["hop_length"]) == (
        22050, 4.0, 64, 1024, 512)
    assert info["val_fold"] == 10 and info["train_folds"] == list(range(1, 10))
    assert info["skipped"] == {"count": 0, "files": {}}
    assert info["input_shape"] == [1, 64, 173] and info["n_train"] + info["n_val"] == len(frame)


@pytest.mark.parametrize("val_fold", [10, 3])
def test_fold_split_has_no_leakage(tree: Path, tmp_path: Path, val_fold: int) -> None:
    frame = csv_of(tree)
    bundle = load(tree, tmp_path / "cache", val_fold=val_fold)
    train = {Path(p).name for p in bundle.train.paths}
    val = {Path(p).name for p in bundle.val.paths}
    assert val == set(frame.loc[frame["fold"] == val_fold, "slice_file_name"])
    assert train == set(frame.loc[frame["fold"] != val_fold, "slice_file_name"])
    fs_id = dict(zip(frame["slice_file_name"], frame["fsID"]))
    assert not {fs_id[n] for n in train} & {fs_id[n] for n in val}
    assert all(Path(p).parent.name == f"fold{val_fold}" for p in bundle.val.paths)
    assert sorted(set(bundle.val.targets)) == list(range(len(TONE_CLASSES)))


def test_mixed_rates_channels_and_formats_decode_to_one_shape(tree: Path, tmp_path: Path) -> None:
    bundle = load(tree, tmp_path / "cache")
    for ds in (bundle.train, bundle.val):
        x = everything(ds)
        assert x.shape == (len(ds), *FAST_PARAMS.shape)
        assert torch.isfinite(x).all()


@pytest.mark.parametrize(
    "rate,channels,subtype",
    [(8000, 1, "PCM_U8"), (16000, 2, "PCM_16"), (22050, 1, "PCM_24"), (44100, 2, "FLOAT"), (96000, 1, "PCM_32")],
)
def test_every_format_decodes_to_the_same_spectrogram(tmp_path: Path, rate: int, channels: int, subtype: str) -> None:
    def tone(sr: int) -> np.ndarray:
        return (0.5 * np.sin(2 * np.pi * 1000 * np.arange(round(0.8 * sr)) / sr)).astype(np.float32)

    reference = log_mel(fit_length(torch.from_numpy(tone(16000)), FAST_PARAMS.num_samples)[None], FAST_PARAMS)[0]
    wave = tone(rate)
    path = tmp_path / "a.wav"
    sf.write(str(path), np.stack([wave] * channels, axis=1), rate, subtype=subtype)
    got = decode(path, FAST_PARAMS)
    assert got.shape == reference.shape
    loud = reference > reference.max() - 30
    assert got[0].mean(-1).argmax() == reference[0].mean(-1).argmax()
    assert (got - reference)[loud].abs().mean() < 1.0


def test_log_mel_floors_each_clip_at_its_own_top_db() -> None:
    waves = torch.randn(3, FAST_PARAMS.num_samples)
    waves[1] *= 1e-4
    batch = log_mel(waves, FAST_PARAMS)
    alone = log_mel(waves[1:2], FAST_PARAMS)
    assert torch.allclose(batch[1], alone[0], atol=1e-4)


def test_limit_takes_a_class_balanced_subset(tree: Path, tmp_path: Path) -> None:
    bundle = load(tree, tmp_path / "cache", limit=14)
    assert len(bundle.train) == 14 and np.bincount(bundle.train.targets).tolist() == [2] * 7
    assert len(bundle.val) == 7
    with pytest.raises(NvError, match="limit"):
        load(tree, tmp_path / "cache", limit=0)


def test_classes_picks_a_subset_in_class_id_order(tree: Path, tmp_path: Path) -> None:
    bundle = load(tree, tmp_path / "cache", classes=["noise_burst", "low_tone"])
    assert bundle.classes == ["low_tone", "noise_burst"] and bundle.cues == {}
    assert len(bundle.train) == 18 and sorted(set(bundle.train.targets)) == [0, 1]
    assert all(f"-{TONE_CLASSES.index(bundle.classes[t])}-" in Path(p).name
               for p, t in zip(bundle.train.paths, bundle.train.targets))
    tones = load_tones(per_class=2, val_per_class=1, classes=["chirp_down", "chirp_up"])
    assert tones.classes == ["chirp_up", "chirp_down"] and set(tones.cues) == set(tones.classes)
    with pytest.raises(NvError, match="unknown class in tones 'chirp'.*Did you mean"):
        load_tones(per_class=2, val_per_class=1, classes=["chirp"])


# ---------------------------------------------------------------------------------------------- bad clips


def corrupt(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"this is not a wav file" * 10)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "missing":
        path.unlink()


def train_file(root: Path) -> Path:
    row = csv_of(root).query("fold == 1").iloc[0]
    return root / "audio" / "fold1" / row["slice_file_name"]


@pytest.mark.parametrize("how", ["garbage", "empty", "missing"])
def test_undecodable_clip_fails_naming_the_file(own_tree: Path, tmp_path: Path, how: str) -> None:
    bad = train_file(own_tree)
    corrupt(bad, how)
    with pytest.raises(NvError, match=bad.name) as err:
        load(own_tree, tmp_path / "cache")
    assert "\n" not in str(err.value) and "on_error skip" in str(err.value)


@pytest.mark.parametrize("how", ["garbage", "empty", "missing"])
def test_undecodable_clip_is_skipped_and_counted(
    own_tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    bad = train_file(own_tree)
    corrupt(bad, how)
    with caplog.at_level(logging.WARNING, logger="nvcli"):
        bundle = load(own_tree, tmp_path / "cache", on_error="skip")
    assert len(bundle.train) + len(bundle.val) == PER_CLASS * len(TONE_CLASSES) - 1
    assert str(bad) not in bundle.train.paths
    skipped = bundle.info["skipped"]
    assert skipped["count"] == 1 and list(skipped["files"]) == [f"audio/fold1/{bad.name}"]
    assert any(bad.name in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert everything(bundle.train).shape[0] == len(bundle.train)


def test_clip_that_fails_after_its_header_check_raises_naming_it(own_tree: Path, tmp_path: Path) -> None:
    # NaN samples pass the header check, so the split is already fixed: decoding raises, whatever on_error says.
    bad = own_tree / "audio" / "fold10" / csv_of(own_tree).query("fold == 10").iloc[0]["slice_file_name"]
    sf.write(str(bad), np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    bundle = load(own_tree, tmp_path / "cache", on_error="skip")
    with pytest.raises(NvError, match=bad.name):
        everything(bundle.val)


# ---------------------------------------------------------------------------------------------- cache


def test_second_pass_reads_the_cache_and_a_changed_parameter_misses(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load(tree, cache)
    n = len(first.train)
    assert first.train.decoded == n  # the normalisation stats decoded every training clip, once
    everything(first.train)
    assert (first.train.decoded, first.train.cache_hits) == (n, n)

    again = load(tree, cache)
    everything(again.train)
    everything(again.val)
    assert again.train.decoded == 0 and again.val.decoded == len(again.val) and again.train.cache_hits == 2 * n
    assert again.mean == first.mean and again.std == first.std

    fewer_mels = load(tree, cache, n_mels=32)
    assert fewer_mels.train.decoded == n and fewer_mels.train[0][0].shape == (1, 32, 63)

    resized = load(tree, cache, image_size=48)  # resizing happens after the cache: no new decode
    assert resized.train.decoded == 0 and resized.train[0][0].shape == (1, 48, 48)
    assert len(list(cache.iterdir())) == 2  # one subdirectory per spectrogram parameter set


def test_cache_entry_follows_the_file_and_survives_a_broken_entry(own_tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load(own_tree, cache)
    Path(first.train.entries[0]).write_bytes(b"torn")
    path = Path(first.train.paths[1])
    data, rate = sf.read(str(path))
    sf.write(str(path), data[: len(data) // 2], rate)  # a changed file: new size and mtime
    again = load(own_tree, cache)
    assert again.train.decoded == 2
    assert torch.load(again.train.entries[0], weights_only=True).shape == FAST_PARAMS.shape


def test_dataloader_workers_fill_the_cache(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    bundle = load(tree, cache)
    batches = list(DataLoader(bundle.val, batch_size=4, num_workers=2))
    assert sum(len(y) for _, y in batches) == len(bundle.val)
    assert all(Path(e).is_file() for e in bundle.val.entries)
    again = load(tree, cache)
    everything(again.val)
    assert again.val.decoded == 0


def test_default_cache_dir_is_in_the_data_dir_else_the_user_cache(
    own_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = load_urbansound(str(own_tree), **FAST)
    assert Path(bundle.info["cache_dir"]).parent == own_tree / ".nv-cache"
    shutil.rmtree(own_tree / ".nv-cache")
    (own_tree / ".nv-cache").write_text("in the way")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    bundle = load_urbansound(str(own_tree), **FAST)
    assert Path(bundle.info["cache_dir"]).parent == tmp_path / "xdg" / "nv" / "sound"


# ---------------------------------------------------------------------------------------------- tones


@pytest.fixture(scope="module")
def tones() -> DataBundle:
    return load_tones(seed=0, per_class=12, val_per_class=4)


def profiles(x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per clip: mean power (dB) per mel band over the event's frames, and the event's spectrogram."""
    events = [spec[:, spec.max(0).values > spec.max() - 20] for spec in x[:, 0]]
    return torch.stack([10 * torch.log10((10 ** (e / 10)).mean(1)) for e in events]), events


def check_mechanisms(x: torch.Tensor, targets: list[int], params: SpecParams) -> None:
    freqs = mel_frequencies(params)
    y = torch.tensor(targets)
    of = {name: (y == c) for c, name in enumerate(TONE_CLASSES)}
    prof, events = profiles(x)
    peak_hz = freqs[prof.argmax(1)]
    bands_near_peak = (prof > prof.max(1, keepdim=True).values - 20).sum(1)
    assert ((peak_hz[of["low_tone"]] > 150) & (peak_hz[of["low_tone"]] < 450)).all()
    assert ((peak_hz[of["high_tone"]] > 1800) & (peak_hz[of["high_tone"]] < 3800)).all()
    assert peak_hz[of["high_tone"]].min() > peak_hz[of["low_tone"]].max()
    assert (bands_near_peak[of["low_tone"] | of["high_tone"]] <= 4).all()  # pure: one narrow band
    for name, sign in (("chirp_up", 1), ("chirp_down", -1)):
        for i in torch.nonzero(of[name]).flatten().tolist():
            track = events[i].argmax(0).float().numpy()  # the loudest band in each frame of the event
            assert sign * np.polyfit(np.arange(len(track)), track, 1)[0] > 0.3, (name, i)
    burst = of["noise_burst"]
    assert ((peak_hz[burst] > 900) & (peak_hz[burst] < 2700)).all()
    assert (bands_near_peak[burst] >= 5).all()  # a band of noise, wider than a tone
    assert max(events[i].shape[1] for i in torch.nonzero(burst).flatten().tolist()) * params.hop_length < (
        0.4 * params.sample_rate)
    assert (bands_near_peak[of["click_train"]] > params.n_mels // 2).all()  # broadband
    for i in torch.nonzero(of["harmonic_stack"]).flatten().tolist():
        p = prof[i]
        maxima = [b for b in range(1, len(p) - 1) if p[b] >= p[b - 1] and p[b] > p[b + 1] and p[b] > p.max() - 25]
        assert len(maxima) >= 3 and freqs[maxima[0]] < 320, i  # fundamental plus evenly spaced harmonics


def test_tones_in_memory_follow_their_mechanisms(tones: DataBundle) -> None:
    assert tones.classes == list(TONE_CLASSES) and set(tones.cues) == set(TONE_CLASSES)
    assert tones.train.x.shape == (12 * 7, *FAST_PARAMS.shape) and len(tones.val) == 4 * 7
    check_mechanisms(tones.train.x, tones.train.targets, FAST_PARAMS)


def test_tones_on_disk_follow_their_mechanisms(tree: Path, tmp_path: Path) -> None:
    bundle = load_tones(data_dir=str(tree), cache_dir=str(tmp_path / "cache"))
    assert bundle.name == "tones" and bundle.cues == TONE_CUES
    check_mechanisms(everything(bundle.train), bundle.train.targets, FAST_PARAMS)


def test_tones_are_deterministic_in_the_seed(tones: DataBundle) -> None:
    same = load_tones(seed=0, per_class=12, val_per_class=4)
    other = load_tones(seed=1, per_class=12, val_per_class=4)
    assert torch.equal(same.train.x, tones.train.x) and torch.equal(same.val.x, tones.val.x)
    assert not torch.equal(other.train.x, tones.train.x)
    assert same.mean == tones.mean and np.isfinite(tones.mean[0]) and tones.std[0] > 0
    small = load_tones(seed=0, per_class=2, val_per_class=1, n_mels=32, image_size=40)
    assert small.train[0][0].shape == (1, 40, 40) and small.info["input_shape"] == [1, 40, 40]


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_inputs_are_named(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(NvError, match="needs data_dir"):
        load_urbansound()
    with pytest.raises(NvError, match="nowhere"):
        load_urbansound(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NvError, match="UrbanSound8K.csv not found"):
        load_urbansound(str(tmp_path / "empty"))
    with pytest.raises(NvError, match="val_fold=11 .*valid: 1, 2, 3"):
        load(tree, tmp_path / "cache", val_fold=11)
    with pytest.raises(NvError, match="on_error value 'ignore'; valid: fail, skip"):
        load(tree, tmp_path / "cache", on_error="ignore")
    with pytest.raises(NvError, match="n_mels=256"):
        load(tree, tmp_path / "cache", n_mels=256, n_fft=256)
    with pytest.raises(NvError, match="fewer than n_fft"):
        load(tree, tmp_path / "cache", duration=0.01)
    with pytest.raises(NvError, match="'sample_rate' is '16k'; expected int"):
        load(tree, tmp_path / "cache", sample_rate="16k")
    with pytest.raises(NvError, match="image_size=0 must be > 0"):
        load_tones(per_class=1, val_per_class=1, image_size=0)
    assert SpecParams(duration=2).key() == SpecParams(duration=2.0).key()  # -D duration=2 reuses the cache


def test_bad_trees_are_named(own_tree: Path, tmp_path: Path) -> None:
    csv = own_tree / METADATA_CSV
    frame = pd.read_csv(csv)
    frame.drop(columns=["classID"]).to_csv(csv, index=False)
    with pytest.raises(NvError, match="lacks column.*classID"):
        load(own_tree, tmp_path / "cache")
    frame.assign(fold=frame["fold"].astype(str).where(frame.index != 3, "ten")).to_csv(csv, index=False)
    with pytest.raises(NvError, match="row 5: fold='ten'"):
        load(own_tree, tmp_path / "cache")
    frame.assign(**{"class": frame["class"].where(frame.index != 0, "other")}).to_csv(csv, index=False)
    with pytest.raises(NvError, match="several class values"):
        load(own_tree, tmp_path / "cache")
    frame.to_csv(csv, index=False)
    shutil.rmtree(own_tree / "audio")
    with pytest.raises(NvError, match="audio folder .* not found"):
        load(own_tree, tmp_path / "cache")


def test_registered_and_reachable_through_load_data() -> None:
    from nvcli.data.registry import readable

    assert {"urbansound", "tones"} <= {e.name for e in readable() if e.kind == "sound"}
    bundle = load_data("tones", {"seed": 0, "per_class": 2, "val_per_class": 1, "val_fold": None, "n_mels": 32,
                                 "image_size": None})
    assert bundle.kind == "sound" and bundle.info["n_mels"] == 32


def test_cache_dir_must_be_writable(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NvError, match="not a writable directory"):
        load(tree, tmp_path / "file")
    assert os.path.isfile(tmp_path / "file")


def test_a_small_tones_tree_reads_back_with_the_default_validation_fold(nv, tmp_path) -> None:
    """`nv data make tones -D per_class=3` fills folds 10, 9, 8: the defaults (val_fold 10) read it back."""
    tree = tmp_path / "tones"
    assert nv("data", "make", "tones", "--out", tree, "-D", "per_class=3").code == 0
    assert sorted(p.name for p in (tree / "audio").iterdir()) == ["fold10", "fold8", "fold9"]
    info = nv("data", "info", "urbansound", "--data-dir", tree, "-f", "json")
    assert info.code == 0, info.err
    import json

    rows = json.loads(info.out)
    assert all(r["val"] == 1 and r["train"] == 2 for r in rows)
