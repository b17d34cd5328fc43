"""Multi-view datasets: `views`, built-in shaded 3-D solids, and `modelnet40`, rendered views on disk.

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

`modelnet40` reads the layout of the public MVCNN PyTorch code,
`DATA_DIR/<class>/{train,test}/<class>_<id>.obj.shaded_v001.png ... _v012.png`, grouping files by
object name (not by sorted position) and checking that every object has every view.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from .atomic import atomic_path, write_json
from .data import DataBundle, maker, output_dir, register
from .errors import NvError, choice_error
from .imagefolder import IMAGENET_MEAN, IMAGENET_STD, require_dir, select_classes

log = logging.getLogger("nvcli")

RENDERED_VIEWS = 12
ELEVATION = 30.0  # degrees above the horizon, as in MVCNN's 12-view setup
EXTENT = 1.1  # half-width of the orthographic view, in object units
VIEW_CUES = {
    "cube": "a plain cube; told from cube_pocket only by the views that see its front face (azimuth 0)",
    "cube_pocket": "a cube with a square pocket in its front face (azimuth 0), invisible from behind and side-on",
    "cylinder": "a plain upright cylinder; told from cylinder_notch only by the views that see its back or its profile",
    "cylinder_notch": "a cylinder with a square notch cut into its back (azimuth 180): seen from behind and in side-on "
                      "silhouettes, hidden by the cylinder from the front",
    "cone": "an upright cone: its silhouette differs from every other class in every view",
    "sphere": "a sphere: its silhouette differs from every other class in every view",
}
CLASSES = tuple(sorted(VIEW_CUES))  # the order of the class folders on disk, so both loaders agree
SPLIT_DIRS = {"train": "train", "val": "test"}  # MVCNN's folder names
CUES_FILE = "cues.json"
VAL_SEED_OFFSET = 1_000_003  # validation objects come from their own random stream
ON_ERROR = ("fail", "skip")
_VIEW_FILE = re.compile(r"^(?P<object>.+?)(?:\.obj)?(?:\.shaded)?_v(?P<view>\d+)\.png$", re.IGNORECASE)
_EPS = 1e-6


# --- geometry: surface samples with outward normals, and an interior test, per solid ---------------

@dataclass
class Solid:
    """A closed solid as surface samples (points, outward normals) plus its interior test."""

    points: np.ndarray  # [N, 3]
    normals: np.ndarray  # [N, 3]
    inside: Callable[[np.ndarray], np.ndarray]

    def __sub__(self, other: "Solid") -> "Solid":
        """Difference: this surface outside `other`, plus `other`'s surface inside this one, turned inwards."""
        a, b = ~other.inside(self.points), self.inside(other.points)
        return Solid(np.concatenate([self.points[a], other.points[b]]),
                     np.concatenate([self.normals[a], -other.normals[b]]),
                     lambda p: self.inside(p) & ~other.inside(p))


def _cells(length: float, spacing: float) -> np.ndarray:
    """Cell-centred fractions in (0, 1) that sample a segment of `length` at most `spacing` apart."""
    n = max(1, int(np.ceil(length / spacing)))
    return (np.arange(n) + 0.5) / n


def _revolve(profile: list[tuple[np.ndarray, ...]], spacing: float,
             center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples of a surface of revolution about the vertical axis, from profile rows (rho, z, n_rho, n_z)."""
    rho, z, n_rho, n_z = (np.concatenate(parts) for parts in zip(*profile))
    counts = np.maximum(3, np.ceil(2 * np.pi * rho / spacing)).astype(int)
    ring = np.repeat(np.arange(len(rho)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    theta = 2 * np.pi * (k + 0.5 * (ring % 2)) / counts[ring]  # alternate rings staggered
    c, s = np.cos(theta), np.sin(theta)
    points = np.stack([rho[ring] * c, rho[ring] * s, z[ring]], axis=1) + center
    normals = np.stack([n_rho[ring] * c, n_rho[ring] * s, n_z[ring]], axis=1)
    return points, normals


def _disk(radius: float, z: float, up: float, spacing: float) -> tuple[np.ndarray, ...]:
    rho = radius * _cells(radius, spacing)
    return rho, np.full_like(rho, z), np.zeros_like(rho), np.full_like(rho, up)


def box(center: Sequence[float], half: Sequence[float], spacing: float) -> Solid:
    """An axis-aligned box."""
    c, h = np.asarray(center, float), np.asarray(half, float)
    points, normals = [], []
    for axis in range(3):
        a, b = (i for i in range(3) if i != axis)
        u, v = np.meshgrid(_cells(2 * h[a], spacing), _cells(2 * h[b], spacing), indexing="ij")
        for sign in (-1.0, 1.0):
            p = np.empty((u.size, 3))
            p[:, axis] = sign * h[axis]
            p[:, a], p[:, b] = (2 * u.ravel() - 1) * h[a], (2 * v.ravel() - 1) * h[b]
            n = np.zeros_like(p)
            n[:, axis] = sign
            points.append(p + c)
            normals.append(n)
    return Solid(np.concatenate(points), np.concatenate(normals),
                 lambda p: np.all(np.abs(p - c) < h - _EPS, axis=1))


def cylinder(center: Sequence[float], radius: float, half_height: float, spacing: float) -> Solid:
    """An upright cylinder."""
    c = np.asarray(center, float)
    t = 2 * half_height * _cells(2 * half_height, spacing) - half_height
    side = (np.full_like(t, radius), t, np.ones_like(t), np.zeros_like(t))
    points, normals = _revolve([side, _disk(radius, half_height, 1.0, spacing),
                                _disk(radius, -half_height, -1.0, spacing)], spacing, c)

    def inside(p: np.ndarray) -> np.ndarray:
        d = p - c
        return (d[:, 0] ** 2 + d[:, 1] ** 2 < (radius - _EPS) ** 2) & (np.abs(d[:, 2]) < half_height - _EPS)

    return Solid(points, normals, inside)


def cone(base: Sequence[float], radius: float, height: float, spacing: float) -> Solid:
    """An upright cone standing on its base disk."""
    c = np.asarray(base, float)
    slant = float(np.hypot(radius, height))
    t = _cells(slant, spacing)
    side = (radius * (1 - t), height * t, np.full_like(t, height / slant), np.full_like(t, radius / slant))
    points, normals = _revolve([side, _disk(radius, 0.0, -1.0, spacing)], spacing, c)

    def inside(p: np.ndarray) -> np.ndarray:
        d = p - c
        return (d[:, 2] > _EPS) & (np.hypot(d[:, 0], d[:, 1]) < radius * (1 - d[:, 2] / height) - _EPS)

    return Solid(points, normals, inside)


def sphere(center: Sequence[float], radius: float, spacing: float) -> Solid:
    """A sphere."""
    c = np.asarray(center, float)
    phi = np.pi * _cells(np.pi * radius, spacing) - np.pi / 2
    points, normals = _revolve([(radius * np.cos(phi), radius * np.sin(phi), np.cos(phi), np.sin(phi))], spacing, c)
    return Solid(points, normals, lambda p: np.linalg.norm(p - c, axis=1) < radius - _EPS)


def solid(name: str, spacing: float, rng: np.random.Generator | None = None) -> Solid:
    """Class `name`'s solid in object coordinates (x points to azimuth 0, z up); nominal when `rng` is None."""

    def jit(value: float, rel: float = 0.06) -> float:
        return value if rng is None else value * (1 + rng.uniform(-rel, rel))

    if name in ("cube", "cube_pocket"):
        half = np.array([jit(0.55), jit(0.55), jit(0.55)])
        body = box((0, 0, 0), half, spacing)
        if name == "cube":
            return body
        side = jit(0.27, 0.1)
        return body - box((half[0], 0, 0), (jit(0.28, 0.1), side, side), spacing)
    if name in ("cylinder", "cylinder_notch"):
        radius, half_height = jit(0.5), jit(0.6)
        body = cylinder((0, 0, 0), radius, half_height, spacing)
        if name == "cylinder":
            return body
        side = jit(0.18, 0.1)
        return body - box((-radius, 0, 0), (jit(0.2, 0.1), side, side), spacing)
    if name == "cone":
        height = jit(1.2)
        return cone((0, 0, -height / 2), jit(0.6), height, spacing)
    if name == "sphere":
        return sphere((0, 0, 0), jit(0.6), spacing)
    raise choice_error("solid", name, CLASSES)


# --- rendering --------------------------------------------------------------------------------------

def azimuths(views: int = RENDERED_VIEWS) -> list[float]:
    """The azimuths (degrees) of `views` views taken evenly from the 12 rendered ones."""
    return [(n - 1) * 360.0 / RENDERED_VIEWS for n in view_numbers(views, RENDERED_VIEWS)]


def view_numbers(views: int, available: int) -> list[int]:
    """The 1-based view numbers `views` evenly spaced views use out of `available` (1, 1 + stride, ...)."""
    if views < 1 or available % views:
        valid = [str(d) for d in range(1, available + 1) if available % d == 0]
        raise NvError(f"--views {views} does not divide the {available} rendered views evenly; "
                      f"valid: {', '.join(valid)}")
    stride = available // views
    return list(range(1, available + 1, stride))


def _dots(vectors: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """`vectors @ axes.T` ([N, 3] x [V, 3] -> [N, V]) without BLAS, whose threads stall tiny products on busy CPUs."""
    return vectors[:, :1] * axes[:, 0] + vectors[:, 1:2] * axes[:, 1] + vectors[:, 2:] * axes[:, 2]


def render(points: np.ndarray, normals: np.ndarray, azimuth: Sequence[float], size: int,
           light: Sequence[float] = (-0.35, 0.55, 0.75), gain: float = 1.0, ambient: float = 0.15) -> np.ndarray:
    """Grey-on-black renders (uint8 [V, size, size]) of a surface's samples from each azimuth at ELEVATION.

    Orthographic z-buffer of the front-facing surface samples; Lambert shading with the light given in
    camera coordinates (right, up, towards the camera), so every view is lit alike.
    """
    a, e = np.radians(np.asarray(azimuth, float)), np.radians(ELEVATION)
    toward = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.full_like(a, np.sin(e))], axis=1)
    right = np.stack([-np.sin(a), np.cos(a), np.zeros_like(a)], axis=1)
    up = np.cross(toward, right)
    lamp = light[0] * right + light[1] * up + light[2] * toward
    lamp /= np.linalg.norm(lamp, axis=1, keepdims=True)
    col = np.floor((_dots(points, right) + EXTENT) / (2 * EXTENT) * size).astype(np.int64)
    row = np.floor((EXTENT - _dots(points, up)) / (2 * EXTENT) * size).astype(np.int64)
    keep = (_dots(normals, toward) > 0) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
    view = np.broadcast_to(np.arange(len(a)), keep.shape)
    pixel = ((view * size + row) * size + col)[keep]
    depth = -_dots(points, toward)[keep]
    shade = (ambient + (1 - ambient) * gain * np.clip(_dots(normals, lamp), 0, None))[keep]
    nearest = np.full(len(a) * size * size, np.inf)
    np.minimum.at(nearest, pixel, depth)
    front = depth <= nearest[pixel]
    image = np.zeros(len(a) * size * size)
    image[pixel[front]] = shade[front]
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8).reshape(len(a), size, size)


def render_object(name: str, azimuth: Sequence[float], size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """One object of class `name` from each azimuth (uint8 [V, size, size]); nominal pose and light if `rng` is None."""
    spacing = 0.55 * 2 * EXTENT / size  # samples under 0.6 px apart leave no holes, even scaled up by 1.05
    shape = solid(name, spacing, rng)
    if rng is None:
        return render(shape.points, shape.normals, azimuth, size)
    scale, yaw = rng.uniform(0.85, 1.05), np.radians(rng.uniform(-6, 6))
    turn = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    points = scale * _dots(shape.points, turn) + rng.uniform(-0.05, 0.05, 3)
    light = (-0.35 + rng.uniform(-0.2, 0.2), 0.55 + rng.uniform(-0.2, 0.2), 0.75)
    return render(points, _dots(shape.normals, turn), azimuth, size, light, gain=rng.uniform(0.8, 1.0),
                  ambient=rng.uniform(0.1, 0.2))


def render_views(per_class: int, size: int, seed: int, views: int = RENDERED_VIEWS) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` random objects of every class: images uint8 [N, V, size, size] and labels [N], class-major."""
    rng = np.random.default_rng(seed)
    az = azimuths(views)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    images = np.empty((len(labels), len(az), size, size), np.uint8)
    for i, label in enumerate(labels):
        images[i] = render_object(CLASSES[label], az, size, rng)
    return images, labels


@lru_cache(maxsize=1)
def _nominal(size: int = 64) -> dict[str, np.ndarray]:
    return {name: render_object(name, azimuths(), size).astype(np.int16) for name in CLASSES}


def separating_views(views: int = RENDERED_VIEWS, min_fraction: float = 0.005) -> dict[tuple[str, str], list[int]]:
    """Ground truth: for every pair of classes, the view indices (0-based among `views`) that tell them apart.

    A view separates a pair when the pair's nominal renders differ by over 10% grey in more than
    `min_fraction` of the pixels; with `min_fraction=0`, the complement is the views that show no difference.
    """
    numbers = view_numbers(views, RENDERED_VIEWS)
    images = _nominal()
    truth = {}
    for a, b in combinations(CLASSES, 2):
        differ = (np.abs(images[a] - images[b]) > 25).mean(axis=(1, 2)) > min_fraction
        truth[(a, b)] = [i for i, n in enumerate(numbers) if differ[n - 1]]
    return truth


def _pair_keys(truth: dict[tuple[str, str], list[int]]) -> dict[str, list[int]]:
    return {f"{a}|{b}": v for (a, b), v in truth.items()}


# --- datasets ---------------------------------------------------------------------------------------

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


class ViewFileDataset(Dataset):
    """Samples `(float views [V, 3, H, W] in [0, 1], label)` read from one image file per view."""

    def __init__(self, objects: list[tuple[list[Path], int]], image_size: int) -> None:
        self.objects = objects
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.objects)

    def _load(self, path: Path) -> torch.Tensor:
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise NvError(f"cannot decode image '{path}' ({exc.__class__.__name__})") from exc
        if rgb.size != (self.image_size, self.image_size):
            rgb = rgb.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        paths, label = self.objects[i]
        return torch.stack([self._load(p) for p in paths]), label


def _grey_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    scaled = images.astype(np.float64) / 255
    return [round(float(scaled.mean()), 3)] * 3, [round(float(scaled.std()), 3)] * 3


@register("views", "built-in multi-view data: 6 shaded solids from 12 azimuths, some told apart only from some",
          kind="views")
def load_views(image_size: int = 32, seed: int = 0, train_per_class: int = 40, val_per_class: int = 20,
               views: int = RENDERED_VIEWS) -> DataBundle:
    """The synthetic `views` dataset; train and validation are rendered from different seeds."""
    numbers = view_numbers(views, RENDERED_VIEWS)
    train_images, train_labels = render_views(train_per_class, image_size, seed, views)
    val_images, val_labels = render_views(val_per_class, image_size, seed + VAL_SEED_OFFSET, views)
    mean, std = _grey_stats(train_images)
    return DataBundle(
        name="views", kind="views",
        train=ViewArrayDataset(train_images, train_labels), val=ViewArrayDataset(val_images, val_labels),
        classes=list(CLASSES), in_channels=3, mean=mean, std=std, cues=dict(VIEW_CUES),
        info={"views": views, "view_numbers": numbers, "azimuths": azimuths(views), "elevation": ELEVATION,
              "image_size": image_size, "seed": seed, "train_per_class": train_per_class,
              "val_per_class": val_per_class, "separating_views": _pair_keys(separating_views(views))},
    )


@maker("views", "the views solids as MVCNN renders: OUT/<class>/{train,test}/<object>.obj.shaded_vNNN.png")
def make_views(out_dir: str | Path, seed: int = 0, train_per_class: int = 40, val_per_class: int = 20,
               image_size: int = 32, force: bool = False) -> Path:
    """Write the `views` dataset (all 12 views) as PNGs in the ModelNet40/MVCNN layout, plus `cues.json`."""
    out = output_dir(out_dir, force)
    splits = (("train", train_per_class, seed), ("test", val_per_class, seed + VAL_SEED_OFFSET))
    for split, per_class, split_seed in splits:
        images, labels = render_views(per_class, image_size, split_seed)
        for name in CLASSES:  # a forced rewrite must not keep objects from an earlier, larger set
            folder = out / name / split
            for old in folder.glob("*.png") if folder.is_dir() else []:
                if _VIEW_FILE.match(old.name):
                    old.unlink()
        counters: Counter[int] = Counter()
        for renders, label in zip(images, labels):
            name = CLASSES[label]
            counters[label] += 1
            for number, view in enumerate(renders, 1):
                path = out / name / split / f"{name}_{counters[label]:04d}.obj.shaded_v{number:03d}.png"
                with atomic_path(path) as tmp:
                    Image.fromarray(view).save(tmp, format="PNG")
    write_json(out / CUES_FILE, {"cues": VIEW_CUES, "separating_views": _pair_keys(
        {pair: [i + 1 for i in v] for pair, v in separating_views().items()})})
    log.info("wrote %d+%d objects per class x %d views to %s", train_per_class, val_per_class, RENDERED_VIEWS, out)
    return out


def _group(folder: Path) -> dict[str, dict[int, Path]]:
    """View files of one class split grouped by object name: {object: {view number: path}}."""
    groups: dict[str, dict[int, Path]] = defaultdict(dict)
    for path in folder.iterdir():
        match = _VIEW_FILE.match(path.name)
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


@register("modelnet40", "rendered views in MVCNN's layout: DATA_DIR/<class>/{train,test}/<object>.obj.shaded_vNNN.png",
          kind="views")
def load_modelnet(data_dir: str | None = None, image_size: int = 64, views: int = RENDERED_VIEWS,
                  classes: Sequence[str] | str | None = None, on_error: str = "fail") -> DataBundle:
    """ModelNet40 (or any set in its layout): train from `train/`, validation from `test/`, `views` views per object."""
    if data_dir is None:
        raise NvError("--data modelnet40 needs --data-dir PATH holding <class>/train/ and <class>/test/ "
                      "(e.g. MVCNN's modelnet40_images_new_12x)")
    if on_error not in ON_ERROR:
        raise choice_error("--on-error value", on_error, ON_ERROR)
    root = require_dir(Path(data_dir), "data directory")
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not available:
        raise NvError(f"'{root}' has no class folders (expected <class>/train/<object>.obj.shaded_v001.png ...)")
    wanted = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else classes
    chosen = select_classes(available, wanted, str(root))
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
                                  "use --on-error skip to leave such objects out")
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
        info={"views": views, "view_numbers": numbers, "rendered_views": rendered, "data_dir": str(root),
              "image_size": image_size, "on_error": on_error, "skipped": len(skipped),
              "train_samples": len(objects["train"]), "val_samples": len(objects["val"]),
              **({"separating_views": pairs} if pairs else {})},
    )
