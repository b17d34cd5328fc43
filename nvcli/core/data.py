"""The dataset registry: every dataset, built-in or on disk, is loaded into one DataBundle."""
from __future__ import annotations

import collections.abc
import inspect
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

from .errors import NvError, choice_error


@dataclass
class DataBundle:
    """Train and validation splits of one dataset plus what a model needs to know about it.

    Samples are `(x, label)` with `x` a float tensor in *pixel space* (images in [0, 1], spectrograms
    in dB): normalisation is the model's first step, so perturbations act on what a person sees.
    """

    name: str
    kind: str  # "image", "sound" or "views"
    train: Dataset
    val: Dataset
    classes: list[str]
    in_channels: int
    mean: list[float]
    std: list[float]
    cues: dict[str, str] = field(default_factory=dict)  # class -> the mechanism that defines it
    info: dict[str, Any] = field(default_factory=dict)  # resolved settings, recorded in config.json


Loader = Callable[..., DataBundle]


@dataclass(frozen=True)
class Entry:
    """A registered dataset loader or writer."""

    fn: Callable[..., Any]
    description: str
    kind: str = "image"


_LOADERS: dict[str, Entry] = {}
_MAKERS: dict[str, Entry] = {}
MIN_IMAGE_SIZE = 16


def register(name: str, description: str, kind: str = "image") -> Callable[[Loader], Loader]:
    """Register a dataset loader under `name` (used by `--data NAME`); `kind` is image, sound or views."""

    def wrap(fn: Loader) -> Loader:
        _LOADERS[name] = Entry(fn, description, kind)
        return fn

    return wrap


def maker(name: str, description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a writer for `nv data make NAME --out DIR` (a built-in dataset in a real dataset's layout)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _MAKERS[name] = Entry(fn, description)
        return fn

    return wrap


def _ensure_registered() -> None:
    # Importing the dataset modules runs their @register decorators.
    from . import imagefolder, probe, sound, synthetic, views  # noqa: F401


def datasets() -> dict[str, Entry]:
    """Every dataset `--data` accepts, by name."""
    _ensure_registered()
    return dict(sorted(_LOADERS.items()))


def makers() -> dict[str, Entry]:
    """Every dataset `nv data make` can write, by name."""
    _ensure_registered()
    return dict(sorted(_MAKERS.items()))


def dataset_kind(name: str) -> str:
    """The kind of data `--data NAME` gives: image, sound or views."""
    if name not in datasets():
        raise choice_error("dataset", name, list(datasets()))
    return _LOADERS[name].kind


def output_dir(out_dir: str | os.PathLike, force: bool) -> Path:
    """Create `out_dir` for `nv data make`; refuse a file, or a non-empty directory unless `force`."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise NvError(f"output '{out}' exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise NvError(f"output directory '{out}' exists and is not empty; pass --force to write into it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NvError(f"cannot create output directory '{out}': {exc.strerror}") from exc
    return out


def _accepts(value: Any, hint: Any) -> bool:
    """Whether an option value fits a loader's type hint (the plain types options use; others pass)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        return isinstance(value, (list, tuple, str))
    return True


def _check_value(fn: Callable[..., Any], name: str, value: Any, hint: Any) -> None:
    if not _accepts(value, hint):
        shown = getattr(hint, "__name__", str(hint).replace("typing.", ""))
        raise NvError(f"option {name}={value!r} for {fn.__name__} must be of type {shown}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Options are counts, sizes, rates and durations (> 0); a seed may also be 0.
        if value < 0 or (value == 0 and name != "seed"):
            raise NvError(f"option {name}={value} for {fn.__name__} must be {'>= 0' if name == 'seed' else '> 0'}")


def _call(fn: Callable[..., Any], options: dict[str, Any], optional: tuple[str, ...] = ()) -> Any:
    """Call `fn` with the options it accepts, checked against its type hints; others are an error unless `optional`."""
    params = inspect.signature(fn).parameters
    unknown = sorted(k for k, v in options.items() if k not in params and k not in optional and v is not None)
    if unknown:
        valid = sorted(p for p in params if p not in ("out_dir", "data_dir"))
        raise NvError(f"option(s) {unknown} do not apply to {fn.__name__}; valid: {valid}")
    hints = typing.get_type_hints(fn)
    kwargs = {k: v for k, v in options.items() if k in params and v is not None}
    for key, value in kwargs.items():
        if key in hints:
            _check_value(fn, key, value, hints[key])
    return fn(**kwargs)


def make_dataset(name: str, out_dir: str, **options: Any) -> Any:
    """Write built-in dataset `name` to `out_dir` in the layout of the real dataset it stands in for."""
    _ensure_registered()
    if name not in _MAKERS:
        raise choice_error("dataset to make", name, sorted(_MAKERS))
    return _call(_MAKERS[name].fn, {"out_dir": out_dir, **options})


def load_data(name: str, **options: Any) -> DataBundle:
    """Load dataset `name`; options are passed to its loader (data_dir, image_size, seed, ...)."""
    _ensure_registered()
    if name not in _LOADERS:
        raise choice_error("dataset", name, sorted(_LOADERS))
    size = options.get("image_size")
    if isinstance(size, int) and size < MIN_IMAGE_SIZE:
        raise NvError(f"image size {size} is too small; use {MIN_IMAGE_SIZE} or more (32-64 is fast on CPU)")
    bundle = _call(_LOADERS[name].fn, options, optional=("seed", "image_size"))
    if len(bundle.classes) < 2:
        raise NvError(f"dataset '{name}' has {len(bundle.classes)} class(es); at least 2 are needed")
    for split in ("train", "val"):
        if len(getattr(bundle, split)) == 0:
            raise NvError(f"dataset '{name}' has no {split} samples with these settings")
    return bundle
