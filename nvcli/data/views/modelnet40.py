"""`modelnet40`: rendered views on disk in the layout of the public MVCNN PyTorch code.

`DATA_DIR/<class>/{train,test}/<class>_<id>.obj.shaded_v001.png ... _v012.png`. Files are grouped by
object name (not by sorted position) and every object must have every view. Samples are
`(x, label)` with `x` a float tensor [V, 3, H, W] in [0, 1], views in azimuth order.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ...errors import NvError, choice_error
from ...fs.paths import require_dir
from ..imagefile import read_rgb
from ..registry import IMAGENET_MEAN, IMAGENET_STD, ON_ERROR, DataBundle, DataOptions, select_classes
from .render import RENDERED_VIEWS, view_numbers
from .solids import CUES_FILE

log = logging.getLogger(__name__)

SPLIT_DIRS = {"train": "train", "val": "test"}  # MVCNN's folder names
VIEW_FILE = re.compile(r"^(?P<object>.+?)(?:\.obj)?(?:\.shaded)?_v(?P<view>\d+)\.png$", re.IGNORECASE)


class ViewFileDataset(Dataset):
    """Samples `(float views [V, 3, H, W] in [0, 1], label)` read from one image file per view."""

    def __init__(self, objects: list[tuple[list[Path], int]], image_size: int) -> None:
        self.objects = objects
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.objects]

    def source_files(self) -> list[Path]:
        """Every view image, object by object (what a cache of this split depends on)."""
        return [path for views, _ in self.objects for path in views]

    def _load(self, path: Path) -> torch.Tensor:
        rgb = read_rgb(path)
        if rgb.size != (self.image_size, self.image_size):
            rgb = rgb.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        paths, label = self.objects[i]
        return torch.stack([self._load(p) for p in paths]), label


def _group(folder: Path) -> dict[str, dict[int, Path]]:
    """View files of one class split grouped by object name: {object: {view number: path}}."""
    groups: dict[str, dict[int, Path]] = defaultdict(dict)
    for path in folder.iterdir():
        match = VIEW_FILE.match(path.name)
        if match and path.is_file():
            groups[match["object"]][int(match["view"])] = path
    return groups


def _read_cues(root: Path, classes: list[str], numbers: list[int]) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Cues and ground-truth separating views (1-based numbers in the file) mapped onto the chosen views."""
    path = root / CUES_FILE
    if not path.is_file():
        return {}, {}
    try:
        data = json.loads(path.read_text())
        cues = {c: str(t) for c, t in data.get("cues", {}).items() if c in classes}
        index = {n: i for i, n in enumerate(numbers)}
        pairs = {key: [index[n] for n in seen if n in index] for key, seen in data.get("separating_views", {}).items()
                 if all(c in classes for c in key.split("|"))}
    except (ValueError, AttributeError, TypeError) as exc:
        raise NvError(f"'{path}' is not a valid cues file ({exc.__class__.__name__}: {exc})") from exc
    return cues, pairs


@dataclass(frozen=True)
class ModelNetOptions(DataOptions):
    """Settings of rendered views read from disk."""

    data_dir: str | None = None
    image_size: int = 64
    views: int = RENDERED_VIEWS
    classes: tuple[str, ...] | None = None
    on_error: str = "fail"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_image_size(self.image_size)
        self.positive("views")
        if self.on_error not in ON_ERROR:
            raise choice_error("on_error value", self.on_error, ON_ERROR, param="on_error")


def load_modelnet(options: ModelNetOptions) -> DataBundle:
    """ModelNet40 (or any set in its layout): train from `train/`, validation from `test/`, `views` views per object."""
    if options.data_dir is None:
        raise NvError("dataset 'modelnet40' needs data_dir: a directory holding <class>/train/ and <class>/test/ "
                      "(e.g. MVCNN's modelnet40_images_new_12x)", param="data_dir")
    data_dir, image_size, views, on_error = options.data_dir, options.image_size, options.views, options.on_error
    root = require_dir(Path(data_dir), "data directory")
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not available:
        raise NvError(f"'{root}' has no class folders (expected <class>/train/<object>.obj.shaded_v001.png ...)")
    chosen = select_classes(available, options.classes, str(root))
    groups = {}
    for label, name in enumerate(chosen):
        for split, folder in SPLIT_DIRS.items():
            found = _group(root / name / folder) if (root / name / folder).is_dir() else {}
            if not found:
                raise NvError(f"class '{name}' has no objects in '{root / name / folder}' "
                              "(expected <object>.obj.shaded_v001.png ... one file per view)")
            groups[(label, split)] = found
    # The view count is what most objects have: one stray or missing file must not redefine it.
    rendered = Counter(max(g) for found in groups.values() for g in found.values()).most_common(1)[0][0]
    numbers = view_numbers(views, rendered)
    objects: dict[str, list[tuple[list[Path], int]]] = {"train": [], "val": []}
    skipped = []
    for (label, split), found in groups.items():
        for obj in sorted(found):
            missing = [n for n in range(1, rendered + 1) if n not in found[obj]]
            where = f"{chosen[label]}/{SPLIT_DIRS[split]}/{obj}"
            if missing:
                if on_error == "fail":
                    lacking = ", ".join(f"v{n:03d}" for n in missing)
                    raise NvError(f"object '{where}' in '{root}' lacks view(s) {lacking} of {rendered}; "
                                  "use on_error skip to leave such objects out", param="on_error")
                skipped.append(where)
                continue
            objects[split].append(([found[obj][n] for n in numbers], label))
    if skipped:
        log.warning("skipped %d object(s) with missing views, e.g. %s", len(skipped), ", ".join(skipped[:3]))
    for split in objects:
        present = {label for _, label in objects[split]}
        empty = [c for label, c in enumerate(chosen) if label not in present]
        if empty:
            raise NvError(f"class '{empty[0]}' has no complete object in {SPLIT_DIRS[split]}/ after skipping")
    cues, pairs = _read_cues(root, chosen, numbers)
    return DataBundle(
        name="modelnet40", kind="views",
        train=ViewFileDataset(objects["train"], image_size), val=ViewFileDataset(objects["val"], image_size),
        classes=chosen, in_channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD, cues=cues,
        info={**options.to_dict(), "view_numbers": numbers, "rendered_views": rendered, "skipped": len(skipped),
              "train_samples": len(objects["train"]), "val_samples": len(objects["val"]),
              **({"separating_views": pairs} if pairs else {})},
    )
