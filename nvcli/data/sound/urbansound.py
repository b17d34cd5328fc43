"""UrbanSound8K read from disk in its published layout, split by fold, as cached log-mel spectrograms.

Layout: `<data_dir>/metadata/UrbanSound8K.csv` (slice_file_name, fsID, start, end, salience, fold,
classID, class) and `<data_dir>/audio/fold1..fold10/*.wav`. The built-in `tones` written by
`nv data make tones` use the same layout and the same reader.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import NvError, choice_error
from ..registry import MAX_IMAGE_SIZE, ON_ERROR, DataBundle, DataOptions
from .clips import MetadataColumns, fold_splits, load_clips
from .spectrogram import SpecParams

METADATA_CSV = Path("metadata") / "UrbanSound8K.csv"
CSV_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
COLUMNS = MetadataColumns("slice_file_name", "fold", "classID", "class", CSV_COLUMNS)
LAYOUT = f"the UrbanSound8K layout: <data_dir>/{METADATA_CSV.as_posix()} and <data_dir>/audio/fold1..fold10/*.wav"


def _existing_dir(data_dir: str | os.PathLike | None, name: str) -> Path:
    if data_dir is None:
        raise NvError(f"dataset '{name}' needs data_dir: a directory with {METADATA_CSV.as_posix()} "
                      f"and audio/fold1..fold10/", param="data_dir")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise NvError(f"data dir {root} is not a directory; expected the UrbanSound8K layout "
                      f"({METADATA_CSV.as_posix()} and audio/fold1..fold10/)")
    return root


@dataclass(frozen=True)
class UrbanSoundOptions(DataOptions):
    """Settings of a sound dataset in the UrbanSound8K layout and of its spectrograms."""

    data_dir: str | None = None
    val_fold: int = 10
    on_error: str = "fail"
    cache_dir: str | None = None
    sample_rate: int = SpecParams.sample_rate
    duration: float = SpecParams.duration
    n_mels: int = SpecParams.n_mels
    n_fft: int = SpecParams.n_fft
    hop_length: int = SpecParams.hop_length
    image_size: int | None = None
    limit: int | None = None
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.on_error not in ON_ERROR:
            raise choice_error("on_error value", self.on_error, ON_ERROR, param="on_error")
        if self.val_fold is not None and self.val_fold < 1:
            raise NvError(f"val_fold {self.val_fold} is not valid; folds are numbered from 1", param="val_fold")
        self.positive("limit", "image_size")
        if self.image_size is not None and self.image_size > MAX_IMAGE_SIZE:
            self.check_image_size(self.image_size)
        self.params  # noqa: B018  (checks the spectrogram settings now, not at the first clip)

    @property
    def params(self) -> SpecParams:
        """How each clip becomes a spectrogram."""
        return SpecParams(sample_rate=self.sample_rate, duration=self.duration, n_mels=self.n_mels, n_fft=self.n_fft,
                          hop_length=self.hop_length)


def load_tree(name: str, options: UrbanSoundOptions, cues: dict[str, str]) -> DataBundle:
    """Load a dataset in the UrbanSound8K layout, split by fold (val = `val_fold`, train = every other fold)."""
    root = _existing_dir(options.data_dir, name)
    classes, splits, info = fold_splits(root, root / METADATA_CSV, COLUMNS, LAYOUT,
                                        lambda fold: root / "audio" / f"fold{fold}", options.val_fold, options.classes)
    return load_clips(name, root, options, classes, splits, info, cues)


def load_urbansound(options: UrbanSoundOptions) -> DataBundle:
    """Load UrbanSound8K from disk: val = fold `val_fold`, train = the other folds, cached log-mel spectrograms."""
    return load_tree("urbansound", options, cues={})
