"""Closed 3-D solids as surface samples with outward normals, and the built-in classes' solids."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ...errors import choice_error

_EPS = 1e-6
SOLIDS = ("cone", "cube", "cube_pocket", "cylinder", "cylinder_notch", "sphere")


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
    raise choice_error("solid", name, SOLIDS)
