"""`tones`: synthetic sounds whose classes are defined by known spectral mechanisms.

Generated in memory from a seed, or written by `nv data make tones` in UrbanSound8K's layout (WAVs of
mixed rates, channels and sample formats) and read back with the UrbanSound8K reader.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from ...fs.atomic import atomic_path, write_csv
from ..output import dataset_output
from ..registry import DataBundle, DataOptions, select_classes
from .cache import SpectrogramTensors
from .clips import balanced
from .spectrogram import SpecParams, fit_length, log_mel, mean_std, resize
from .urbansound import CSV_COLUMNS, METADATA_CSV, UrbanSoundOptions, load_tree

log = logging.getLogger(__name__)

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
_MEL_BATCH = 256


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


@dataclass(frozen=True)
class TonesOptions(UrbanSoundOptions):
    """Settings of `tones`: generated in memory (per_class / val_per_class), or read from a `data_dir` tree."""

    per_class: int = 60
    val_per_class: int = 20
    sample_rate: int = 16000
    duration: float = 1.0
    hop_length: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        self.positive("per_class", "val_per_class")


def load_tones(options: TonesOptions) -> DataBundle:
    """Synthesise the tones dataset in memory from `seed`, or read a make_tones tree from `data_dir`.

    In memory the split is generated (per_class / val_per_class); val_fold, on_error and cache_dir apply to a data_dir.
    """
    if options.data_dir is not None:
        return load_tree("tones", options, cues=TONE_CUES)
    params, seed = options.params, options.seed
    names = select_classes(TONE_CLASSES, options.classes, "tones")
    splits = {}
    for split_id, (split, count) in enumerate((("train", options.per_class), ("val", options.val_per_class))):
        x, labels = _tone_split(names, count, np.random.default_rng([seed, split_id]), params)
        keep = balanced(labels, options.limit, seed)
        splits[split] = SpectrogramTensors(resize(x[keep], options.image_size), [labels[i] for i in keep])
    mean, std = mean_std([splits["train"].x])
    info = {
        **options.to_dict(),
        **params.info(),
        "split": "generated: per_class train and val_per_class val clips per class, independent draws",
        "input_shape": list(splits["train"].x.shape[1:]),
        "n_train": len(splits["train"]),
        "n_val": len(splits["val"]),
        "norm_stats": "mean/std of all training clips",
    }
    return DataBundle(
        name="tones", kind="sound", train=splits["train"], val=splits["val"], classes=names,
        in_channels=1, mean=[mean], std=[std], cues={c: TONE_CUES[c] for c in names}, info=info,
    )


@dataclass(frozen=True)
class TonesMakeOptions(DataOptions):
    """Settings of the tones tree written by `nv data make tones`."""

    per_class: int = 80
    duration: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.positive("per_class", "duration")


def make_tones(out_dir: str | os.PathLike, options: TonesMakeOptions, *, force: bool = False) -> Path:
    """Write the tones dataset in the UrbanSound8K layout, as WAVs of mixed rates, channels and sample formats."""
    seed, per_class, duration = options.seed, options.per_class, options.duration
    with dataset_output(out_dir, "tones", force=force) as out:
        _write_tones(out, seed, per_class, duration)
    return out


def _write_tones(out: Path, seed: int, per_class: int, duration: float) -> None:
    """Every clip as a WAV in audio/foldK/, then the metadata CSV."""
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
            # Folds fill from 10 down: a small tree (per_class < 10) still has the default validation fold.
            fold, fs_id = 10 - k % 10, fs_ids[class_id][k % 10]
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
