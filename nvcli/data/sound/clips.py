"""Sound datasets read from audio files: the metadata CSV, the clips of each split checked, cached and normalised.

Each layout's reader (UrbanSound8K, audio folders, Speech Commands, ESC-50) lists its clips per split;
`load_clips` does the rest the same way for all of them: `limit`, header probes and `on_error`, the
spectrogram cache, the normalisation mean/std and what config.json records.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import soundfile as sf

from ...errors import NvError
from ...fs.atomic import write_json
from ...fs.paths import listed_path
from ..registry import DataBundle, select_classes
from .cache import SpectrogramFiles, cache_entry, cache_root
from .spectrogram import CACHE_VERSION, SpecParams, mean_std, reason

log = logging.getLogger(__name__)

STATS_CLIPS = 256  # training clips sampled for the normalisation mean/std


@dataclass(frozen=True)
class MetadataColumns:
    """The columns of a metadata CSV that name a clip's file, fold, class index and class name."""

    file: str
    fold: str
    class_id: str
    name: str
    all: tuple[str, ...]  # every column of the published CSV, to name in an error


def _read_metadata(csv: Path, columns: MetadataColumns, layout: str) -> pd.DataFrame:
    """The metadata CSV, checked: required columns present, fold and class index integers, one name per index.

    `layout` describes the expected layout for the error when the CSV is missing.
    """
    if not csv.is_file():
        raise NvError(f"{csv} not found; expected {layout}")
    try:
        frame = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise NvError(f"cannot read {csv}: {reason(e)}") from e
    required = (columns.file, columns.fold, columns.class_id, columns.name)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise NvError(f"{csv} lacks column(s) {', '.join(missing)}; expected columns {', '.join(columns.all)}")
    if frame.empty:
        raise NvError(f"{csv} lists no clips")
    for column in (columns.fold, columns.class_id):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise NvError(f"{csv} row {row + 2}: {column}={frame[column].iloc[row]!r} is not an integer")
        frame[column] = values.astype(int)
    frame[columns.name] = frame[columns.name].astype(str)
    frame[columns.file] = frame[columns.file].astype(str)
    for key, other in ((columns.class_id, columns.name), (columns.name, columns.class_id)):
        counts = frame.groupby(key)[other].nunique()
        if (counts > 1).any():
            value = counts[counts > 1].index[0]
            names = sorted(frame.loc[frame[key] == value, other].astype(str).unique())
            raise NvError(f"{csv}: {key} {value!r} has several {other} values ({', '.join(names)}); each must have one")
    return frame


def fold_splits(
    root: Path, csv: Path, columns: MetadataColumns, layout: str, folder: Callable[[int], Path],
    val_fold: int | None, wanted: Sequence[str] | None,
) -> tuple[list[str], dict[str, tuple[list[Path], list[int]]], dict[str, Any]]:
    """Classes, clips per split and the folds of a dataset described by a metadata CSV, split by fold.

    Classes are ordered by class index; clip `f` of fold `k` is `folder(k) / f`, kept inside it; fold `val_fold`
    (None: the last fold) validates and every other fold trains. `layout` describes the expected layout.
    """
    frame = _read_metadata(csv, columns, layout)
    by_id = frame.drop_duplicates(columns.class_id).sort_values(columns.class_id)
    classes = select_classes(by_id[columns.name].tolist(), wanted, str(csv))
    frame = frame[frame[columns.name].isin(classes)]
    if not (root / "audio").is_dir():
        raise NvError(f"audio folder {root / 'audio'} not found; expected {layout}")
    folds = sorted(int(f) for f in frame[columns.fold].unique())
    val_fold = folds[-1] if val_fold is None else val_fold
    if val_fold not in folds:
        raise NvError(f"val_fold={val_fold} is not a fold of {csv}; valid: {', '.join(map(str, folds))}",
                      param="val_fold")
    if len(folds) < 2:
        raise NvError(f"{csv} has only fold {folds[0]}; a fold split needs at least 2 folds")
    ids = by_id.loc[by_id[columns.name].isin(classes), columns.class_id]
    label_of = {int(i): label for label, i in enumerate(ids)}
    splits = {}
    in_val = frame[columns.fold] == val_fold
    for split, rows in (("train", frame[~in_val]), ("val", frame[in_val])):
        paths = [listed_path(folder(fold), file, f"{csv} row {row + 2}")
                 for row, fold, file in zip(rows.index, rows[columns.fold], rows[columns.file])]
        splits[split] = (paths, [label_of[i] for i in rows[columns.class_id]])
    return classes, splits, {"val_fold": val_fold, "train_folds": [f for f in folds if f != val_fold]}


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


def _decodable(root: Path, paths: list[Path], targets: list[int], chosen: list[int], cache: Path,
               params: SpecParams, problems: dict[str, str]) -> tuple[list[str], list[int]]:
    """The paths and targets of the `chosen` clips that look decodable; why each other cannot be decoded goes into
    `problems` (by its path under `root`)."""
    kept_paths, kept_targets = [], []
    for i in chosen:
        path = paths[i]
        # A cached clip was decoded before, so only uncached ones need their header checked.
        cached = path.is_file() and cache_entry(cache, str(path), params).is_file()
        problem = None if cached else _probe(path)
        if problem:
            problems[path.relative_to(root).as_posix()] = problem
        else:
            kept_paths.append(str(path))
            kept_targets.append(targets[i])
    return kept_paths, kept_targets


def _undecodable(name: str, root: Path, problems: dict[str, str], on_error: str) -> None:
    """Refuse the undecodable clips of dataset `name` (on_error fail), or log that they are skipped."""
    listed = "; ".join(f"{p}: {r}" for p, r in list(problems.items())[:3])
    more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    if on_error == "fail":
        raise NvError(f"cannot decode {len(problems)} audio file(s) under {root}: {listed}{more} "
                      f"(fix or remove them, or pass on_error skip)", param="on_error")
    log.warning("%s: skipped %d undecodable audio file(s) (on_error=skip): %s%s", name, len(problems), listed, more)


def load_clips(
    name: str,
    root: Path,
    options: Any,
    classes: list[str],
    splits: dict[str, tuple[list[Path], list[int]]],
    info: dict[str, Any],
    cues: dict[str, str] | None = None,
) -> DataBundle:
    """A sound DataBundle of the clips listed per split ('train', 'val': paths under `root` and labels).

    `options` are a sound dataset's settings (`params`, `limit`, `seed`, `on_error`, `cache_dir`, `image_size`);
    `info` adds the layout's own facts to what config.json records.
    """
    params, limit, seed = options.params, options.limit, options.seed
    cache = cache_root(root, options.cache_dir)
    params_json = cache / params.key() / "params.json"
    if not params_json.is_file():
        write_json(params_json, {**asdict(params), "version": CACHE_VERSION})

    problems: dict[str, str] = {}
    datasets = {split: SpectrogramFiles(*_decodable(root, paths, targets, balanced(targets, limit, seed), cache,
                                                    params, problems), params, cache, options.image_size)
                for split, (paths, targets) in splits.items()}
    if problems:
        _undecodable(name, root, problems, options.on_error)
    for split, ds in datasets.items():
        if len(ds) == 0:
            given = {**options.to_dict(), **info}
            split_by = ", ".join(f"{k}={given[k]}" for k in ("layout", "val_fold", "val_list") if k in given)
            raise NvError(f"the {split} split of {root} has no decodable clips ({split_by + ', ' if split_by else ''}"
                          f"limit={limit})")

    train = datasets["train"]
    stats_idx = balanced(train.targets, min(STATS_CLIPS, len(train)), seed)
    mean, std = mean_std(train[i][0] for i in stats_idx)
    image_size = options.image_size
    info = {
        **options.to_dict(),
        **params.info(),
        **info,
        "skipped": {"count": len(problems), "files": problems},
        "cache_dir": str(cache / params.key()),
        "input_shape": [1, image_size, image_size] if image_size else list(params.shape),
        "n_train": len(train),
        "n_val": len(datasets["val"]),
        "norm_stats": f"mean/std of {len(stats_idx)} of {len(train)} training clips",
    }
    log.info("%s: %d train / %d val clips, cache %s", name, len(train), len(datasets["val"]), info["cache_dir"])
    return DataBundle(
        name=name, kind="sound", train=train, val=datasets["val"], classes=classes, in_channels=1,
        mean=[mean], std=[std], cues={c: cues[c] for c in classes if c in cues} if cues else {}, info=info,
    )
