"""Real image datasets read from disk: any ImageFolder tree, and Places365 in torchvision's layout."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import transforms as T

from ..errors import NvError
from ..fs.paths import listed_path, require_dir
from .imagefile import read_rgb
from .registry import IMAGENET_MEAN, IMAGENET_STD, DataBundle, DataOptions, select_classes

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}
PLACES10 = ("aquarium", "badlands", "ballroom", "barn", "baseball_field",
            "beach", "bedroom", "canyon", "forest_path", "kitchen")


class FileImageDataset(Dataset):
    """Samples `(float image [3, H, W] in [0, 1], label)` from image files."""

    def __init__(self, samples: list[tuple[Path, int]], transform: T.Compose) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def source_files(self) -> list[Path]:
        """The image files, in sample order (what a cache of this split depends on)."""
        return [path for path, _ in self.samples]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return self.transform(read_rgb(path)), label


def image_transforms(size: int, train: bool) -> T.Compose:
    """Train: random resized crop + horizontal flip; validation: resize + centre crop. Both end in [0, 1]."""
    if train:
        return T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True),
                          T.RandomHorizontalFlip(), T.ToTensor()])
    return T.Compose([T.Resize(size, antialias=True), T.CenterCrop(size), T.ToTensor()])


def _folder_samples(split_dir: Path, classes: list[str]) -> list[tuple[Path, int]]:
    samples = []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()) \
            if class_dir.is_dir() else []
        if not files:
            raise NvError(f"class '{name}' has no images in '{class_dir}' (expected files ending in "
                          f"{', '.join(sorted(IMAGE_SUFFIXES))})")
        samples += [(f, label) for f in files]
    return samples


def _bundle(name: str, train: list, val: list, classes: list[str], options: FolderOptions) -> DataBundle:
    return DataBundle(
        name=name, kind="image",
        train=FileImageDataset(train, image_transforms(options.image_size, True)),
        val=FileImageDataset(val, image_transforms(options.image_size, False)),
        train_eval=FileImageDataset(train, image_transforms(options.image_size, False)),
        classes=classes, in_channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        info={**options.to_dict(), "train_samples": len(train), "val_samples": len(val)},
    )


@dataclass(frozen=True)
class FolderOptions(DataOptions):
    """Settings of an image tree read from disk."""

    data_dir: str | None = None
    image_size: int = 64
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_image_size(self.image_size)


@dataclass(frozen=True)
class PlacesOptions(FolderOptions):
    """Settings of Places365 read from disk; `small` picks the 256 px images over the large ones."""

    small: bool = True


def load_imagefolder(options: FolderOptions) -> DataBundle:
    """An ImageFolder tree with `train/` and `val/` splits, one subfolder per class."""
    if options.data_dir is None:
        raise NvError("dataset 'imagefolder' needs data_dir: a directory holding train/<class>/ and val/<class>/",
                      param="data_dir")
    root = require_dir(Path(options.data_dir), "data directory")
    train_dir = require_dir(root / "train", "training split")
    val_dir = require_dir(root / "val", "validation split")
    available = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not available:
        raise NvError(f"'{train_dir}' has no class subfolders (expected train/<class>/<image>)")
    chosen = select_classes(available, options.classes, str(train_dir))
    return _bundle("imagefolder", _folder_samples(train_dir, chosen), _folder_samples(val_dir, chosen),
                   chosen, options)


def _places_lines(path: Path) -> list[tuple[int, str, int]]:
    """(line number, path, class index) of each line of a Places365 list file."""
    if not path.is_file():
        raise NvError(f"Places365 file list '{path}' is missing (torchvision's layout: categories_places365.txt, "
                      "places365_train_standard.txt, places365_val.txt, data_256_standard/, val_256/)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NvError(f"cannot read Places365 file list '{path}' ({getattr(exc, 'strerror', None) or exc})") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit():
            raise NvError(f"line {number} of '{path}' is not '<path> <class index>': {line!r}")
        rows.append((number, parts[0], int(parts[1])))
    return rows


def _category(path: str) -> str:
    """'/a/airfield' or 'a/airfield' -> 'airfield'; '/b/bedroom/indoor' -> 'bedroom/indoor' (the letter folder goes)."""
    parts = [p for p in path.split("/") if p]
    return "/".join(parts[1:] if len(parts) > 1 and len(parts[0]) == 1 else parts)


def load_places(options: PlacesOptions) -> DataBundle:
    """A subset of Places365 (default: the 10 classes of `PLACES10`) from torchvision's on-disk layout."""
    if options.data_dir is None:
        raise NvError("dataset 'places10' needs data_dir: a Places365 root in torchvision's layout",
                      param="data_dir")
    root = require_dir(Path(options.data_dir), "data directory")
    categories = root / "categories_places365.txt"
    names: dict[str, int] = {}
    for number, path, index in _places_lines(categories):
        name = _category(path)
        if name in names or index in names.values():
            raise NvError(f"line {number} of '{categories}' repeats the category {name!r} or its index {index}")
        names[name] = index
    chosen = select_classes(sorted(names), options.classes or PLACES10, "Places365")
    relabel = {names[c]: label for label, c in enumerate(chosen)}
    size = "256" if options.small else "large"
    splits = {"train": (root / "places365_train_standard.txt", root / f"data_{size}_standard"),
              "val": (root / "places365_val.txt", root / f"val_{size}")}
    samples = {}
    for split, (listing, images) in splits.items():
        require_dir(images, f"Places365 {split} images")
        samples[split] = [(listed_path(images, p.removeprefix("/"), f"line {n} of '{listing}'"), relabel[i])
                          for n, p, i in _places_lines(listing) if i in relabel]
        found = {label for _, label in samples[split]}
        empty = [c for label, c in enumerate(chosen) if label not in found]
        if empty:
            raise NvError(f"class '{empty[0]}' has no images in the Places365 {split} list '{listing}'")
    return _bundle("places10", samples["train"], samples["val"], chosen, options)
