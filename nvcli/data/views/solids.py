"""`views`: built-in multi-view data, shaded 3-D solids whose classes differ only from some views.

Both yield samples `(x, label)` with `x` a float tensor [V, 3, H, W] in [0, 1]: one grey render per
view (replicated to three channels so ImageNet-style first convolutions fit), views in azimuth order.

`views` renders six solids from 12 azimuths 30 degrees apart at 30 degrees elevation, grey on black
like MVCNN's shaded renders (orthographic z-buffered surface samples, Lambert shading with the light
fixed to the camera). Two pairs of classes differ only from some views, and from complementary ones:
`cube` vs `cube_pocket` (a square pocket in the face at azimuth 0: views 300..60 degrees) and
`cylinder` vs `cylinder_notch` (a notch cut into the back at azimuth 180: views 120..240; side-on, a
sliver); `cone` and `sphere` differ from every class in every view. Nuisance: size, proportions, small
yaw and offset, light direction and strength. `separating_views()` is the ground truth: which
views tell each pair of classes apart, found by rendering the nominal solids and comparing pixels.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ...fs.atomic import atomic_path, write_json
from ..output import dataset_output
from ..registry import DataBundle, DataOptions
from .geometry import SOLIDS
from .render import ELEVATION, RENDERED_VIEWS, azimuths, render_views, separating_views, view_numbers

log = logging.getLogger(__name__)

VIEW_CUES = {
    "cube": "a plain cube; told from cube_pocket only by the views that see its front face (azimuth 0)",
    "cube_pocket": "a cube with a square pocket in its front face (azimuth 0), invisible from behind and side-on",
    "cylinder": "a plain upright cylinder; told from cylinder_notch only by the views that see its back or its profile",
    "cylinder_notch": "a cylinder with a square notch cut into its back (azimuth 180): seen from behind and in side-on "
                      "silhouettes, hidden by the cylinder from the front",
    "cone": "an upright cone: its silhouette differs from every other class in every view",
    "sphere": "a sphere: its silhouette differs from every other class in every view",
}
CLASSES = SOLIDS  # sorted: the order of the class folders on disk, so both loaders agree
CUES_FILE = "cues.json"
VAL_SEED_OFFSET = 1_000_003  # validation objects come from their own random stream


class ViewArrayDataset(Dataset):
    """Samples `(float views [V, 3, H, W] in [0, 1], label)` from grey uint8 renders [N, V, H, W] in memory."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        grey = self.images[i].float().div_(255)
        return grey.unsqueeze(1).repeat(1, 3, 1, 1), int(self.labels[i])


def _grey_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    scaled = images.astype(np.float64) / 255
    return [round(float(scaled.mean()), 3)] * 3, [round(float(scaled.std()), 3)] * 3


def pair_keys(truth: dict[tuple[str, str], list[int]]) -> dict[str, list[int]]:
    """Ground-truth separating views keyed 'a|b', as JSON keeps them."""
    return {f"{a}|{b}": v for (a, b), v in truth.items()}


@dataclass(frozen=True)
class SolidsOptions(DataOptions):
    """Settings of the `views` solids: render size, objects per class, and how many of the 12 views to use."""

    image_size: int = 32
    train_per_class: int = 40
    val_per_class: int = 20
    views: int = RENDERED_VIEWS

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_image_size(self.image_size)
        self.positive("train_per_class", "val_per_class")
        view_numbers(self.views, RENDERED_VIEWS)


def load_solids(options: SolidsOptions) -> DataBundle:
    """The synthetic `views` dataset; train and validation are rendered from different seeds."""
    size, seed, views = options.image_size, options.seed, options.views
    train_images, train_labels = render_views(options.train_per_class, size, seed, views)
    val_images, val_labels = render_views(options.val_per_class, size, seed + VAL_SEED_OFFSET, views)
    mean, std = _grey_stats(train_images)
    return DataBundle(
        name="views", kind="views",
        train=ViewArrayDataset(train_images, train_labels), val=ViewArrayDataset(val_images, val_labels),
        classes=list(CLASSES), in_channels=3, mean=mean, std=std, cues=dict(VIEW_CUES),
        info={**options.to_dict(), "view_numbers": view_numbers(views, RENDERED_VIEWS), "azimuths": azimuths(views),
              "elevation": ELEVATION, "separating_views": pair_keys(separating_views(views))},
    )


def make_solids(out_dir: str | Path, options: SolidsOptions, *, force: bool = False) -> Path:
    """Write the `views` dataset (all 12 views) as PNGs in the ModelNet40/MVCNN layout, plus `cues.json`."""
    splits = (("train", options.train_per_class, options.seed),
              ("test", options.val_per_class, options.seed + VAL_SEED_OFFSET))
    with dataset_output(out_dir, "views", force=force) as out:
        for split, per_class, split_seed in splits:
            images, labels = render_views(per_class, options.image_size, split_seed)
            counters: Counter[int] = Counter()
            for renders, label in zip(images, labels):
                name = CLASSES[label]
                counters[label] += 1
                for number, view in enumerate(renders, 1):
                    path = out / name / split / f"{name}_{counters[label]:04d}.obj.shaded_v{number:03d}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_path(path) as tmp:
                        Image.fromarray(view).save(tmp, format="PNG")
        write_json(out / CUES_FILE, {"cues": VIEW_CUES, "separating_views": pair_keys(
            {pair: [i + 1 for i in v] for pair, v in separating_views().items()})})
    log.info("wrote %d+%d objects per class x %d views to %s", options.train_per_class, options.val_per_class,
             RENDERED_VIEWS, out)
    return out
