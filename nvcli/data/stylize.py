"""`nv data stylize`: a stylised copy of an image tree by a training-free style transfer (paper case study 2 on the
user's own images), and the record of which style made which image.

Each output image keeps its content image's structure (the phase of its Fourier transform and the amplitude of all
but the lowest frequencies) and takes a style image's
- low-frequency amplitude: the centred `beta` window of the amplitude spectrum is swapped for the style's (FDA:
  Yang & Soatto, "FDA: Fourier Domain Adaptation for Semantic Segmentation", CVPR 2020), and
- colour statistics: each channel of the decorrelated l-alpha-beta space gets the style's mean and standard deviation
  (Reinhard, Ashikhmin, Gooch & Shirley, "Color Transfer between Images", IEEE CG&A 2001).
No network and no download is needed. An image's class is its parent folder's name; a style's class is the name of
the folder below the styles root that holds it (none for a style directly in the root), so a content image of class
a with a style of class b is a cue-conflict image (what `nv bias` reads from a folder).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import NvError
from ..fs.atomic import write_csv
from .imagefile import read_rgb, save_png
from .output import dataset_output
from .registry import StylizeOptions

LISTING = "stylize.csv"  # image, content, style, shape, texture: one row per output image
COLUMNS = ["image", "content", "style", "shape", "texture"]
# RGB -> LMS cone space, and log LMS -> l-alpha-beta (Reinhard et al. 2001, eqs. 1-4).
RGB_TO_LMS = np.array([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]])
LMS_TO_LAB = np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)]) @ np.array([[1, 1, 1], [1, 1, -2], [1, -1, 0]])
EPSILON = 1 / 255  # keeps log(LMS) finite on black pixels


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(rgb @ RGB_TO_LMS.T, EPSILON)) @ LMS_TO_LAB.T


def _from_lab(lab: np.ndarray) -> np.ndarray:
    return np.exp(lab @ np.linalg.inv(LMS_TO_LAB).T) @ np.linalg.inv(RGB_TO_LMS).T


def match_colours(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """`content` (float RGB in [0, 1], [H, W, 3]) with each l-alpha-beta channel's mean and std set to the style's."""
    c, s = _to_lab(content), _to_lab(style)
    mean_c, std_c = c.mean((0, 1)), c.std((0, 1))
    out = (c - mean_c) * (s.std((0, 1)) / np.maximum(std_c, 1e-6)) + s.mean((0, 1))
    return np.clip(_from_lab(out), 0, 1)


def swap_low_frequencies(content: np.ndarray, style: np.ndarray, beta: float) -> np.ndarray:
    """`content` with the amplitude of its lowest frequencies (a centred window of half-side beta x the image's
    shorter side) taken from `style` (same shape), its phase kept (FDA)."""
    f_c, f_s = (np.fft.fftshift(np.fft.fft2(x, axes=(0, 1)), axes=(0, 1)) for x in (content, style))
    amplitude, phase = np.abs(f_c), np.angle(f_c)
    h, w = content.shape[:2]
    b = max(1, int(np.floor(min(h, w) * beta)))
    cy, cx = h // 2, w // 2
    window = (slice(cy - b, cy + b + 1), slice(cx - b, cx + b + 1))
    amplitude[window] = np.abs(f_s)[window]
    mixed = np.fft.ifft2(np.fft.ifftshift(amplitude * np.exp(1j * phase), axes=(0, 1)), axes=(0, 1))
    return np.clip(mixed.real, 0, 1)


def stylize_image(content: np.ndarray, style: np.ndarray, beta: float = StylizeOptions.beta) -> np.ndarray:
    """One stylised image: uint8 RGB content and style (any sizes) -> uint8 RGB of the content's size."""
    from PIL import Image

    h, w = content.shape[:2]
    resized = np.asarray(Image.fromarray(style).resize((w, h), Image.Resampling.BICUBIC), np.float64) / 255
    mixed = swap_low_frequencies(content.astype(np.float64) / 255, resized, beta)
    return (match_colours(mixed, resized) * 255).round().astype(np.uint8)


def _images(root: Path) -> list[Path]:
    from .images import IMAGE_SUFFIXES

    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _check_dirs(data_dir: Path, styles: Path, out: Path) -> None:
    """Refuse a missing input, and an output that lies in or holds an input (a user's files are never replaced)."""
    for what, path in (("data_dir", data_dir), ("styles", styles)):
        if not path.is_dir():
            raise NvError(f"{what} '{path}' is not a directory", param=what)
    target = out.resolve()
    for what, path in (("data_dir", data_dir), ("styles", styles)):
        real = path.resolve()
        if target == real or target.is_relative_to(real) or real.is_relative_to(target):
            raise NvError(f"out '{out}' lies in or holds {what} '{path}'; write the stylised copy elsewhere",
                          param=("out", what))


def _class_of(path: Path, root: Path) -> str:
    """A style's class: the first folder below `root` on its path ('' for a file directly in `root`)."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else ""


def stylize_tree(data_dir: str | Path, styles: str | Path, out: str | Path, options: StylizeOptions = StylizeOptions(),
                 *, force: bool = False) -> pd.DataFrame:
    """Write a stylised copy of every image under `data_dir` into `out` (same relative folders, PNG, `per_image`
    styles drawn from `styles` each), and `out/stylize.csv`; returns that table (columns: COLUMNS).

    `out` must be new or empty (with `force`: a folder this function wrote, whose files alone are replaced) and may
    neither lie in nor hold `data_dir` or `styles`.
    """
    data_dir, styles, out = (Path(p).expanduser() for p in (data_dir, styles, out))
    _check_dirs(data_dir, styles, out)
    contents, style_files = _images(data_dir), _images(styles)
    for what, found, path in (("data_dir", contents, data_dir), ("styles", style_files, styles)):
        if not found:
            raise NvError(f"{what} '{path}' holds no image files", param=what)
    rng = np.random.default_rng(options.seed)
    rows, taken = [], set()
    with dataset_output(out, "stylize", force=force) as root:
        for content_path in contents:
            content = np.asarray(read_rgb(content_path, param="data_dir"))
            relative = content_path.relative_to(data_dir)
            for k in rng.choice(len(style_files), options.per_image, replace=len(style_files) < options.per_image):
                style_path = style_files[k]
                image = stylize_image(content, np.asarray(read_rgb(style_path, param="styles")), options.beta)
                name = relative.with_name(f"{relative.stem}__{style_path.stem}.png")
                if name.as_posix() in taken:  # the same style name drawn twice, or a content image in two formats
                    name = name.with_name(f"{name.stem}_{len(rows)}.png")
                taken.add(name.as_posix())
                save_png(root / name, image)
                rows.append({"image": name.as_posix(), "content": relative.as_posix(),
                             "style": style_path.relative_to(styles).as_posix(),
                             "shape": relative.parent.name, "texture": _class_of(style_path, styles)})
        frame = pd.DataFrame(rows, columns=COLUMNS)
        write_csv(root / LISTING, frame)
    return frame
