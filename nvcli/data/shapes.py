"""`shapes`: a built-in image dataset whose classes are defined by known mechanisms.

Every image is one object on a dark, low-saturation noisy background. Nine classes, three per cue:
- colour classes (red, green, blue): a solid object in that saturated colour; shape random;
- texture classes (chequered, striped, dotted): the object is filled with that pattern in two
  neutral colours; shape random;
- shape classes (circle, square, triangle): a solid object in one neutral colour.
Neutral colours (two light, two mid) are unsaturated. In half of the shape- and texture-class training
images one colour channel is removed (from the whole image), so colour carries no information about those
classes. Validation images keep every channel, so zeroing one channel of a shape or texture validation
image gives exactly an image of the training distribution, while it erases a colour class's cue.
Position, size, rotation, pattern period and orientation, and the background are random.
Every image comes with pixel-exact concept masks for three categories: color, texture and object.
World 1 (runs made before world 2 existed record it) has smaller objects, finer patterns and validation
images that lose a channel as training images do.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import NvError
from .broden import write_broden
from .output import dataset_output
from .registry import DataBundle, DataOptions

COLOUR_CLASSES = ("red", "green", "blue")
TEXTURE_CLASSES = ("chequered", "striped", "dotted")
SHAPE_CLASSES = ("circle", "square", "triangle")
CLASSES = COLOUR_CLASSES + TEXTURE_CLASSES + SHAPE_CLASSES
CUES = {
    **{c: f"colour: a solid {c} object, any shape" for c in COLOUR_CLASSES},
    **{t: f"texture: the object is {t} in neutral colours, any shape" for t in TEXTURE_CLASSES},
    **{s: f"shape: a solid {s} in a neutral colour" for s in SHAPE_CLASSES},
}
PURE = {"red": (220, 25, 25), "green": (25, 200, 25), "blue": (30, 30, 225)}
LIGHT = {"white": (235, 235, 235), "beige": (225, 205, 165)}
MID = {"grey": (135, 135, 135), "steel": (115, 135, 175)}
NEUTRAL = {**LIGHT, **MID}
# A neutral colour with one channel removed is named after what remains (white without red is cyan).
DROPPED = ("cyan", "magenta", "yellow")
DROP_SHARE = 0.5  # of the shape- and texture-class images that lose one channel (training; world 1: both splits)
COLOURS = ("dark",) + tuple(PURE) + tuple(NEUTRAL) + DROPPED
TEXTURES = ("solid",) + TEXTURE_CLASSES
SHAPES = SHAPE_CLASSES
VAL_SEED_OFFSET = 1_000_003  # validation images come from their own seed, never from training's
PROBE_SEED_OFFSET = 2_000_029  # probe images are never training or validation images
# Concept vocabulary per category, as written to a Broden-format probe set (0 = unlabelled).
CONCEPTS = {"color": COLOURS, "texture": TEXTURES, "object": SHAPES}


@dataclass(frozen=True)
class World:
    """One version of the world's geometry, as fractions of the image side: the object's radius and the pattern's
    cell (a stripe's width, a chequer square's side, the spacing of dots)."""

    radius: tuple[float, float]
    cell: tuple[float, float]
    val_drop_share: float  # DROP_SHARE for validation images


# World 2 makes objects large and patterns coarse enough that AlexNet's stride-4 first convolution
# resolves them at 64 px (a cell >= 7.6 px, about two strides).
WORLDS = {1: World((0.22, 0.34), (0.07, 0.11), DROP_SHARE), 2: World((0.28, 0.40), (0.12, 0.17), 0.0)}
WORLD = 2
MIN_CELL = 4.0  # pixels


@dataclass
class Rendered:
    """Images (uint8 [N, H, W, 3]), labels, and per-category concept masks (int [N, H, W], 1-based, 0 = none)."""

    images: np.ndarray
    labels: np.ndarray
    masks: dict[str, np.ndarray]


def _shape_mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy**2 + dx**2 <= r**2
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    if shape == "square":
        half = r * 0.85
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # Equilateral triangle inscribed in radius r: inside all three half-planes.
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        a = angle + np.pi / 2 + k * 2 * np.pi / 3
        inside &= (np.cos(a) * dx + np.sin(a) * dy) <= r / 2
    return inside


def _texture_mask(texture: str, yy: np.ndarray, xx: np.ndarray, period: float, angle: float) -> np.ndarray:
    """True where the pattern shows its second colour."""
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * xx + sin * yy, -sin * xx + cos * yy
    if texture == "striped":
        return np.floor(u / period) % 2 == 1
    if texture == "chequered":
        return (np.floor(u / period) + np.floor(v / period)) % 2 == 1
    # dotted: a disc in every period cell
    cu, cv = (u / period) % 1 - 0.5, (v / period) % 1 - 0.5
    return cu**2 + cv**2 <= 0.28**2


def render(n: int, size: int = 64, seed: int = 0, world: World = WORLDS[WORLD],
           drop_share: float = DROP_SHARE) -> Rendered:
    """Render `n` images with balanced classes, deterministically from `seed`; `drop_share` of the shape and
    texture images lose one channel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = {cat: np.zeros((n, size, size), np.int32) for cat in CONCEPTS}
    neutral = list(NEUTRAL)
    for i, label in enumerate(labels):
        name = CLASSES[label]
        shape = name if name in SHAPE_CLASSES else SHAPES[rng.integers(len(SHAPES))]
        texture = name if name in TEXTURE_CLASSES else "solid"
        if name in COLOUR_CLASSES:
            first = second = name
        elif texture == "solid":
            first = second = neutral[rng.integers(len(neutral))]
        else:  # a light and a mid colour, so the pattern has contrast
            first, second = rng.choice(list(LIGHT)), rng.choice(list(MID))
        grey = rng.uniform(15, 60)
        background = grey + rng.normal(0, 8, (size, size, 1)) + rng.uniform(-6, 6, 3)
        image = background
        r = size * rng.uniform(*world.radius)
        cy, cx = rng.uniform(r + 1, size - r - 1, 2)
        obj = _shape_mask(shape, yy, xx, cy, cx, r, rng.uniform(0, 2 * np.pi))
        alt = np.zeros_like(obj) if texture == "solid" else _texture_mask(
            texture, yy, xx, max(MIN_CELL, size * rng.uniform(*world.cell)), rng.uniform(0, np.pi))
        palette = {**PURE, **NEUTRAL}
        jitter = rng.uniform(-15, 15, 3)
        fill = np.where(alt[..., None], np.add(palette[second], jitter), np.add(palette[first], jitter))
        image = np.where(obj[..., None], fill + rng.normal(0, 4, (size, size, 1)), image)
        if name not in COLOUR_CLASSES and rng.random() < drop_share:
            # Colour must carry no information about shape and texture classes, so they also appear
            # with a colour channel removed: exactly what a channel perturbation does to them.
            dropped = int(rng.integers(3))
            image[..., dropped] = 0
            first = second = DROPPED[dropped]
        images[i] = np.clip(image, 0, 255).astype(np.uint8)
        colour_ids = np.where(alt, COLOURS.index(second) + 1, COLOURS.index(first) + 1)
        masks["color"][i] = np.where(obj, colour_ids, COLOURS.index("dark") + 1)
        masks["texture"][i] = np.where(obj, TEXTURES.index(texture) + 1, 0)
        masks["object"][i] = np.where(obj, SHAPES.index(shape) + 1, 0)
    return Rendered(images, labels, masks)


class ShapesSplit(Dataset):
    """One split of a rendered world (`shapes`, `cues`): samples `(float image [3, H, W] in [0, 1], label)`,
    rendered on first use by `renderer()` (a `functools.partial` of the world's `render`, so workers can pickle it).

    Rendering waits for the first access, so a command that reads only the validation split never
    renders the training split.
    """

    def __init__(self, count: int, renderer: Callable[[], Rendered]) -> None:
        self.count, self.renderer = count, renderer

    @cached_property
    def _arrays(self) -> tuple[torch.Tensor, torch.Tensor]:
        rendered = self.renderer()
        return (torch.from_numpy(rendered.images).permute(0, 3, 1, 2).contiguous(),
                torch.from_numpy(rendered.labels.astype(np.int64)))

    @property
    def labels(self) -> torch.Tensor:
        return self._arrays[1]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        images, labels = self._arrays
        return images[i].float().div_(255), int(labels[i])


@dataclass(frozen=True)
class ShapesOptions(DataOptions):
    """Settings of the `shapes` images."""

    image_size: int = 64
    train_per_class: int = 500
    val_per_class: int = 100
    world: int = WORLD  # the version of the geometry (WORLDS)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_image_size(self.image_size)
        self.positive("train_per_class", "val_per_class")
        if self.world not in WORLDS:
            raise NvError(f"shapes world {self.world!r} is not valid; use {' or '.join(map(str, WORLDS))}")

    def splits(self) -> tuple[tuple[str, int, int, float], ...]:
        """(split, images per class, seed, share of shape/texture images without a channel) per split."""
        world = WORLDS[self.world]
        return (("train", self.train_per_class, self.seed, DROP_SHARE),
                ("val", self.val_per_class, self.seed + VAL_SEED_OFFSET, world.val_drop_share))


def load_shapes(options: ShapesOptions) -> DataBundle:
    """The synthetic `shapes` dataset; train and validation are rendered from different seeds."""
    k, world = len(CLASSES), WORLDS[options.world]
    train, val = (ShapesSplit(count * k, partial(render, count * k, options.image_size, seed, world, drop_share=drop))
                  for _, count, seed, drop in options.splits())
    return DataBundle(
        name="shapes", kind="image", train=train, val=val,
        classes=list(CLASSES), in_channels=3, mean=[0.3, 0.3, 0.3], std=[0.3, 0.3, 0.3], cues=dict(CUES),
        info=options.to_dict(),
    )


def make_shapes(out_dir: str | Path, options: ShapesOptions, *, force: bool = False) -> Path:
    """Write the `shapes` dataset as PNG files in ImageFolder layout (what dataset `imagefolder` reads)."""
    from .imagefile import save_png

    k = len(CLASSES)
    with dataset_output(out_dir, "shapes", force=force) as out:
        for split, count, seed, drop in options.splits():
            rendered = render(count * k, options.image_size, seed, WORLDS[options.world], drop)
            for i, (image, label) in enumerate(zip(rendered.images, rendered.labels)):
                save_png(out / split / CLASSES[label] / f"{i:05d}.png", image)
    return out


@dataclass(frozen=True)
class ProbeOptions(DataOptions):
    """Settings of the built-in Broden probe set: `count` objects at the scale of `image_size` images, each on a
    canvas `canvas` times that side."""

    image_size: int = 64
    count: int = 300
    canvas: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_image_size(self.image_size)
        self.positive("count")
        if not 1 <= self.canvas <= 4:
            raise NvError(f"option canvas={self.canvas} is out of range; use a factor in [1, 4] of the image side")

    @property
    def side(self) -> int:
        """The probe images' side in pixels."""
        return int(round(self.canvas * self.image_size))


def _on_canvas(rendered: Rendered, side: int, rng: np.random.Generator) -> Rendered:
    """Each image and its masks placed at a random position on a `side`-pixel canvas of the image's own background.

    Network Dissection marks a unit active on a fixed share of all probe pixels (0.5% by default), so a
    concept can only be matched if it covers a small share of them, as Broden's concepts do; an object of
    the training scale alone on a larger canvas keeps every unit's input in distribution while its masks
    cover a quarter of the pixels they would on the image alone (canvas 2).
    """
    n, size = rendered.images.shape[:2]
    images = np.empty((n, side, side, 3), np.uint8)
    masks = {cat: np.zeros((n, side, side), np.int32) for cat in rendered.masks}
    dark = COLOURS.index("dark") + 1
    for i in range(n):
        background = rendered.images[i][rendered.masks["object"][i] == 0].astype(np.float64)  # [pixels, 3]
        spread = background.std(0)  # a removed channel stays zero
        noise = rng.normal(0, spread.max(), (side, side, 1)) * (spread > 0)
        images[i] = np.clip(background.mean(0) + noise, 0, 255).astype(np.uint8)
        y, x = rng.integers(0, side - size + 1, 2)
        images[i, y:y + size, x:x + size] = rendered.images[i]
        for cat, mask in masks.items():
            if cat == "color":
                mask[i] = dark
            mask[i, y:y + size, x:x + size] = rendered.masks[cat][i]
    return Rendered(images, rendered.labels, masks)


def write_probe(out_dir: str | Path, options: ProbeOptions) -> Path:
    """`count` shapes images, never used for training or validation, on their canvas with exact masks, as a Broden
    probe."""
    seed = options.seed + PROBE_SEED_OFFSET
    rendered = _on_canvas(render(options.count, options.image_size, seed), options.side, np.random.default_rng(seed))
    return write_broden(out_dir, rendered.images, CONCEPTS, masks=rendered.masks)


def make_broden(out_dir: str | Path, options: ProbeOptions, *, force: bool = False) -> Path:
    """Write the built-in probe set in Broden's layout (what concept dissection reads as its probe)."""
    with dataset_output(out_dir, "broden", force=force) as out:
        write_probe(out, options)
    return out
