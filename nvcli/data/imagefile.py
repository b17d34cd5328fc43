"""Reading one image file: a pixel limit checked before decoding, high bit depths scaled by their range, and
a one-line reason for every file that cannot be read; and writing one (PNG, atomically).

Every image nv reads from disk (dataset trees, ModelNet views, Broden probes, an image to explain)
goes through `image_file`, so an oversize, damaged or unusual file gives the same clear error
everywhere, in the main process and in DataLoader workers alike.
"""
from __future__ import annotations

import os
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from ..errors import NvError, describe
from ..fs.atomic import atomic_path

MAX_PIXELS_VAR = "NV_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own warning limit (about 9459 x 9459), above which it suspects a bomb
HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # Pillow modes with more than 8 bits per pixel


def pixel_limit() -> int:
    """The most pixels an image may have: NV_MAX_IMAGE_PIXELS, else Pillow's warning limit."""
    text = os.environ.get(MAX_PIXELS_VAR)
    if text is None:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit < 1:
        raise NvError(f"{MAX_PIXELS_VAR}={text!r} is not valid; give a positive number of pixels")
    # Pillow refuses images above twice its own limit by itself; a higher limit the user set must win.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, limit)
    return limit


@contextmanager
def image_file(path: str | os.PathLike, what: str = "image", param: str | None = None) -> Iterator[Image.Image]:
    """Image file `path`, opened (not yet decoded) and checked against the pixel limit; NvError names the problem.

    Decoding errors inside the `with` block (a truncated file, a bad chunk) are reported the same way. With `param`
    (the caller's parameter that named the file), messages name that parameter instead of `what`.
    """
    limit = pixel_limit()
    what, named = param or what, param or ()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end
            raise NvError(f"{what} '{path}' is not a regular file", param=named)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below says it in one line
            with Image.open(path) as image:
                width, height = image.size
                if width * height > limit:
                    raise NvError(f"{what} '{path}' is {width}x{height} pixels, more than the limit of {limit:,}; "
                                  f"shrink it, or raise the limit with {MAX_PIXELS_VAR}=N", param=named)
                yield image
    except Image.DecompressionBombError as exc:
        raise NvError(f"{what} '{path}' is too large to decode safely ({exc}); shrink it, or raise the limit with "
                      f"{MAX_PIXELS_VAR}=N", param=named) from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:  # Pillow's decoders raise all of these
        raise NvError(f"cannot decode {what} '{path}' ({describe(exc)})", param=named) from exc


def _full_scale(array: np.ndarray, mode: str) -> tuple[float, float]:
    """The value range that maps to black..white: the bit depth's, else the image's own."""
    if mode.startswith("I;16"):
        return 0.0, 65535.0
    low, high = float(array.min()), float(array.max())
    if mode == "F" and low >= 0 and high <= 1:
        return 0.0, 1.0
    if mode == "I" and low >= 0 and high <= 65535:  # 16-bit data (PNG, TIFF) read as 32-bit integers
        return 0.0, 65535.0
    return low, max(high, low + 1e-12)


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of `image`; greyscale of more than 8 bits is scaled by its range, not clipped at 255."""
    if image.mode in HIGH_DEPTH:
        array = np.asarray(image, dtype=np.float64)
        low, high = _full_scale(array, image.mode)
        grey = np.clip(np.round((array - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")


def read_rgb(path: str | os.PathLike, what: str = "image", param: str | None = None) -> Image.Image:
    """Image file `path` as 8-bit RGB (see `to_rgb`); NvError names a file that cannot be read and why."""
    with image_file(Path(path), what, param) as image:
        return to_rgb(image)


def save_png(path: Path, image: np.ndarray) -> None:
    """Write a uint8 RGB image as PNG atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
