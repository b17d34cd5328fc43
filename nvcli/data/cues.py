"""`cues`: a built-in cue-conflict world (paper case study 2) whose classes are defined redundantly by known cues.

Four classes; each has its own shape, its own texture and its own colour, and every training and validation image
shows all three, so a network may decide by any of them:
- alpha: a striped red circle;   beta: a dotted green square;
- gamma: a chequered blue triangle;   delta: a grid-patterned yellow cross.
A pattern alternates the class colour with a light tint of it. Position, size, rotation, pattern period and
orientation, and the dark noisy background are random.
Stylised training (setting `stylize`, a probability P): each training image is, with probability P, rendered with
its shape kept and a random style drawn independently of the class: a texture of any class and a random hue, so
texture and colour carry no information about those images' class (Geirhos et al. 2019's stylised ImageNet, made
exact here by re-rendering). Validation images are never stylised.
Cue-conflict images (`render_conflicts`, read by `nv bias`), every cue's class recorded: the shape of one class with
the texture and colour of another (a style: Geirhos's cue conflict), and the shape of one class, the texture of a
second and the colour of a third, so a decision follows the shape, the texture, the colour or none.
The probe set (`nv data make cues-broden`) draws shape, texture and colour independently, with pixel-exact masks in
the categories object, texture and color, so Network Dissection can tell shape units from texture and colour units.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import NvError
from ..fs.atomic import write_csv
from .broden import write_broden
from .imagefile import save_png
from .output import dataset_output
from .registry import DataBundle, DataOptions
from .shapes import WORLDS, ProbeOptions, Rendered, ShapesSplit, _shape_mask, _texture_mask

CLASSES = ("alpha", "beta", "gamma", "delta")
SHAPES = ("circle", "square", "triangle", "cross")
TEXTURES = ("striped", "dotted", "chequered", "grid")
COLOURS = ("red", "green", "blue", "yellow")
RGB = {"red": (215, 35, 35), "green": (35, 185, 35), "blue": (40, 65, 225), "yellow": (220, 200, 25)}
CUES = {c: f"shape {s}, texture {t}, colour {k} (each alone decides the class)"
        for c, s, t, k in zip(CLASSES, SHAPES, TEXTURES, COLOURS)}
CUE_NAMES = ("shape", "texture", "colour")  # the cues a decision can follow, in the order of a class's cues
CONCEPTS = {"object": SHAPES, "texture": TEXTURES, "color": COLOURS}  # the probe's categories (Broden's names)
TINT = 0.6  # a pattern's second colour: the first moved this far towards white
CROSS_ARM = 0.38  # a cross's arm half-width, as a share of its radius
RANDOM = -1  # a cue drawn at random, independently of the class (a stylised image's texture and colour)
GEOMETRY = WORLDS[2]  # object radius and pattern cell as `shapes` world 2: AlexNet resolves them at 64 px
VAL_SEED_OFFSET = 1_000_003  # validation, conflict and probe images come from seeds of their own
CONFLICT_SEED_OFFSET = 3_000_017
PROBE_SEED_OFFSET = 2_000_029
STYLE_SEED_OFFSET = 4_000_037  # whether a training image is stylised: its own stream, so P changes nothing else


def _shape(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    if shape != "cross":
        return _shape_mask(shape, yy, xx, cy, cx, r, angle)
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * (xx - cx) + sin * (yy - cy), -sin * (xx - cx) + cos * (yy - cy)
    arm = r * CROSS_ARM
    return ((np.abs(u) <= r) & (np.abs(v) <= arm)) | ((np.abs(v) <= r) & (np.abs(u) <= arm))


def _texture(texture: str, yy: np.ndarray, xx: np.ndarray, period: float, angle: float) -> np.ndarray:
    """True where the pattern shows its second colour."""
    if texture != "grid":
        return _texture_mask(texture, yy, xx, period, angle)
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * xx + sin * yy, -sin * xx + cos * yy
    return ((u / period) % 1 < 0.35) | ((v / period) % 1 < 0.35)


def _random_hue(rng: np.random.Generator) -> tuple[float, float, float]:
    """A saturated colour of any hue (a stylised image's colour, independent of the class)."""
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.65, 1.0), rng.uniform(0.75, 0.9))
    return 255 * r, 255 * g, 255 * b


def render_cues(cues: np.ndarray, size: int, seed: int, scale: float = 1.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Images (uint8 [N, H, W, 3]) and concept masks (per category, int [N, H, W], 1-based, 0 = none) of objects
    whose cues are given per image as class indices `cues` [N, 3] (shape, texture, colour; RANDOM draws a texture of
    any class or a random hue); objects are drawn at `scale` times their size (a probe's canvas uses < 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    n = len(cues)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = {cat: np.zeros((n, size, size), np.int32) for cat in CONCEPTS}
    for i, (shape, texture, colour) in enumerate(np.asarray(cues, np.int64)):
        texture = int(rng.integers(len(TEXTURES))) if texture == RANDOM else texture
        first = np.array(_random_hue(rng) if colour == RANDOM else RGB[COLOURS[colour]], np.float64)
        second = first + TINT * (255 - first)
        grey = rng.uniform(15, 60)
        image = grey + rng.normal(0, 8, (size, size, 1)) + rng.uniform(-6, 6, 3)
        r = size * scale * rng.uniform(*GEOMETRY.radius)
        cy, cx = rng.uniform(r + 1, size - r - 1, 2)
        obj = _shape(SHAPES[shape], yy, xx, cy, cx, r, rng.uniform(0, 2 * np.pi))
        alt = _texture(TEXTURES[texture], yy, xx, max(4.0, size * scale * rng.uniform(*GEOMETRY.cell)),
                       rng.uniform(0, np.pi))
        jitter = rng.uniform(-15, 15, 3)
        fill = np.where(alt[..., None], second + jitter, first + jitter) + rng.normal(0, 4, (size, size, 1))
        images[i] = np.clip(np.where(obj[..., None], fill, image), 0, 255).astype(np.uint8)
        masks["object"][i] = np.where(obj, shape + 1, 0)
        masks["texture"][i] = np.where(obj, texture + 1, 0)
        masks["color"][i] = np.where(obj, colour + 1, 0) if colour != RANDOM else 0
    return images, masks


def balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` class indices, every class equally often (to one), in random order."""
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    return labels


def render(n: int, size: int = 64, seed: int = 0, stylize: float = 0.0) -> Rendered:
    """`n` images with balanced classes, each showing its class's three cues; with probability `stylize` an image
    keeps only its shape and takes a random texture and hue (its colour mask is then empty)."""
    labels = balanced_labels(n, np.random.default_rng(seed))
    styled = np.random.default_rng(seed + STYLE_SEED_OFFSET).random(n) < stylize
    cues = np.stack([labels, labels, labels], 1)
    cues[styled, 1:] = RANDOM
    images, masks = render_cues(cues, size, seed + 1)
    return Rendered(images, labels, masks)


@dataclass
class Conflicts:
    """Cue-conflict images (uint8 [N, H, W, 3]) and, per image, the class index of each cue [N, 3]
    (columns: CUE_NAMES)."""

    images: np.ndarray
    cues: np.ndarray

    def table(self) -> pd.DataFrame:
        """One row per image: the class each cue belongs to (columns: CUE_NAMES)."""
        return pd.DataFrame({name: [CLASSES[i] for i in self.cues[:, k]] for k, name in enumerate(CUE_NAMES)})


def render_conflicts(per_class: int, size: int = 64, seed: int = 0) -> Conflicts:
    """Cue-conflict images from a seed no training, validation or probe image uses: per shape class, `per_class`
    with the texture and colour of one other class (a style, as in Geirhos et al.) and `per_class` with the texture
    of one other class and the colour of a third (the other classes drawn uniformly)."""
    rng = np.random.default_rng(seed + CONFLICT_SEED_OFFSET)
    k = len(CLASSES)
    cues = np.empty((2 * per_class * k, 3), np.int64)
    for i in range(len(cues)):
        shape = i % k
        texture, colour = rng.choice([c for c in range(k) if c != shape], 2, replace=False)
        cues[i] = shape, texture, texture if i < per_class * k else colour
    images, _ = render_cues(cues, size, seed + CONFLICT_SEED_OFFSET + 1)
    return Conflicts(images, cues)


@dataclass(frozen=True)
class CuesOptions(DataOptions):
    """Settings of the `cues` images; `stylize`: the probability that a training image gets a random style."""

    image_size: int = 64
    train_per_class: int = 500
    val_per_class: int = 100
    stylize: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_image_size(self.image_size)
        self.positive("train_per_class", "val_per_class")
        if not 0 <= self.stylize <= 1:
            raise NvError(f"stylize {self.stylize} is not a probability; use a value in [0, 1] (the share of training "
                          "images whose texture and colour are replaced)", param="stylize")

    def splits(self) -> tuple[tuple[str, int, int, float], ...]:
        """(split, images per class, seed, stylised share) per split: validation images are never stylised."""
        return (("train", self.train_per_class, self.seed, self.stylize),
                ("val", self.val_per_class, self.seed + VAL_SEED_OFFSET, 0.0))


def load_cues(options: CuesOptions) -> DataBundle:
    """The built-in `cues` dataset; train and validation are rendered from different seeds."""
    k = len(CLASSES)
    train, val = (ShapesSplit(count * k, partial(render, count * k, options.image_size, seed, stylize))
                  for _, count, seed, stylize in options.splits())
    styled = f"; in {options.stylize:.0%} of training images only the shape (texture and colour random)"
    cues = {c: cue + (styled if options.stylize else "") for c, cue in CUES.items()}
    return DataBundle(name="cues", kind="image", train=train, val=val, classes=list(CLASSES), in_channels=3,
                      mean=[0.3, 0.3, 0.3], std=[0.3, 0.3, 0.3], cues=cues, info=options.to_dict())


def make_cues(out_dir: str | Path, options: CuesOptions, *, force: bool = False) -> Path:
    """Write `cues` as PNG files in ImageFolder layout, and its cue-conflict images under conflict/ with
    conflict/conflicts.csv (`image,shape,texture,colour`: each cue's class)."""
    k = len(CLASSES)
    with dataset_output(out_dir, "cues", force=force) as out:
        for split, count, seed, stylize in options.splits():
            rendered = render(count * k, options.image_size, seed, stylize)
            _write_pngs(out, [f"{split}/{CLASSES[label]}/{i:05d}.png" for i, label in enumerate(rendered.labels)],
                        rendered.images)
        conflicts = render_conflicts(options.val_per_class, options.image_size, options.seed)
        names = [f"{i:05d}.png" for i in range(len(conflicts.images))]
        _write_pngs(out / "conflict", names, conflicts.images)
        write_csv(out / "conflict" / "conflicts.csv", pd.concat([pd.DataFrame({"image": names}), conflicts.table()],
                                                                axis=1))
    return out


def _write_pngs(root: Path, names: list[str], images: np.ndarray) -> None:
    for name, image in zip(names, images):
        save_png(root / name, image)


def write_probe(out_dir: str | Path, options: ProbeOptions) -> Path:
    """`count` probe images whose shape, texture and colour are drawn independently, each object at the scale of
    `image_size` images on a canvas `canvas` times that side, with exact masks, as a Broden probe."""
    rng = np.random.default_rng(options.seed + PROBE_SEED_OFFSET)
    cues = rng.integers(0, len(CLASSES), (options.count, 3))
    images, masks = render_cues(cues, options.side, options.seed + PROBE_SEED_OFFSET + 1, scale=1 / options.canvas)
    return write_broden(out_dir, images, CONCEPTS, masks=masks)


def make_broden(out_dir: str | Path, options: ProbeOptions, *, force: bool = False) -> Path:
    """Write the `cues` probe set in Broden's layout (a dissection's probe, read at its own side)."""
    with dataset_output(out_dir, "cues-broden", force=force) as out:
        write_probe(out, options)
    return out
