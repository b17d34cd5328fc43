"""UrbanSound8K read from disk in its published layout, split by fold, as cached log-mel spectrograms.

Layout: `<data_dir>/metadata/UrbanSound8K.csv` (slice_file_name, fsID, start, end, salience, fold,
classID, class) and `<data_dir>/audio/fold1..fold10/*.wav`. The built-in `tones` written by
`nv data make tones` use the same layout and the same reader.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf

from ...errors import NvError, choice_error
from ...runs.atomic import write_json
from ..paths import listed_path
from ..registry import MAX_IMAGE_SIZE, ON_ERROR, DataBundle, DataOptions, select_classes
from .cache import SpectrogramFiles, cache_entry, cache_root
from .spectrogram import CACHE_VERSION, SpecParams, mean_std, reason

log = logging.getLogger(__name__)

METADATA_CSV = Path("metadata") / "UrbanSound8K.csv"
CSV_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
REQUIRED_COLUMNS = ("slice_file_name", "fold", "classID", "class")
STATS_CLIPS = 256  # training clips sampled for the normalisation mean/std


def _read_metadata(root: Path) -> pd.DataFrame:
    """The metadata CSV, checked: required columns present, fold and classID integers, one name per classID."""
    csv = root / METADATA_CSV
    if not csv.is_file():
        raise NvError(f"{csv} not found; expected the UrbanSound8K layout: <data_dir>/{METADATA_CSV.as_posix()} "
                      f"and <data_dir>/audio/fold1..fold10/*.wav")
    try:
        frame = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise NvError(f"cannot read {csv}: {reason(e)}") from e
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


def balanced(labels: Sequence[int], limit: int | None, seed: int) -> list[int]:
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
        return reason(e)
    if head.frames <= 0 or head.channels < 1 or head.samplerate < 1:
        return f"no audio ({head.frames} frames, {head.channels} channels, {head.samplerate} Hz)"
    return None


def _index(
    rows: pd.DataFrame, root: Path, label_of: dict[int, int], params: SpecParams, cache: Path
) -> tuple[list[str], list[int], dict[str, str]]:
    """Paths and labels of the decodable clips in `rows`, and {relative path: reason} for the others."""
    paths, targets, problems = [], [], {}
    for row, fold, name, class_id in zip(rows.index, rows["fold"], rows["slice_file_name"], rows["classID"]):
        path = listed_path(root / "audio" / f"fold{fold}", name, f"{root / METADATA_CSV} row {row + 2}")
        # A cached clip was decoded before, so only uncached ones need their header checked.
        cached = path.is_file() and cache_entry(cache, str(path), params).is_file()
        problem = None if cached else _probe(path)
        if problem:
            problems[path.relative_to(root).as_posix()] = problem
        else:
            paths.append(str(path))
            targets.append(label_of[class_id])
    return paths, targets, problems


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
        if self.val_fold < 1:
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
    params, val_fold, limit, seed = options.params, options.val_fold, options.limit, options.seed
    root = _existing_dir(options.data_dir, name)
    frame = _read_metadata(root)
    by_id = frame.drop_duplicates("classID").sort_values("classID")
    classes = select_classes(by_id["class"].tolist(), options.classes, str(root / METADATA_CSV))
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

    cache = cache_root(root, options.cache_dir)
    params_json = cache / params.key() / "params.json"
    if not params_json.is_file():
        write_json(params_json, {**asdict(params), "version": CACHE_VERSION})

    splits: dict[str, SpectrogramFiles] = {}
    problems: dict[str, str] = {}
    for split, rows in (("train", frame[frame["fold"] != val_fold]), ("val", frame[frame["fold"] == val_fold])):
        rows = rows.iloc[balanced(rows["classID"].map(label_of).tolist(), limit, seed)]
        paths, targets, bad = _index(rows, root, label_of, params, cache)
        problems.update(bad)
        splits[split] = SpectrogramFiles(paths, targets, params, cache, options.image_size)
    if problems:
        listed = "; ".join(f"{p}: {r}" for p, r in list(problems.items())[:3])
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        if options.on_error == "fail":
            raise NvError(f"cannot decode {len(problems)} audio file(s) under {root}: {listed}{more} "
                          f"(fix or remove them, or pass on_error skip)", param="on_error")
        log.warning("%s: skipped %d undecodable audio file(s) (on_error=skip): %s%s",
                    name, len(problems), listed, more)
    for split, ds in splits.items():
        if len(ds) == 0:
            raise NvError(f"the {split} split of {root} has no decodable clips (val_fold={val_fold}, limit={limit})")

    train = splits["train"]
    stats_idx = balanced(train.targets, min(STATS_CLIPS, len(train)), seed)
    mean, std = mean_std(train[i][0] for i in stats_idx)
    info = {
        **options.to_dict(),
        **params.info(),
        "train_folds": [f for f in folds if f != val_fold],
        "skipped": {"count": len(problems), "files": problems},
        "cache_dir": str(cache / params.key()),
        "input_shape": [1, options.image_size, options.image_size] if options.image_size else list(params.shape),
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


def load_urbansound(options: UrbanSoundOptions) -> DataBundle:
    """Load UrbanSound8K from disk: val = fold `val_fold`, train = the other folds, cached log-mel spectrograms."""
    return load_tree("urbansound", options, cues={})
