"""Grey-on-black renders of solids from a ring of cameras (MVCNN's 12 views at 30 degrees elevation)."""
from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from typing import Sequence

import numpy as np

from ...errors import NvError
from .geometry import SOLIDS, solid

RENDERED_VIEWS = 12
ELEVATION = 30.0  # degrees above the horizon, as in MVCNN's 12-view setup
EXTENT = 1.1  # half-width of the orthographic view, in object units


def azimuths(views: int = RENDERED_VIEWS) -> list[float]:
    """The azimuths (degrees) of `views` views taken evenly from the 12 rendered ones."""
    return [(n - 1) * 360.0 / RENDERED_VIEWS for n in view_numbers(views, RENDERED_VIEWS)]


def view_numbers(views: int, available: int) -> list[int]:
    """The 1-based view numbers `views` evenly spaced views use out of `available` (1, 1 + stride, ...)."""
    if views < 1 or available % views:
        valid = [str(d) for d in range(1, available + 1) if available % d == 0]
        raise NvError(f"views {views} does not divide the {available} rendered views evenly; "
                      f"valid: {', '.join(valid)}", param="views")
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
    labels = np.repeat(np.arange(len(SOLIDS)), per_class)
    images = np.empty((len(labels), len(az), size, size), np.uint8)
    for i, label in enumerate(labels):
        images[i] = render_object(SOLIDS[label], az, size, rng)
    return images, labels


@lru_cache(maxsize=1)
def _nominal(size: int = 64) -> dict[str, np.ndarray]:
    return {name: render_object(name, azimuths(), size).astype(np.int16) for name in SOLIDS}


def separating_views(views: int = RENDERED_VIEWS, min_fraction: float = 0.005) -> dict[tuple[str, str], list[int]]:
    """Ground truth: for every pair of classes, the view indices (0-based among `views`) that tell them apart.

    A view separates a pair when the pair's nominal renders differ by over 10% grey in more than
    `min_fraction` of the pixels; with `min_fraction=0`, the complement is the views that show no difference.
    """
    numbers = view_numbers(views, RENDERED_VIEWS)
    images = _nominal()
    truth = {}
    for a, b in combinations(SOLIDS, 2):
        differ = (np.abs(images[a] - images[b]) > 25).mean(axis=(1, 2)) > min_fraction
        truth[(a, b)] = [i for i, n in enumerate(numbers) if differ[n - 1]]
    return truth
