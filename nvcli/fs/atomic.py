"""Atomic file writes (a reader sees the old complete file or the new complete file, never a torn one) and the
safe read of a torch file that pairs with `save_torch`."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import NvError
from .pids import pid_alive

if TYPE_CHECKING:
    import pandas as pd

_FULL = 1 << 20  # less free space than this: a failed write is blamed on a full disk


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it, which is process-global


def write_error(path: Path, exc: BaseException) -> NvError:
    """The one-line error for a file that could not be written (a full disk says so)."""
    reason = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    try:
        full = shutil.disk_usage(path.parent).free < _FULL
    except OSError:
        full = False
    if full and "space" not in reason.lower():
        reason = f"{reason}; the disk is full"
    return NvError(f"cannot write '{path}': {reason} (any earlier version of it is kept)")


_TMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]{8}\.tmp$")  # `.<name>.<pid>.<random>.tmp`, as atomic_path names them
_swept: set[Path] = set()  # folders whose leftovers this process has removed


def _sweep(folder: Path) -> None:
    """Remove, once per process and folder, the temporary files of atomic writes whose process was killed."""
    if folder in _swept:
        return
    _swept.add(folder)
    for old in folder.glob(".*.tmp"):
        found = _TMP.match(old.name)
        if found and not pid_alive(int(found.group(1))) and old.is_file() and not old.is_symlink():
            old.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    A failure to write (a read-only directory, a full disk) is an NvError naming the file; the old file
    stays as it was and the temporary one is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:
            pass


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's writer reports a failed write ("unexpected pos", ENOSPC) this way
            raise write_error(Path(path), exc) from exc


def load_torch(path: str | os.PathLike, failure: str) -> Any:
    """torch.load with weights_only=True (no code runs); an unreadable file raises NvError(`failure` + the reason)."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles; the error says it in one line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or objects that weights_only refuses: all "not ours"
        reason = f"{type(exc).__name__}: {first_sentence(str(exc))}"
        if "weights_only" in str(exc) or "Weights only" in str(exc):  # torch's advice to load unsafely: never give it
            reason = "it is damaged or holds more than tensors, and nv loads nothing else, so no code in it can run"
        raise NvError(f"{failure} ({reason})") from exc


def first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of `text`'s first line, without its full stop (cut at a word, with '...', past `limit`)."""
    line = (text.strip().splitlines() or [""])[0]
    sentence = re.split(r"(?<=[^.\s][.!?])\s", line, maxsplit=1)[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0] + " ..."


def save_figure(path: str | os.PathLike, fig: Any, dpi: int = 120) -> None:
    """Save a matplotlib Figure as PNG atomically (no pyplot: the caller's backend is never touched)."""
    # A figure with a layout engine (constrained layout) already fits its canvas; measuring a tight box
    # would draw it twice, which is a fifth of a figure's cost.
    tight = {} if fig.get_layout_engine() is not None else {"bbox_inches": "tight"}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, **tight)
