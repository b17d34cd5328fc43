"""Atomic file writes: a reader sees the old complete file or the new complete file, never a torn one."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import pandas as pd


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it, which is process-global


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON (indented, sorted keys) atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | os.PathLike, frame: "pd.DataFrame") -> None:
    """Write a DataFrame as CSV without its index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save atomically (checkpoints, state_dicts)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_figure(path: str | os.PathLike, fig: Any, dpi: int = 120) -> None:
    """Save a matplotlib Figure as PNG atomically (no pyplot: the caller's backend is never touched)."""
    # A figure with a layout engine (constrained layout) already fits its canvas; measuring a tight box
    # would draw it twice, which is a fifth of a figure's cost.
    tight = {} if fig.get_layout_engine() is not None else {"bbox_inches": "tight"}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, **tight)
