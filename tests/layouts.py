"""Small trees in the on-disk layouts of real datasets, written by tests (nv data make writes the others)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PLACES_CATEGORIES = ["/a/aquarium", "/b/ballroom", "/b/barn", "/c/canyon"]


def write_image(path: Path, colour: tuple[int, int, int]) -> None:
    """A 48 x 40 image of one colour, in the format its suffix names (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 48, 3), colour, np.uint8)).save(path)


def places_fixture(root: Path) -> None:
    """A tiny Places365 root in torchvision's layout (file lists, categories, data_256_standard, val_256).

    Three training images and one validation image per category; category i has red channel 60 * i.
    """
    categories = PLACES_CATEGORIES
    root.mkdir(parents=True, exist_ok=True)
    (root / "categories_places365.txt").write_text("".join(f"{c} {i}\n" for i, c in enumerate(categories)))
    train, val = [], []
    for i, cat in enumerate(categories):
        for k in range(3):
            rel = f"{cat}/{k:08d}.jpg"
            write_image(root / "data_256_standard" / rel.lstrip("/"), (60 * i, 10, 10))
            train.append(f"{rel} {i}")
        name = f"Places365_val_{i:08d}.jpg"
        write_image(root / "val_256" / name, (60 * i, 10, 10))
        val.append(f"{name} {i}")
    (root / "places365_train_standard.txt").write_text("\n".join(train) + "\n")
    (root / "places365_val.txt").write_text("\n".join(val) + "\n")
