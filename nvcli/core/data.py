"""The dataset registry: every dataset, built-in or on disk, is loaded into one DataBundle."""
from __future__ import annotations

from dataclasses import dataclass, field
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
_LOADERS: dict[str, tuple[Loader, str]] = {}
_MAKERS: dict[str, tuple[Callable[..., Any], str]] = {}


def register(name: str, description: str) -> Callable[[Loader], Loader]:
    """Register a dataset loader under `name` (used by `--data NAME`)."""

    def wrap(fn: Loader) -> Loader:
        _LOADERS[name] = (fn, description)
        return fn

    return wrap


def maker(name: str, description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a writer for `nv data make NAME --out DIR` (a built-in dataset in a real dataset's layout)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _MAKERS[name] = (fn, description)
        return fn

    return wrap


def _ensure_registered() -> None:
    # Importing the dataset modules runs their @register decorators.
    from . import imagefolder, probe, sound, synthetic, views  # noqa: F401


def dataset_names() -> dict[str, str]:
    """Every registered dataset name with its one-line description."""
    _ensure_registered()
    return {name: desc for name, (_, desc) in sorted(_LOADERS.items())}


def maker_names() -> dict[str, str]:
    """Every dataset `nv data make` can write, with its description."""
    _ensure_registered()
    return {name: desc for name, (_, desc) in sorted(_MAKERS.items())}


def _call(fn: Callable[..., Any], options: dict[str, Any], optional: tuple[str, ...] = ()) -> Any:
    """Call `fn` with the options it accepts; others are an error unless named in `optional`."""
    import inspect

    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k, v in options.items() if k not in params and k not in optional and v is not None)
        if unknown:
            valid = sorted(p for p in params if p not in ("out_dir", "data_dir"))
            raise NvError(f"option(s) {unknown} do not apply to {fn.__name__}; valid: {valid}")
    return fn(**{k: v for k, v in options.items() if k in params and v is not None})


def make_dataset(name: str, out_dir: str, **options: Any) -> Any:
    """Write built-in dataset `name` to `out_dir` in the layout of the real dataset it stands in for."""
    _ensure_registered()
    if name not in _MAKERS:
        raise choice_error("dataset to make", name, sorted(_MAKERS))
    return _call(_MAKERS[name][0], {"out_dir": out_dir, **options})


def load_data(name: str, **options: Any) -> DataBundle:
    """Load dataset `name`; options are passed to its loader (data_dir, image_size, seed, ...)."""
    _ensure_registered()
    if name not in _LOADERS:
        raise choice_error("dataset", name, sorted(_LOADERS))
    bundle = _call(_LOADERS[name][0], options, optional=("seed", "image_size"))
    if len(bundle.classes) < 2:
        raise NvError(f"dataset '{name}' has {len(bundle.classes)} class(es); at least 2 are needed")
    return bundle
