"""Sound datasets as log-mel spectrograms in dB: UrbanSound8K read from disk, and the synthetic `tones`.

Every clip goes through one transform: decode with soundfile, mix to mono, resample, zero-pad or crop to
a fixed duration, log-mel spectrogram. Clips read from disk are decoded once and then served from an
on-disk cache keyed by the file (path, size, mtime) and by every spectrogram parameter.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio
from torch.utils.data import Dataset

from .atomic import atomic_path, save_torch, write_csv, write_json
from .data import DataBundle, maker, output_dir, register
from .errors import NvError, choice_error

log = logging.getLogger("nvcli")

METADATA_CSV = Path("metadata") / "UrbanSound8K.csv"
CSV_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
REQUIRED_COLUMNS = ("slice_file_name", "fold", "classID", "class")
ON_ERROR = ("fail", "skip")
CACHE_VERSION = 1  # bump when decoding changes, so old cache entries stop matching
STATS_CLIPS = 256  # training clips sampled for the normalisation mean/std
_MEL_BATCH = 256

TONE_CUES = {
    "low_tone": "a steady pure sinusoid at 200-400 Hz: one narrow band low in the spectrogram",
    "high_tone": "a steady pure sinusoid at 2-3.5 kHz: one narrow band high in the spectrogram",
    "chirp_up": "a sinusoid sweeping from ~300 Hz up to ~3 kHz: a band rising over time",
    "chirp_down": "a sinusoid sweeping from ~3 kHz down to ~300 Hz: a band falling over time",
    "noise_burst": "a 0.1-0.3 s burst of noise limited to a 0.5-1 kHz wide band within 1-2.5 kHz: one compact block",
    "click_train": "impulses every 20-50 ms: evenly spaced broadband vertical lines",
    "harmonic_stack": "a 150-300 Hz fundamental plus harmonics 2-6: evenly spaced parallel horizontal bands",
}
TONE_CLASSES = tuple(TONE_CUES)
TONE_RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000)
TONE_SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT")


@dataclass(frozen=True)
class SpecParams:
    """How a waveform becomes a log-mel spectrogram; every field is part of the cache key."""

    sample_rate: int = 22050
    duration: float = 4.0
    n_mels: int = 64
    n_fft: int = 1024
    hop_length: int = 512
    top_db: float = 80.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_mels", "n_fft", "hop_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NvError(f"{name} must be a positive integer, got {value!r}")
        for name in ("duration", "top_db"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise NvError(f"{name} must be a positive number, got {value!r}")
            # 2 and 2.0 must give the same cache key
            object.__setattr__(self, name, float(value))
        if self.num_samples <= self.n_fft:
            raise NvError(
                f"duration={self.duration} s at sample_rate={self.sample_rate} gives {self.num_samples} samples, "
                f"fewer than n_fft={self.n_fft}; use a longer duration or a smaller n_fft"
            )
        with warnings.catch_warnings():  # torchaudio warns about empty bands; the NvError below says it better
            warnings.simplefilter("ignore")
            fbank = torchaudio.functional.melscale_fbanks(
                self.n_fft // 2 + 1, 0.0, self.sample_rate / 2, self.n_mels, self.sample_rate
            )
        if bool((fbank.amax(dim=0) == 0).any()):
            raise NvError(
                f"n_mels={self.n_mels} is too many for n_fft={self.n_fft} at sample_rate={self.sample_rate}: "
                f"some mel bands fall between FFT bins; use fewer n_mels or a larger n_fft"
            )

    @property
    def num_samples(self) -> int:
        """Samples per clip after resampling and padding/cropping."""
        return round(self.duration * self.sample_rate)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one spectrogram: [1, n_mels, frames]."""
        return (1, self.n_mels, 1 + self.num_samples // self.hop_length)

    def key(self) -> str:
        """A short digest of these parameters (and the cache version): the cache subdirectory name."""
        text = json.dumps({**asdict(self), "version": CACHE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def info(self) -> dict[str, Any]:
        """The parameters and the transform they drive, for config.json."""
        return {
            **asdict(self),
            "frames": self.shape[2],
            "transform": "soundfile decode; mean of channels; torchaudio.functional.resample; zero-pad or crop "
            "at the end; MelSpectrogram(power=2, htk mel, f_min=0, f_max=sample_rate/2); "
            "AmplitudeToDB(top_db per clip)",
        }


# ---------------------------------------------------------------------------------------------- transform


@lru_cache(maxsize=8)
def _transforms(params: SpecParams) -> tuple[torch.nn.Module, torch.nn.Module]:
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=params.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length, n_mels=params.n_mels,
        power=2.0,
    )
    return mel, torchaudio.transforms.AmplitudeToDB(stype="power", top_db=params.top_db)


def log_mel(waves: torch.Tensor, params: SpecParams) -> torch.Tensor:
    """Log-mel spectrograms in dB, [N, 1, n_mels, frames], of mono waveforms [N, num_samples] at params.sample_rate."""
    mel, to_db = _transforms(params)
    with torch.no_grad():
        # The channel axis must exist before AmplitudeToDB: on [N, F, T] its top_db floor is the batch max.
        return to_db(mel(waves.float()).unsqueeze(1))


def fit_length(wave: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Crop, or zero-pad at the end, the last axis of `wave` to `num_samples`."""
    if wave.shape[-1] >= num_samples:
        return wave[..., :num_samples]
    return F.pad(wave, (0, num_samples - wave.shape[-1]))


def decode(path: str | os.PathLike, params: SpecParams) -> torch.Tensor:
    """Decode one audio file into its log-mel spectrogram [1, n_mels, frames]; NvError names an undecodable file."""
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            data = f.read(frames=math.ceil(params.duration * rate), dtype="float32", always_2d=True)
        wave = torch.from_numpy(data).mean(dim=1)
        if not bool(torch.isfinite(wave).all()):
            raise ValueError("it contains NaN or infinite samples")
        if rate != params.sample_rate:
            wave = torchaudio.functional.resample(wave, rate, params.sample_rate)
    except (RuntimeError, OSError, ValueError) as e:  # soundfile raises LibsndfileError, a RuntimeError
        raise NvError(f"cannot decode audio file {path}: {_reason(e)}") from e
    return log_mel(fit_length(wave, params.num_samples)[None], params)[0]


def mel_frequencies(params: SpecParams) -> torch.Tensor:
    """Centre frequency in Hz of each mel band (spectrogram row, low to high) made with `params`."""
    top = 2595.0 * math.log10(1.0 + params.sample_rate / 2 / 700.0)
    mels = torch.linspace(0.0, top, params.n_mels + 2)[1:-1]
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


def _reason(e: BaseException) -> str:
    return str(getattr(e, "error_string", None) or e).strip().rstrip(".")


def _check_image_size(image_size: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise NvError(f"image_size must be a positive integer (pixels) or unset, got {image_size!r}")


def _resize(x: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """Bilinearly resize spectrograms [N, 1, F, T] to [N, 1, image_size, image_size] (unchanged if None)."""
    if image_size is None:
        return x
    return F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------- datasets


class SpectrogramFiles(Dataset):
    """Audio files as (log-mel spectrogram, label): decoded on first use, then read from the disk cache.

    `decoded` and `cache_hits` count, in this process, the items that were decoded or read from the cache
    (each DataLoader worker keeps its own copy of the counters).
    """

    def __init__(
        self,
        paths: Sequence[str],
        targets: Sequence[int],
        params: SpecParams,
        cache_dir: Path,
        image_size: int | None = None,
    ) -> None:
        self.paths = list(paths)
        self.targets = list(targets)
        self.params = params
        self.cache_dir = Path(cache_dir)
        self.image_size = image_size
        self.entries = [str(_cache_entry(self.cache_dir, p, params)) for p in self.paths]
        self.decoded = 0
        self.cache_hits = 0
        self._warned_write = False

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = _load_entry(self.entries[i], self.params.shape)
        if x is None:
            x = decode(self.paths[i], self.params)
            self.decoded += 1
            self._store(self.entries[i], x)
        else:
            self.cache_hits += 1
        return _resize(x[None], self.image_size)[0], self.targets[i]

    def _store(self, entry: str, x: torch.Tensor) -> None:
        try:
            save_torch(entry, x)
        except OSError as e:  # a full or read-only disk only costs speed: keep training, say so once
            if not self._warned_write:
                log.warning("cannot write sound cache entry %s (%s); clips will be decoded again", entry, e)
                self._warned_write = True


class SpectrogramTensors(Dataset):
    """Spectrograms held in memory [N, 1, F, T], as (x, label)."""

    def __init__(self, x: torch.Tensor, targets: Sequence[int]) -> None:
        self.x = x
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], self.targets[i]


def _cache_entry(cache_dir: Path, path: str, params: SpecParams) -> Path:
    st = os.stat(path)
    ident = f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}"
    return cache_dir / params.key() / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.pt"


def _load_entry(entry: str | Path, shape: tuple[int, ...]) -> torch.Tensor | None:
    """The cached spectrogram, or None when missing or unusable (then the clip is decoded again)."""
    try:
        x = torch.load(entry, weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as e:  # any unreadable entry (a crash mid-write, a foreign file) is just a miss
        log.debug("ignoring unreadable sound cache entry %s: %s", entry, e)
        return None
    if isinstance(x, torch.Tensor) and tuple(x.shape) == shape and x.dtype == torch.float32:
        return x
    return None


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _cache_root(data_dir: Path, cache_dir: str | os.PathLike | None) -> Path:
    """`cache_dir` if given, else <data_dir>/.nv-cache if writable, else ~/.cache/nv/sound."""
    if cache_dir is not None:
        path = Path(cache_dir).expanduser()
        if not _writable_dir(path):
            raise NvError(f"cache_dir {path} is not a writable directory; pass a writable --cache-dir")
        return path
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nv" / "sound"
    for path in (data_dir / ".nv-cache", user):
        if _writable_dir(path):
            if path == user:
                log.info("%s is not writable; caching spectrograms in %s", data_dir, path)
            return path
    raise NvError(f"neither {data_dir / '.nv-cache'} nor {user} is writable; pass a writable --cache-dir")


# ---------------------------------------------------------------------------------------------- index


def _read_metadata(root: Path) -> pd.DataFrame:
    """The metadata CSV, checked: required columns present, fold and classID integers, one name per classID."""
    csv = root / METADATA_CSV
    if not csv.is_file():
        raise NvError(f"{csv} not found; expected the UrbanSound8K layout: <data_dir>/{METADATA_CSV.as_posix()} "
                      f"and <data_dir>/audio/fold1..fold10/*.wav")
    try:
        frame = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise NvError(f"cannot read {csv}: {_reason(e)}") from e
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise NvError(f"{csv} lacks column(s) {', '.join(missing)}; expected columns {', '.join(CSV_COLUMNS)}")
    if frame.empty:
        raise NvError(f"{csv} lists no clips")
    for column in ("fold", "classID"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise NvError(f"{csv} row {row + 2}: {column}={frame[column].iloc[row]!r} is not an integer")
        frame[column] = values.astype(int)
    frame["class"] = frame["class"].astype(str)
    frame["slice_file_name"] = frame["slice_file_name"].astype(str)
    for key, other in (("classID", "class"), ("class", "classID")):
        counts = frame.groupby(key)[other].nunique()
        if (counts > 1).any():
            value = counts[counts > 1].index[0]
            names = sorted(frame.loc[frame[key] == value, other].astype(str).unique())
            raise NvError(f"{csv}: {key} {value!r} has several {other} values ({', '.join(names)}); each must have one")
    return frame


def _choose(available: Sequence[str], wanted: Sequence[str] | None, source: str) -> list[str]:
    """The `wanted` classes (all when None), in the order of `available`; NvError for an unknown one."""
    if not wanted:
        return list(available)
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    for name in wanted:
        if name not in available:
            raise choice_error(f"class in {source}", name, list(available))
    return [name for name in available if name in wanted]


def _balanced(labels: Sequence[int], limit: int | None, seed: int) -> list[int]:
    """Sorted indices of at most `limit` items, classes taking turns, each class in a seeded order."""
    if limit is None:
        return list(range(len(labels)))
    if limit < 1:
        raise NvError(f"limit must be a positive number of clips per split, got {limit}")
    seen: dict[int, int] = {}
    ranked = []
    for i in np.random.default_rng(seed).permutation(len(labels)).tolist():
        seen[labels[i]] = seen.get(labels[i], 0) + 1
        ranked.append((seen[labels[i]], labels[i], i))
    return sorted(i for _, _, i in sorted(ranked)[:limit])


def _probe(path: Path) -> str | None:
    """Why `path` cannot be decoded, judged from its header, or None when it looks sound."""
    if not path.is_file():
        return "file not found"
    try:
        head = sf.info(str(path))
    except (RuntimeError, OSError) as e:
        return _reason(e)
    if head.frames <= 0 or head.channels < 1 or head.samplerate < 1:
        return f"no audio ({head.frames} frames, {head.channels} channels, {head.samplerate} Hz)"
    return None


def _index(
    rows: pd.DataFrame, root: Path, label_of: dict[int, int], params: SpecParams, cache: Path
) -> tuple[list[str], list[int], dict[str, str]]:
    """Paths and labels of the decodable clips in `rows`, and {relative path: reason} for the others."""
    paths, targets, problems = [], [], {}
    for fold, name, class_id in zip(rows["fold"], rows["slice_file_name"], rows["classID"]):
        path = root / "audio" / f"fold{fold}" / name
        # A cached clip was decoded before, so only uncached ones need their header checked.
        cached = path.is_file() and _cache_entry(cache, str(path), params).is_file()
        problem = None if cached else _probe(path)
        if problem:
            problems[path.relative_to(root).as_posix()] = problem
        else:
            paths.append(str(path))
            targets.append(label_of[class_id])
    return paths, targets, problems


def _mean_std(tensors: Iterable[torch.Tensor]) -> tuple[float, float]:
    total = square = count = 0.0
    for x in tensors:
        x = x.double()
        total += float(x.sum())
        square += float((x * x).sum())
        count += x.numel()
    mean = total / count
    return mean, max(math.sqrt(max(square / count - mean * mean, 0.0)), 1e-6)


def _existing_dir(data_dir: str | os.PathLike | None, name: str) -> Path:
    if data_dir is None:
        raise NvError(f"dataset '{name}' needs --data-dir: a directory with {METADATA_CSV.as_posix()} "
                      f"and audio/fold1..fold10/")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise NvError(f"data dir {root} is not a directory; expected the UrbanSound8K layout "
                      f"({METADATA_CSV.as_posix()} and audio/fold1..fold10/)")
    return root


def _load_tree(
    name: str,
    data_dir: str | os.PathLike | None,
    params: SpecParams,
    *,
    seed: int,
    val_fold: int,
    on_error: str,
    cache_dir: str | os.PathLike | None,
    image_size: int | None,
    limit: int | None,
    cues: dict[str, str],
    classes: Sequence[str] | None,
) -> DataBundle:
    """Load a dataset in the UrbanSound8K layout, split by fold (val = `val_fold`, train = every other fold)."""
    if on_error not in ON_ERROR:
        raise choice_error("on_error", on_error, ON_ERROR)
    _check_image_size(image_size)
    root = _existing_dir(data_dir, name)
    frame = _read_metadata(root)
    by_id = frame.drop_duplicates("classID").sort_values("classID")
    classes = _choose(by_id["class"].tolist(), classes, str(root / METADATA_CSV))
    frame = frame[frame["class"].isin(classes)]
    if not (root / "audio").is_dir():
        raise NvError(f"audio folder {root / 'audio'} not found; expected audio/fold1..fold10/*.wav beside metadata/")
    folds = sorted(int(f) for f in frame["fold"].unique())
    if val_fold not in folds:
        raise NvError(f"val_fold={val_fold} is not a fold of {root / METADATA_CSV}; "
                      f"valid: {', '.join(map(str, folds))}")
    if len(folds) < 2:
        raise NvError(f"{root / METADATA_CSV} has only fold {folds[0]}; a fold split needs at least 2 folds")
    label_of = {int(i): label for label, i in enumerate(by_id.loc[by_id["class"].isin(classes), "classID"])}

    cache = _cache_root(root, cache_dir)
    params_json = cache / params.key() / "params.json"
    if not params_json.is_file():
        write_json(params_json, {**asdict(params), "version": CACHE_VERSION})

    splits: dict[str, SpectrogramFiles] = {}
    problems: dict[str, str] = {}
    for split, rows in (("train", frame[frame["fold"] != val_fold]), ("val", frame[frame["fold"] == val_fold])):
        rows = rows.iloc[_balanced(rows["classID"].map(label_of).tolist(), limit, seed)]
        paths, targets, bad = _index(rows, root, label_of, params, cache)
        problems.update(bad)
        splits[split] = SpectrogramFiles(paths, targets, params, cache, image_size)
    if problems:
        listed = "; ".join(f"{p}: {r}" for p, r in list(problems.items())[:3])
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        if on_error == "fail":
            raise NvError(f"cannot decode {len(problems)} audio file(s) under {root}: {listed}{more} "
                          f"(fix or remove them, or pass --on-error skip)")
        log.warning("%s: skipped %d undecodable audio file(s) (on_error=skip): %s%s",
                    name, len(problems), listed, more)
    for split, ds in splits.items():
        if len(ds) == 0:
            raise NvError(f"the {split} split of {root} has no decodable clips (val_fold={val_fold}, limit={limit})")

    train = splits["train"]
    stats_idx = _balanced(train.targets, min(STATS_CLIPS, len(train)), seed)
    mean, std = _mean_std(train[i][0] for i in stats_idx)
    info = {
        **params.info(),
        "data_dir": str(root),
        "val_fold": val_fold,
        "train_folds": [f for f in folds if f != val_fold],
        "on_error": on_error,
        "skipped": {"count": len(problems), "files": problems},
        "cache_dir": str(cache / params.key()),
        "image_size": image_size,
        "input_shape": [1, image_size, image_size] if image_size else list(params.shape),
        "limit": limit,
        "seed": seed,
        "n_train": len(train),
        "n_val": len(splits["val"]),
        "norm_stats": f"mean/std of {len(stats_idx)} of {len(train)} training clips",
    }
    log.info("%s: %d train / %d val clips (val fold %d), cache %s",
             name, len(train), len(splits["val"]), val_fold, info["cache_dir"])
    return DataBundle(
        name=name, kind="sound", train=train, val=splits["val"], classes=classes, in_channels=1,
        mean=[mean], std=[std], cues={c: cues[c] for c in classes if c in cues}, info=info,
    )


@register("urbansound", "UrbanSound8K from --data-dir (metadata/UrbanSound8K.csv, audio/foldK), split by fold, "
          "as log-mel spectrograms", kind="sound")
def load_urbansound(
    data_dir: str | None = None,
    seed: int = 0,
    val_fold: int = 10,
    on_error: str = "fail",
    cache_dir: str | None = None,
    sample_rate: int = 22050,
    duration: float = 4.0,
    n_mels: int = 64,
    n_fft: int = 1024,
    hop_length: int = 512,
    image_size: int | None = None,
    limit: int | None = None,
    classes: Sequence[str] | None = None,
) -> DataBundle:
    """Load UrbanSound8K from disk: val = fold `val_fold`, train = the other folds, cached log-mel spectrograms."""
    params = SpecParams(sample_rate, duration, n_mels, n_fft, hop_length)
    return _load_tree("urbansound", data_dir, params, seed=seed, val_fold=val_fold, on_error=on_error,
                      cache_dir=cache_dir, image_size=image_size, limit=limit, cues={}, classes=classes)


# ---------------------------------------------------------------------------------------------- tones


def _sine(t: np.ndarray, freq: float, rng: np.random.Generator) -> np.ndarray:
    return np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))


def _chirp(t: np.ndarray, start: float, stop: float) -> np.ndarray:
    """A sweep from `start` to `stop` Hz, exponential in frequency (straight on a mel axis)."""
    span = t[-1] if len(t) > 1 and t[-1] > 0 else 1.0
    ratio = stop / start
    return np.sin(2 * np.pi * start * span / np.log(ratio) * (ratio ** (t / span) - 1))


def _band_noise(t: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    low = rng.uniform(1000, 1500)
    high = low + rng.uniform(500, 1000)
    spectrum = np.fft.rfft(rng.normal(size=len(t)))
    freqs = np.fft.rfftfreq(len(t), 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, n=len(t))


def _clicks(t: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    wave = np.zeros(len(t))
    wave[:: max(1, round(rng.uniform(0.02, 0.05) * rate))] = 1.0
    return wave


def _harmonics(t: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.uniform(150, 300)
    return sum(_sine(t, k * f0, rng) / k for k in range(1, 7) if k * f0 < rate / 2)


_MECHANISMS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "low_tone": lambda t, rate, rng: _sine(t, rng.uniform(200, 400), rng),
    "high_tone": lambda t, rate, rng: _sine(t, rng.uniform(2000, 3500), rng),
    "chirp_up": lambda t, rate, rng: _chirp(t, rng.uniform(250, 350), rng.uniform(2700, 3300)),
    "chirp_down": lambda t, rate, rng: _chirp(t, rng.uniform(2700, 3300), rng.uniform(250, 350)),
    "noise_burst": lambda t, rate, rng: _band_noise(t, rate, rng),
    "click_train": lambda t, rate, rng: _clicks(t, rate, rng),
    "harmonic_stack": lambda t, rate, rng: _harmonics(t, rate, rng),
}


def synth_tone(name: str, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
    """One mono clip of tone class `name` (0.6-1 x `duration` long): its mechanism plus random nuisances."""
    length = max(1, round(duration * sample_rate * rng.uniform(0.6, 1.0)))
    seconds = rng.uniform(0.1, 0.3) if name == "noise_burst" else length / sample_rate * rng.uniform(0.4, 0.8)
    event_len = int(min(length, max(1, round(seconds * sample_rate))))
    onset = int(rng.integers(0, length - event_len + 1))
    event = _MECHANISMS[name](np.arange(event_len) / sample_rate, sample_rate, rng)
    # Raised-cosine fades: a hard onset would add a broadband click to every class.
    fade = min(event_len // 4, round(0.01 * sample_rate))
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        event[:fade] *= ramp
        event[-fade:] *= ramp[::-1]
    event *= rng.uniform(0.2, 0.8) / max(float(np.abs(event).max()), 1e-9)
    wave = rng.normal(0.0, rng.uniform(0.001, 0.005), length)
    wave[onset : onset + event_len] += event
    return wave.astype(np.float32)


def _tone_clips(
    names: Sequence[str], per_class: int, rng: np.random.Generator, params: SpecParams
) -> Iterator[tuple[torch.Tensor, int]]:
    for _ in range(per_class):
        for label, name in enumerate(names):
            wave = torch.from_numpy(synth_tone(name, rng, params.sample_rate, params.duration))
            yield fit_length(wave, params.num_samples), label


def _tone_split(
    names: Sequence[str], per_class: int, rng: np.random.Generator, params: SpecParams
) -> tuple[torch.Tensor, list[int]]:
    """Spectrograms [N, 1, F, T] and labels of `per_class` generated clips of each tone class in `names`."""
    specs, labels, waves = [], [], []
    for wave, label in _tone_clips(names, per_class, rng, params):
        waves.append(wave)
        labels.append(label)
        if len(waves) == _MEL_BATCH:
            specs.append(log_mel(torch.stack(waves), params))
            waves = []
    if waves:
        specs.append(log_mel(torch.stack(waves), params))
    return torch.cat(specs), labels


@register("tones", "synthetic sounds with known spectral mechanisms (tones, chirps, noise burst, clicks, "
          "harmonics) as log-mel spectrograms; --data-dir reads a tree written by make_tones", kind="sound")
def load_tones(
    data_dir: str | None = None,
    seed: int = 0,
    per_class: int = 60,
    val_per_class: int = 20,
    val_fold: int = 10,
    on_error: str = "fail",
    cache_dir: str | None = None,
    sample_rate: int = 16000,
    duration: float = 1.0,
    n_mels: int = 64,
    n_fft: int = 1024,
    hop_length: int = 256,
    image_size: int | None = None,
    limit: int | None = None,
    classes: Sequence[str] | None = None,
) -> DataBundle:
    """Synthesise the tones dataset in memory from `seed`, or read a make_tones tree from `data_dir`.

    In memory the split is generated (per_class / val_per_class); val_fold, on_error and cache_dir apply to a data_dir.
    """
    params = SpecParams(sample_rate, duration, n_mels, n_fft, hop_length)
    if data_dir is not None:
        return _load_tree("tones", data_dir, params, seed=seed, val_fold=val_fold, on_error=on_error,
                          cache_dir=cache_dir, image_size=image_size, limit=limit, cues=TONE_CUES,
                          classes=classes)
    if per_class < 1 or val_per_class < 1:
        raise NvError(f"per_class and val_per_class must be at least 1, got {per_class} and {val_per_class}")
    _check_image_size(image_size)
    names = _choose(TONE_CLASSES, classes, "tones")
    splits = {}
    for split_id, (split, count) in enumerate((("train", per_class), ("val", val_per_class))):
        x, labels = _tone_split(names, count, np.random.default_rng([seed, split_id]), params)
        keep = _balanced(labels, limit, seed)
        splits[split] = SpectrogramTensors(_resize(x[keep], image_size), [labels[i] for i in keep])
    mean, std = _mean_std([splits["train"].x])
    info = {
        **params.info(),
        "split": "generated: per_class train and val_per_class val clips per class, independent draws",
        "per_class": per_class,
        "val_per_class": val_per_class,
        "image_size": image_size,
        "input_shape": list(splits["train"].x.shape[1:]),
        "limit": limit,
        "seed": seed,
        "n_train": len(splits["train"]),
        "n_val": len(splits["val"]),
        "norm_stats": "mean/std of all training clips",
    }
    return DataBundle(
        name="tones", kind="sound", train=splits["train"], val=splits["val"], classes=names,
        in_channels=1, mean=[mean], std=[std], cues={c: TONE_CUES[c] for c in names}, info=info,
    )


@maker("tones", "the tones sounds as UrbanSound8K: OUT/metadata/UrbanSound8K.csv, OUT/audio/foldK/*.wav")
def make_tones(
    out_dir: str | os.PathLike, seed: int = 0, per_class: int = 80, duration: float = 1.0, force: bool = False
) -> Path:
    """Write the tones dataset in the UrbanSound8K layout, as WAVs of mixed rates, channels and sample formats."""
    out = output_dir(out_dir, force)
    if per_class < 1:
        raise NvError(f"per_class must be at least 1, got {per_class}")
    if not duration > 0:
        raise NvError(f"duration must be positive (seconds), got {duration!r}")
    rng = np.random.default_rng(seed)
    total = per_class * len(TONE_CLASSES)
    # Formats cycle independently of class, so no format or rate gives a class away.
    formats = zip(*(rng.permutation(np.resize(np.array(values, dtype=object), total)).tolist()
                    for values in (TONE_RATES, (1, 2), TONE_SUBTYPES)))
    # One source recording (fsID) per class and fold slot: its slices all land in the same fold.
    fs_ids = (rng.choice(900_000, size=(len(TONE_CLASSES), 10), replace=False) + 100_000).tolist()
    rows = []
    for k in range(per_class):
        for class_id, name in enumerate(TONE_CLASSES):
            rate, channels, subtype = next(formats)
            wave = synth_tone(name, rng, rate, duration)
            if channels == 2:
                right = wave * rng.uniform(0.5, 1.0) + rng.normal(0.0, 0.001, len(wave)).astype(np.float32)
                wave = np.stack([wave, right], axis=1)
            fold, fs_id = k % 10 + 1, fs_ids[class_id][k % 10]
            file_name = f"{fs_id}-{class_id}-0-{k // 10}.wav"
            with atomic_path(out / "audio" / f"fold{fold}" / file_name) as tmp:
                sf.write(str(tmp), np.clip(wave, -1.0, 1.0), rate, subtype=subtype, format="WAV")
            start = (k // 10) * duration
            rows.append({"slice_file_name": file_name, "fsID": fs_id, "start": start,
                         "end": start + len(wave) / rate, "salience": int(rng.integers(1, 3)), "fold": fold,
                         "classID": class_id, "class": name})
    # Written last: a tree without its CSV is clearly incomplete.
    write_csv(out / METADATA_CSV, pd.DataFrame(rows, columns=list(CSV_COLUMNS)).sort_values("slice_file_name"))
    log.info("wrote %d tones clips to %s", total, out)
    return out
