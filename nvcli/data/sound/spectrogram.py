"""Sound as a picture: decode a clip with soundfile, mix to mono, resample, fit to a fixed length, log-mel in dB.

Every sound dataset goes through `SpecParams`, whose fields are also the cache key of decoded clips.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any, Iterable, Mapping

import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio

from ...errors import NvError

CACHE_VERSION = 1  # bump when decoding changes, so old cache entries stop matching
MAX_SAMPLE_RATE = 768_000  # the highest rate of common audio hardware
MAX_CLIP_SAMPLES = 1 << 25  # samples per clip (25 min at 22,050 Hz): a bound on each decoded clip's memory
RESAMPLE_KERNEL_LIMIT = 1 << 20  # filter values held at once when resampling (4 MB of float32)
_ZEROS, _ROLLOFF = 6, 0.99  # torchaudio.functional.resample's defaults: lowpass_filter_width, rolloff


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
            if not math.isfinite(value):
                raise NvError(f"{name} must be a finite number, got {value!r}")
            # 2 and 2.0 must give the same cache key
            object.__setattr__(self, name, float(value))
        if self.sample_rate > MAX_SAMPLE_RATE:
            raise NvError(f"sample_rate={self.sample_rate} is above {MAX_SAMPLE_RATE} Hz; use a real audio rate "
                          "(22050 is the default)")
        if self.duration * self.sample_rate > MAX_CLIP_SAMPLES:
            raise NvError(f"duration={self.duration} s at sample_rate={self.sample_rate} is more than "
                          f"{MAX_CLIP_SAMPLES} samples per clip; use at most "
                          f"{MAX_CLIP_SAMPLES / self.sample_rate:.0f} s (UrbanSound8K clips are 4 s)")
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

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> SpecParams:
        """The parameters a sound run's data info (config.json `data.info`, written from `info`) records."""
        return cls(**{f.name: info[f.name] for f in fields(cls) if f.name in info})

    def info(self) -> dict[str, Any]:
        """The parameters and the transform they drive, for config.json."""
        return {
            **asdict(self),
            "frames": self.shape[2],
            "transform": "soundfile decode; mean of channels; torchaudio.functional.resample; zero-pad or crop "
            "at the end; MelSpectrogram(power=2, htk mel, f_min=0, f_max=sample_rate/2); "
            "AmplitudeToDB(top_db per clip)",
        }


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
            wave = resample(wave, rate, params.sample_rate)
    except (RuntimeError, OSError, ValueError) as e:  # soundfile raises LibsndfileError, a RuntimeError
        raise NvError(f"cannot decode audio file {path}: {reason(e)}") from e
    return log_mel(fit_length(wave, params.num_samples)[None], params)[0]


def resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """torchaudio's default resampling (windowed sinc, Hann, 6 zero crossings) of a 1-D wave, in bounded memory.

    torchaudio builds one filter per output phase: new/g x (orig/g + 2 width) values for g = gcd(orig, new),
    gigabytes for nearly equal coprime rates (22,051 -> 22,050 Hz). Here the same filter values are computed
    only for the 2 width + 1 inputs nearest each output sample, a chunk of outputs at a time.
    """
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    width = math.ceil(_ZEROS * o / (min(o, n) * _ROLLOFF))
    if n * (o + 2 * width) <= RESAMPLE_KERNEL_LIMIT:
        return torchaudio.functional.resample(wave, orig, new)
    return _resample_taps(wave, o, n, width)


def _resample_taps(wave: torch.Tensor, o: int, n: int, width: int) -> torch.Tensor:
    """torchaudio's filter values for output m and input i, base (i/o - m/n) clamped, evaluated per tap."""
    base = min(o, n) * _ROLLOFF
    length = wave.shape[-1]
    total = math.ceil(n * length / o)
    padded = F.pad(wave, (width, width + o))  # as torchaudio pads: input i sits at i + width
    offsets = torch.arange(-width, width + 1)
    out = torch.empty(total, dtype=wave.dtype)
    step = max(1, RESAMPLE_KERNEL_LIMIT // len(offsets))
    for start in range(0, total, step):
        m = torch.arange(start, min(start + step, total))
        frame, phase = m // n, m % n
        centre = (m * o) // n  # the input at or just before output m
        taps = centre[:, None] + offsets[None, :]
        # The same arithmetic as torchaudio's kernel: -phase / n in float32, the input offset in float64.
        t = (-phase / n)[:, None].double() + (taps - frame[:, None] * o).double() / o
        t = (t * base).clamp_(-_ZEROS, _ZEROS)
        window = torch.cos(t * math.pi / _ZEROS / 2) ** 2
        t *= math.pi
        kernel = torch.where(t == 0, torch.ones_like(t), t.sin() / t) * (window * (base / o))
        out[start:start + len(m)] = (padded[taps + width] * kernel.to(wave.dtype)).sum(dim=1)
    return out


def mel_frequencies(params: SpecParams) -> torch.Tensor:
    """Centre frequency in Hz of each mel band (spectrogram row, low to high) made with `params`."""
    top = 2595.0 * math.log10(1.0 + params.sample_rate / 2 / 700.0)
    mels = torch.linspace(0.0, top, params.n_mels + 2)[1:-1]
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


def reason(e: BaseException) -> str:
    return str(getattr(e, "error_string", None) or e).strip().rstrip(".")


def resize(x: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """Bilinearly resize spectrograms [N, 1, F, T] to [N, 1, image_size, image_size] (unchanged if None)."""
    if image_size is None:
        return x
    return F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)


def mean_std(tensors: Iterable[torch.Tensor]) -> tuple[float, float]:
    total = square = count = 0.0
    for x in tensors:
        x = x.double()
        total += float(x.sum())
        square += float((x * x).sum())
        count += x.numel()
    mean = total / count
    return mean, max(math.sqrt(max(square / count - mean * mean, 0.0)), 1e-6)
