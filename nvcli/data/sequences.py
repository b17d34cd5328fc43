"""The built-in `sequences` world: univariate series whose classes have known temporal mechanisms.

Every series is Gaussian noise plus its class's mechanism (steps as fractions of `length`, so the windows scale):
- `early` / `late`: one positive pulse, somewhere in the window EARLY / LATE (an event in a known window);
- `up-down` / `down-up`: a positive and a negative pulse anywhere in the middle, in that order (the order of two
  events);
- `sine`: a sine wave (period SINE_PERIOD steps, random phase) present throughout, no pulse.
`nv data make sequences` writes it in the UCR archive's layout (nvcli/data/ucr.py), which dataset `ucr` reads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NvError
from .output import dataset_output
from .registry import DataBundle, DataOptions, select_classes
from .ucr import SequenceSplit, stack, write_ucr

CLASSES = ("early", "late", "up-down", "down-up", "sine")
EARLY, LATE = (0.125, 0.3125), (0.625, 0.8125)  # the event classes' windows, as fractions of the length
MIDDLE = (0.0625, 0.9375)  # where the two events of up-down / down-up fall
SINE_PERIOD = 8.0
PULSE_WIDTH, PULSE_HEIGHT = 1.5, 3.0


def cues(length: int) -> dict[str, str]:
    """Each class's mechanism, with its window in steps for series of `length` steps."""
    (e0, e1), (l0, l1) = window("early", length), window("late", length)
    return {
        "early": f"one positive pulse inside steps [{e0}, {e1})",
        "late": f"one positive pulse inside steps [{l0}, {l1})",
        "up-down": "a positive pulse, later a negative one, anywhere in the middle",
        "down-up": "a negative pulse, later a positive one, anywhere in the middle",
        "sine": f"a sine wave of period {SINE_PERIOD:g} steps throughout, no pulse",
    }


STEM = "Sequences"  # the UCR name the world is written under
VAL_SEED_OFFSET = 7919
MIN_LENGTH = 16


@dataclass(frozen=True)
class SequencesMakeOptions(DataOptions):
    """Settings of the `sequences` world as `nv data make` writes it (every class)."""

    length: int = 64
    train_per_class: int = 100
    val_per_class: int = 50
    noise: float = 0.3  # standard deviation of the background noise

    def __post_init__(self) -> None:
        super().__post_init__()
        self.positive("length", "train_per_class", "val_per_class")
        if self.length < MIN_LENGTH:
            raise NvError(f"length {self.length} is too short for the sequences world; use {MIN_LENGTH} or more",
                          param="length")
        if not self.noise >= 0:
            raise NvError(f"noise {self.noise} must be >= 0", param="noise")


@dataclass(frozen=True)
class SequencesOptions(SequencesMakeOptions):
    """Settings of the `sequences` world read in memory: the make settings and a subset of classes."""

    classes: tuple[str, ...] | None = None


def window(name: str, length: int) -> tuple[int, int]:
    """The steps [start, end) in which class `name`'s event falls (the whole series for others)."""
    low, high = {"early": EARLY, "late": LATE}.get(name, (0.0, 1.0))
    return int(round(low * length)), int(round(high * length))


def _pulse(steps: np.ndarray, at: float, sign: float) -> np.ndarray:
    return sign * PULSE_HEIGHT * np.exp(-0.5 * ((steps - at) / PULSE_WIDTH) ** 2)


def series(name: str, length: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """One series of class `name`: its mechanism plus noise."""
    steps = np.arange(length, dtype=np.float64)
    x = rng.normal(0.0, noise, length)
    if name in ("early", "late"):
        start, end = window(name, length)
        x += _pulse(steps, rng.uniform(start, end - 1), 1.0)
    elif name in ("up-down", "down-up"):
        low, high = MIDDLE[0] * length, MIDDLE[1] * length
        first = rng.uniform(low, high - length / 4)
        second = rng.uniform(first + length / 8, high)
        sign = 1.0 if name == "up-down" else -1.0
        x += _pulse(steps, first, sign) + _pulse(steps, second, -sign)
    else:
        x += np.sin(2 * np.pi * steps / SINE_PERIOD + rng.uniform(0, 2 * np.pi))
    return x


def generate(options: SequencesMakeOptions, split: str) -> tuple[np.ndarray, list[int]]:
    """The series [N, length] and labels of one split (train or val), classes interleaved."""
    count = options.train_per_class if split == "train" else options.val_per_class
    rng = np.random.default_rng([options.seed, 0 if split == "train" else VAL_SEED_OFFSET])
    labels = [c for _ in range(count) for c in range(len(CLASSES))]
    return np.stack([series(CLASSES[c], options.length, options.noise, rng) for c in labels]), labels


def load_sequences(options: SequencesOptions) -> DataBundle:
    """The world in memory: `train_per_class` and `val_per_class` series per class, independent draws."""
    classes = select_classes(CLASSES, options.classes, "the sequences world")
    index = {CLASSES.index(name): i for i, name in enumerate(classes)}
    splits = {}
    for split in ("train", "val"):
        x, labels = generate(options, split)
        keep = [i for i, label in enumerate(labels) if label in index]
        splits[split] = SequenceSplit(stack(list(x[keep]), options.length), [index[labels[i]] for i in keep])
    windows = {name: list(window(name, options.length)) for name in classes if name in ("early", "late")}
    return DataBundle(name="sequences", kind="sequence", train=splits["train"], val=splits["val"], classes=classes,
                      in_channels=1, mean=[0.0], std=[1.0], cues={c: cues(options.length)[c] for c in classes},
                      info={"length": options.length, "windows": windows})


def make_sequences(out_dir: str | os.PathLike, options: SequencesMakeOptions, *, force: bool = False) -> Path:
    """Write the world in the UCR layout: OUT/Sequences/Sequences_{TRAIN,TEST,CLASSES}.tsv (read by dataset ucr)."""
    with dataset_output(out_dir, "sequences", force=force) as out:
        write_ucr(out / STEM, STEM, {"TRAIN": generate(options, "train"), "TEST": generate(options, "val")}, CLASSES)
    return out
