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


def register(name: str, description: str) -> Callable[[Loader], Loader]:
    """Register a dataset loader under `name` (used by `--data NAME`)."""

    def wrap(fn: Loader) -> Loader:
        _LOADERS[name] = (fn, description)
        return fn

    return wrap


def _ensure_registered() -> None:
    # Importing the dataset modules runs their @register decorators.
    from . import synthetic, imagefolder  # noqa: F401
    try:
        from . import sound  # noqa: F401
    except ImportError:  # pragma: no cover - only while the sound module is absent
        pass
    try:
        from . import views  # noqa: F401
    except ImportError:  # pragma: no cover
        pass


def dataset_names() -> dict[str, str]:
    """Every registered dataset name with its one-line description."""
    _ensure_registered()
    return {name: desc for name, (_, desc) in sorted(_LOADERS.items())}


def load_data(name: str, **options: Any) -> DataBundle:
    """Load dataset `name`; options are passed to its loader (data_dir, image_size, seed, ...)."""
    _ensure_registered()
    if name not in _LOADERS:
        raise choice_error("dataset", name, sorted(_LOADERS))
    fn, _ = _LOADERS[name]
    import inspect

    accepted = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    bundle = fn(**kwargs)
    if len(bundle.classes) < 2:
        raise NvError(f"dataset '{name}' has {len(bundle.classes)} class(es); at least 2 are needed")
    return bundle
