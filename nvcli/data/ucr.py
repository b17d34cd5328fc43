"""The UCR Time Series Classification Archive's layout on disk: `<Name>/<Name>_TRAIN.tsv` and `<Name>_TEST.tsv`.

One series per line, its label first; tab separated (the 2018 archive), or comma / white-space separated in the
older `.txt` and extension-less files. Shorter series are padded with NaN (the archive's variable-length
datasets). A sample is a tensor [1, 1, steps] (a one-row image; see nvcli/models/recurrent.py) with NaN after
the series' end; a missing value inside a series is filled with the last value before it (the first after it at
the start). Labels are mapped to class names by an optional `<Name>_CLASSES.tsv` (`label<TAB>name` lines, an nv
extension that `nv data make sequences` writes); without it a label's text is its class name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence, get_args

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import NvError, choice_error
from ..fs.atomic import write_text
from .registry import DataBundle, DataOptions, select_classes

Normalize = Literal["series", "global", "none"]
NORMALIZE: tuple[str, ...] = get_args(Normalize)
SUFFIXES = (".tsv", ".txt", "")  # the 2018 archive's, then the older ones
MAX_STEPS = 1 << 20


@dataclass(frozen=True)
class UCROptions(DataOptions):
    """Settings of a UCR-layout dataset: its folder (or the archive's root and `name`), classes, normalisation."""

    data_dir: str | None = None
    name: str | None = None  # the dataset in an archive root (default: data_dir is the dataset's own folder)
    classes: tuple[str, ...] | None = None
    normalize: Normalize = "series"  # z-normalise each series, or by the training split's mean and std, or not

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.normalize not in NORMALIZE:
            raise choice_error("normalize", self.normalize, NORMALIZE, param="normalize")


class SequenceSplit(Dataset):
    """Sequences [N, C, 1, T] (NaN after each series' end) and their labels; `source_files` lists what was read."""

    def __init__(self, x: torch.Tensor, labels: Sequence[int], files: Sequence[str] = ()) -> None:
        self.x, self.targets, self.files = x, list(labels), list(files)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def labels(self) -> list[int]:
        return self.targets

    def source_files(self) -> list[str]:
        return self.files

    @property
    def steps(self) -> int:
        """The length of the longest series (the steps before the padding that every series shares)."""
        present = (~torch.isnan(self.x)).flatten(0, -2).any(0).nonzero()
        return int(present[-1]) + 1 if len(present) else 0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], self.targets[i]


def _label_text(text: str) -> str:
    """'1', '1.0' and '1.0000000e+00' are the same label: integral numbers are written as integers."""
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if math.isfinite(value) and value == int(value) else text


def _split_line(line: str) -> list[str]:
    if "\t" in line:
        return line.split("\t")
    return line.split(",") if "," in line else line.split()


def read_split(path: Path) -> tuple[list[str], list[np.ndarray]]:
    """The labels (as text) and series (float64, any length) of one UCR file."""
    labels, series = [], []
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in _split_line(line.strip())]
        try:
            values = np.array([float(p) if p and p != "?" else np.nan for p in parts[1:]], dtype=np.float64)
        except ValueError as exc:
            raise NvError(f"'{path}' line {number}: {exc}; a UCR file holds a label then numbers") from None
        if np.isinf(values).any():
            raise NvError(f"'{path}' line {number}: an infinite value; a UCR file holds finite numbers or NaN")
        finite = np.flatnonzero(~np.isnan(values))
        if not len(finite):
            raise NvError(f"'{path}' line {number}: the series has no value")
        labels.append(_label_text(parts[0]))
        series.append(_filled(values[:finite[-1] + 1]))
    if not series:
        raise NvError(f"'{path}' holds no series")
    return labels, series


def _filled(values: np.ndarray) -> np.ndarray:
    """A series without missing values inside: each NaN takes the last value before it (the first after it)."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    index = np.where(missing, 0, np.arange(len(values)))
    np.maximum.accumulate(index, out=index)
    filled = values[index]
    first = np.flatnonzero(~missing)[0]
    filled[:first] = values[first]
    return filled


def find_files(root: Path, name: str | None) -> tuple[str, Path, Path]:
    """The dataset's name and its TRAIN and TEST files under `root` (its folder, or the archive root with `name`)."""
    if not root.is_dir():
        raise NvError(f"data_dir '{root}' is not a directory; give a UCR dataset's folder (holding <Name>_TRAIN.tsv)",
                      param="data_dir")
    folder = root / name if name is not None and (root / name).is_dir() else root
    names = sorted({p.name.split("_TRAIN")[0] for p in folder.glob("*_TRAIN*")
                    if p.is_file() and p.name[p.name.index("_TRAIN") + 6:] in SUFFIXES})
    if name in names:
        names = [name]
    if len(names) != 1 or (name is not None and names != [name]):
        found = (f"it holds {', '.join(names)}; choose one with name" if names else "it holds no <Name>_TRAIN.tsv")
        raise NvError(f"'{folder}' is not one UCR dataset's folder: {found}", param=("data_dir", "name"))
    stem = names[0]
    paths = []
    for split in ("TRAIN", "TEST"):
        found_paths = [folder / f"{stem}_{split}{s}" for s in SUFFIXES if (folder / f"{stem}_{split}{s}").is_file()]
        if not found_paths:
            raise NvError(f"'{folder}' has no {stem}_{split}.tsv (nor .txt, nor without extension)", param="data_dir")
        paths.append(found_paths[0])
    return stem, paths[0], paths[1]


def _class_names(folder: Path, stem: str, labels: Sequence[str]) -> dict[str, str]:
    """label -> class name: from <Name>_CLASSES.tsv when present (every label named once), else the label itself."""
    names = {label: label for label in labels}
    path = folder / f"{stem}_CLASSES.tsv"
    if not path.is_file():
        return names
    listed: dict[str, str] = {}
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        label, sep, name = line.partition("\t")
        label, name = label.strip(), name.strip()
        if not (sep and label and name) or "\t" in name:
            raise NvError(f"'{path}' line {number} is {line[:80]!r}; each line is a label, a tab and its class name")
        if _label_text(label) in listed:
            raise NvError(f"'{path}' line {number} names label {label} again; name each label once")
        listed[_label_text(label)] = name
    unnamed = [label for label in _order(labels) if label not in listed]
    if unnamed:
        raise NvError(f"'{path}' names no class for label(s) {', '.join(unnamed[:5])} of the data; add a line "
                      "'label<TAB>name' for each (or remove the file to use the labels as names)")
    names = {label: listed[label] for label in names}
    if len(set(names.values())) != len(names):
        raise NvError(f"'{path}' gives two labels the same class name; name each label once")
    return names


def _lines(path: Path) -> list[str]:
    """The lines of a text file of the dataset (a byte-order mark, as editors on Windows write, is not text of its
    first line); one that cannot be read is an NvError naming it."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise NvError(f"cannot read '{path}' ({type(exc).__name__}: {exc})") from exc


def _order(labels: Sequence[str]) -> list[str]:
    """Labels in numeric order when all are numbers, else in text order."""
    try:
        return sorted(set(labels), key=float)
    except ValueError:
        return sorted(set(labels))


def stack(series: Sequence[np.ndarray], steps: int) -> torch.Tensor:
    """Series as a tensor [N, 1, 1, steps], NaN after each series' end."""
    out = np.full((len(series), 1, 1, steps), np.nan, dtype=np.float32)
    for i, values in enumerate(series):
        out[i, 0, 0, :len(values)] = values
    return torch.from_numpy(out)


def z_normalized(series: np.ndarray) -> np.ndarray:
    """A series with mean 0 and standard deviation 1 (a constant series: mean 0 only)."""
    std = series.std()
    return (series - series.mean()) / (std if std > 1e-8 else 1.0)


def load_ucr(options: UCROptions) -> DataBundle:
    """A UCR-layout dataset: TRAIN is the training split, TEST the validation split."""
    if options.data_dir is None:
        raise NvError("dataset 'ucr' needs data_dir: a UCR dataset's folder holding <Name>_TRAIN.tsv and "
                      "<Name>_TEST.tsv (or the archive root with name)", param="data_dir")
    stem, train_path, test_path = find_files(Path(options.data_dir).expanduser(), options.name)
    (train_labels, train_series), (test_labels, test_series) = read_split(train_path), read_split(test_path)
    names = _class_names(train_path.parent, stem, [*train_labels, *test_labels])
    order = [names[label] for label in _order(train_labels + test_labels)]
    classes = select_classes(order, options.classes, f"UCR dataset '{stem}'")
    index = {name: i for i, name in enumerate(classes)}
    steps = max(len(s) for s in train_series + test_series)
    if steps > MAX_STEPS:
        raise NvError(f"'{train_path}' has series of {steps} steps; nv reads at most {MAX_STEPS}")
    mean, std = 0.0, 1.0
    if options.normalize == "global":
        values = np.concatenate(train_series)
        mean, std = float(values.mean()), float(max(values.std(), 1e-8))
    splits = {}
    for split, path, labels, series in (("train", train_path, train_labels, train_series),
                                        ("val", test_path, test_labels, test_series)):
        keep = [i for i, label in enumerate(labels) if names[label] in index]
        chosen = [z_normalized(series[i]) if options.normalize == "series" else series[i] for i in keep]
        splits[split] = SequenceSplit(stack(chosen, steps), [index[names[labels[i]]] for i in keep], [str(path)])
    lengths = {len(s) for s in train_series + test_series}
    info = {"dataset": stem, "steps": steps, "variable_length": len(lengths) > 1, "normalize": options.normalize}
    return DataBundle(name="ucr", kind="sequence", train=splits["train"], val=splits["val"], classes=classes,
                      in_channels=1, mean=[mean], std=[std], info=info)


def write_ucr(folder: Path, stem: str, splits: dict[str, tuple[np.ndarray, Sequence[int]]],
              classes: Sequence[str]) -> None:
    """Write TRAIN and TEST (`split -> (series [N, T], 0-based labels)`) as <stem>_<SPLIT>.tsv with labels 1..K,
    and <stem>_CLASSES.tsv naming each label."""
    for split, (series, labels) in splits.items():
        lines = ["\t".join([str(label + 1), *(f"{v:.6g}" for v in row)]) for row, label in zip(series, labels)]
        write_text(folder / f"{stem}_{split}.tsv", "\n".join(lines) + "\n")
    write_text(folder / f"{stem}_CLASSES.tsv", "".join(f"{i + 1}\t{name}\n" for i, name in enumerate(classes)))
