"""The dataset registry: one line per dataset, and the one way every dataset is loaded into a DataBundle.

Each dataset is one module with an options dataclass (explicit keywords, validated once in its
`__post_init__`), a loader `load(options) -> DataBundle` and optionally a writer for `nv data make`.
This module imports none of them until a dataset is used: listing datasets needs neither torch nor
torchaudio, and image data never imports the sound stack.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence, get_args

from ..errors import NvError, choice_error
from ..schema import typed_values

if TYPE_CHECKING:
    from torch.utils.data import Dataset

OnError = Literal["fail", "skip"]  # what to do with an undecodable file: stop, or leave it out with a warning
ON_ERROR: tuple[str, ...] = get_args(OnError)
PATH_SETTINGS = ("data_dir", "cache_dir")  # settings that are paths: recorded absolute in config.json
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 4096  # one 4096 px RGB image is 200 MB as float32: larger sizes are typos
# The normalisation of torchvision's ImageNet networks: real images use it, so pretrained weights fit.
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@dataclass(frozen=True)
class DataOptions:
    """Options every dataset takes; each dataset's own dataclass adds its settings and checks them."""

    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= 2**31 - 1:
            raise NvError(f"seed {self.seed} is out of range; use an integer in [0, {2**31 - 1}]")

    @classmethod
    def from_values(cls, values: Mapping[str, Any], dataset: str) -> "DataOptions":
        """Options from flag or config.json values (None means unset); keys that do not apply are refused."""
        given = {k: v for k, v in values.items() if v is not None}
        settings = [f.name for f in fields(cls)]
        unknown = sorted(set(given) - set(settings))
        if unknown:
            raise NvError(f"dataset '{dataset}' takes no setting {', '.join(unknown)} (given by a flag or -D); its "
                          f"settings: {', '.join(settings)}")
        return cls(**typed_values(cls, given, f"dataset '{dataset}' setting"))

    def to_dict(self) -> dict[str, Any]:
        """The options as config.json records them: every field, paths absolute."""
        out = asdict(self)
        for key in PATH_SETTINGS:
            if out.get(key) is not None:
                out[key] = str(Path(out[key]).expanduser().resolve())
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def positive(self, *names: str) -> None:
        """Refuse a value <= 0 for any of the named (numeric, possibly unset) options."""
        for name in names:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise NvError(f"option {name}={value} must be > 0")

    def check_image_size(self, size: int | None) -> None:
        if size is not None and size < MIN_IMAGE_SIZE:
            raise NvError(f"image size {size} is too small; use {MIN_IMAGE_SIZE} or more (32-64 is fast on CPU)")
        if size is not None and size > MAX_IMAGE_SIZE:
            raise NvError(f"image size {size} is too large; use at most {MAX_IMAGE_SIZE} (ImageNet networks use 224)")


@dataclass(frozen=True)
class StylizeOptions:
    """How `nv data stylize` stylises images: `per_image` styles per content image, the FDA window `beta` (a share of
    the image side), and the seed that draws the styles."""

    per_image: int = 1
    beta: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        for ok, name, valid in ((1 <= self.per_image <= 1000, "per_image", "an integer in [1, 1000]"),
                                (0 < self.beta <= 0.5, "beta", "a share of the image side in (0, 0.5]"),
                                (0 <= self.seed <= 2**31 - 1, "seed", "an integer in [0, 2**31 - 1]")):
            if not ok:
                raise NvError(f"{name} {getattr(self, name)} is not valid; use {valid}", param=name)


@dataclass
class DataBundle:
    """Train and validation splits of one dataset plus what a model needs to know about it.

    Samples are `(x, label)` with `x` a float tensor in *pixel space* (images in [0, 1], spectrograms
    in dB): normalisation is the model's first step, so perturbations act on what a person sees.
    """

    name: str
    kind: str  # "image", "sound", "views" or "sequence" (what the model and the analyses take)
    train: "Dataset"
    val: "Dataset"
    classes: list[str]
    in_channels: int
    mean: list[float]
    std: list[float]
    cues: dict[str, str] = field(default_factory=dict)  # class -> the mechanism that defines it
    info: dict[str, Any] = field(default_factory=dict)  # resolved settings, recorded in config.json
    train_eval: "Dataset | None" = None  # the training samples without augmentation (None: train has none)
    options: DataOptions | None = None  # the settings it was loaded with (`load_data`), so a run can load it again

    def split(self, name: str) -> "Dataset":
        """A split as an analysis reads it: 'val', or 'train' without augmentation."""
        if name not in ("train", "val"):
            raise NvError(f"unknown split '{name}'; valid: train, val")
        return self.val if name == "val" else (self.train_eval if self.train_eval is not None else self.train)

    def counts(self, split: str) -> list[int]:
        """Samples per class in split `split` (every nv dataset lists its `labels`)."""
        counts = [0] * len(self.classes)
        for label in getattr(self, split).labels:
            counts[int(label)] += 1
        return counts

    @property
    def input_shape(self) -> list[int]:
        """The shape of one sample: [C, H, W], or [V, C, H, W] for multi-view data."""
        if len(self.train) == 0:
            raise NvError(f"dataset '{self.name}' has no training samples")
        return list(self.train[0][0].shape)


@dataclass(frozen=True)
class Entry:
    """A dataset: where its module is, what it reads (`load`) and what it writes (`make`, for nv data make)."""

    name: str
    kind: str
    description: str
    module: str  # under nvcli.data
    options: str  # the options dataclass of `load`
    load: str | None = None
    make: str | None = None
    make_options: str | None = None  # the options dataclass of `make` (default: `options`)

    def attribute(self, name: str) -> Any:
        return getattr(_import(self), name)


DATASETS: tuple[Entry, ...] = (
    Entry("shapes", "image", "built-in synthetic images: 9 classes defined by colour, texture or shape (default)",
          "shapes", "ShapesOptions", load="load_shapes", make="make_shapes"),
    Entry("cues", "image", "built-in cue-conflict images: 4 classes, each defined at once by its own shape, texture "
          "and colour; stylize replaces texture and colour (shape bias)", "cues", "CuesOptions", load="load_cues",
          make="make_cues"),
    Entry("imagefolder", "image", "any ImageFolder tree on disk: DATA_DIR/{train,val}/<class>/<image>",
          "images", "FolderOptions", load="load_imagefolder"),
    Entry("places10", "image", "Places365 on disk (torchvision's layout), 10 chosen classes",
          "images", "PlacesOptions", load="load_places"),
    Entry("broden", "probe", "a Broden-layout probe set of shapes images with their exact color/texture/object masks",
          "shapes", "ProbeOptions", make="make_broden"),
    Entry("cues-broden", "probe", "a Broden-layout probe set of cues images (shape, texture, colour drawn apart) with "
          "exact object/texture/color masks", "cues", "ProbeOptions", make="make_broden"),
    Entry("urbansound", "sound", "UrbanSound8K from its directory (metadata/UrbanSound8K.csv, audio/foldK), split by "
          "fold, as log-mel spectrograms", "sound.urbansound", "UrbanSoundOptions", load="load_urbansound"),
    Entry("tones", "sound", "synthetic sounds with known spectral mechanisms (tones, chirps, noise burst, clicks, "
          "harmonics) as log-mel spectrograms; or read back from a directory they were written to",
          "sound.tones", "TonesOptions", load="load_tones", make="make_tones", make_options="TonesMakeOptions"),
    Entry("audiofolder", "sound", "audio clips (WAV, FLAC, OGG, MP3; any rate and length) as log-mel spectrograms, "
          "in one of three layouts, detected: {train,val}/<class>/<clip>, Speech Commands' (<class>/ with "
          "validation_list.txt) or ESC-50's (meta/esc50.csv, audio/)", "sound.audiofolder", "AudioFolderOptions",
          load="load_audiofolder"),
    Entry("views", "views", "built-in multi-view data: 6 shaded solids from 12 azimuths, some told apart only from "
          "some", "views.solids", "SolidsOptions", load="load_solids", make="make_solids"),
    Entry("modelnet40", "views", "rendered views in MVCNN's layout: DATA_DIR/<class>/{train,test}/<object>"
          ".obj.shaded_vNNN.png", "views.modelnet40", "ModelNetOptions", load="load_modelnet"),
    Entry("ucr", "sequence", "a UCR time-series archive dataset on disk: DATA_DIR/<Name>_TRAIN.tsv and _TEST.tsv "
          "(also .txt / comma or space separated; NaN-padded variable lengths)", "ucr", "UCROptions",
          load="load_ucr"),
    Entry("sequences", "sequence", "built-in series with known temporal mechanisms (a pulse in an early or late "
          "window, the order of two pulses, a sine throughout); written out in the UCR layout",
          "sequences", "SequencesOptions", load="load_sequences", make="make_sequences",
          make_options="SequencesMakeOptions"),
)
_BY_NAME = {entry.name: entry for entry in DATASETS}


def _import(entry: Entry) -> Any:
    try:
        return importlib.import_module(f"{__package__}.{entry.module}")
    except (ImportError, OSError) as exc:
        if entry.kind != "sound":
            raise
        raise NvError(f"sound data needs torchaudio, which cannot be loaded ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0]}); installed: {_versions('torch', 'torchaudio')}; fix: install "
                      "the matched set from requirements.lock (make install; see docs/install.md)") from exc


def _versions(*names: str) -> str:
    import importlib.metadata  # only to word an error: not at start-up (40 ms)

    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def entry(name: str) -> Entry:
    """The registry entry of dataset `name`."""
    if name not in _BY_NAME:
        raise choice_error("dataset", name, sorted(_BY_NAME))
    return _BY_NAME[name]


def options_of(name: str, make: bool = False) -> list[tuple[str, str]]:
    """The settings dataset `name` takes (for `load`, or for `make`), with their defaults as text ('-': unset)."""
    found = entry(name)
    cls = found.attribute((found.make_options or found.options) if make else found.options)
    return [(f.name, "-" if f.default is None else str(f.default)) for f in fields(cls)]


def readable() -> list[Entry]:
    """Every dataset that training and `load_data` read."""
    return [e for e in DATASETS if e.load]


def dataset_kind(name: str) -> str:
    """The kind of data dataset `name` gives: image, sound or views."""
    found = entry(name)
    if not found.load:
        raise choice_error("dataset", name, [e.name for e in readable()])
    return found.kind


def data_options(name: str, values: Mapping[str, Any]) -> DataOptions:
    """A dataset's typed settings from plain values, each checked.

    Args:
        name: a dataset of the registry that can be read.
        values: setting -> value (None: the dataset's default); a key it does not take is refused.

    Returns:
        The dataset's own `DataOptions` subclass (e.g. `ShapesOptions`).
    """
    found = entry(name)
    if not found.load:
        raise choice_error("dataset", name, [e.name for e in readable()])
    return found.attribute(found.options).from_values(values, name)


def load_data(name: str, values: Mapping[str, Any] | DataOptions | None = None) -> DataBundle:
    """Load a dataset with its settings.

    Args:
        name: a dataset of the registry (`nv data list`).
        values: its settings: a DataOptions, or a mapping checked into one (None: every default).

    Returns:
        A `DataBundle`: `train` and `val` splits, `classes`, `kind`, `input_shape`, normalisation, `cues`.
    """
    options = values if isinstance(values, DataOptions) else data_options(name, values or {})
    found = entry(name)
    bundle = found.attribute(found.load)(options)
    bundle.options = options
    if len(bundle.classes) < 2:
        raise NvError(f"dataset '{name}' has {len(bundle.classes)} class(es); at least 2 are needed")
    for split in ("train", "val"):
        if len(getattr(bundle, split)) == 0:
            raise NvError(f"dataset '{name}' has no {split} samples with these settings")
    return bundle


def split_fingerprint(dataset: "Dataset") -> str:
    """A digest of what a split reads: its length and, for data read from files (a dataset with `source_files()`),
    each file's path, size and modification time in sample order; generated data is fixed by its settings."""
    digest = hashlib.sha256(str(len(dataset)).encode())
    listing = getattr(dataset, "source_files", None)
    for path in listing() if listing is not None else []:
        try:
            info = os.stat(path)
            digest.update(f"\0{path}\0{info.st_size}\0{info.st_mtime_ns}".encode("utf-8", "surrogateescape"))
        except OSError:
            digest.update(f"\0{path}\0missing".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def check_classes(bundle: DataBundle, classes: Sequence[str], run: str) -> DataBundle:
    """`bundle` if its classes are `classes` (names, count and order), else an NvError naming both lists."""
    if list(bundle.classes) == list(classes):
        return bundle
    added = [c for c in bundle.classes if c not in classes]
    gone = [c for c in classes if c not in bundle.classes]
    what = "; ".join(filter(None, (f"new: {', '.join(added)}" if added else "",
                                   f"missing: {', '.join(gone)}" if gone else ""))) or "the same names in another order"
    raise NvError(f"the data of run '{run}' no longer has the classes it was trained on ({what}): it was trained on "
                  f"{', '.join(classes)}, the data now gives {', '.join(bundle.classes)}; restore the data (e.g. put "
                  "back or remove the class folders) or train a new run")


def check_input(bundle: DataBundle, shape: Sequence[int], run: str) -> DataBundle:
    """`bundle` if one sample has `shape` (the input the run was trained on), else an NvError naming both; for
    sequences, the file holding the longest series and the steps and channels recorded and found."""
    found, shape = bundle.input_shape, [int(v) for v in shape]
    if found == shape:
        return bundle
    if bundle.kind == "sequence":
        files = [f for name in ("train", "val") if getattr(getattr(bundle, name), "steps", None) == found[-1]
                 for f in getattr(bundle, name).source_files()]
        where = f"'{files[0]}'" if files else f"dataset '{bundle.name}'"
        raise NvError(f"{where} holds series of {found[-1]} steps ({found[0]} channel(s)); run '{run}' was trained "
                      f"on series of {shape[-1]} steps ({shape[0]} channel(s)); restore the data or train a new run")
    raise NvError(f"the data of run '{run}' gives inputs of shape {found}; it was trained on {shape}; restore the "
                  "data or train a new run")


def make_dataset(name: str, out_dir: str | Path, values: Mapping[str, Any], *, force: bool = False) -> Path:
    """Write built-in dataset `name` to `out_dir` in the layout of the real dataset it stands in for."""
    makers = [e.name for e in DATASETS if e.make]
    if name not in makers:
        raise choice_error("dataset to make", name, makers)
    found = _BY_NAME[name]
    options = found.attribute(found.make_options or found.options).from_values(values, name)
    return found.attribute(found.make)(out_dir, options, force=force)


def check_class_name(name: str, source: str) -> str:
    """`name` if it can be a class name: valid UTF-8 text, not blank, no control characters."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "surrogateescape")
        raise NvError(f"class name {raw!r} in {source} is not valid UTF-8 text; rename it (e.g. "
                      f"{raw.decode('utf-8', 'replace')!r})") from None
    if not name.strip() or any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise NvError(f"class name {name!r} in {source} is blank or holds control characters; rename it")
    return name


def select_classes(available: Sequence[str], wanted: Sequence[str] | None, source: str) -> list[str]:
    """The `wanted` classes (all when None) in the dataset's own order; an unknown or repeated name is an error.

    Every chosen name must be usable as text in files and tables (`check_class_name`).
    """
    if not wanted:
        return [check_class_name(name, source) for name in available]
    repeated = sorted({n for n in wanted if list(wanted).count(n) > 1})
    if repeated:
        raise NvError(f"class(es) {', '.join(repeated)} named more than once; name each class once")
    for name in wanted:
        if name not in available:
            raise choice_error(f"class in {source}", name, list(available))
    return [check_class_name(name, source) for name in available if name in wanted]

