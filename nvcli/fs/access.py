"""Every read, write and removal of a file inside a run directory goes through here: a run directory is untrusted
input (people copy it, unpack it from archives, share it), so nothing inside it is followed or opened unless it is a
plain file or folder.

Below the run directory itself, no part of a path may be a symbolic link, a FIFO, a device or a socket; such a path
is refused with an `NvError` naming it, before anything is read, written or removed. The run directory may itself be
reached through a link (`runs/latest`, which nv makes, or a path the user typed): only what lies inside it is
untrusted. Removal takes only plain files, never through a link.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ..errors import NvError

if TYPE_CHECKING:
    import pandas as pd

_ODD = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def odd_kind(mode: int) -> str | None:
    """What a file of mode `mode` is when neither a plain file nor a folder ('a symbolic link', ...), else None."""
    return next((what for test, what in _ODD if test(mode)), None)


def refusal(path: Path, what: str) -> NvError:
    """The error for a path inside a run directory that nv will not follow or open."""
    return NvError(f"'{path}' is {what}; nv never reads, writes or removes through one inside a run directory "
                   "(replace it with the real file or folder, or remove it)")


def inside(run_dir: str | os.PathLike, name: str | os.PathLike) -> Path:
    """`run_dir/name` after checking that `name` stays inside and that no existing part of it is a link, FIFO,
    device or socket (the parts that do not exist yet are what a writer will create)."""
    root = Path(run_dir)
    rel = PurePosixPath(Path(name).as_posix())
    if rel.is_absolute() or ".." in rel.parts:
        raise NvError(f"'{name}' is not a file name inside run '{root}'")
    path = root
    for part in rel.parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            break
        except OSError as exc:
            raise NvError(f"cannot read '{path}': {exc.strerror}") from exc
        if (what := odd_kind(mode)) is not None:
            raise refusal(path, what)
    return root.joinpath(*rel.parts)


def is_file(run_dir: str | os.PathLike, name: str | os.PathLike) -> bool:
    """Whether `run_dir/name` is a plain file (a link, FIFO or device there is refused, not skipped)."""
    return inside(run_dir, name).is_file()


def _open(path: Path) -> int:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise NvError(f"cannot read '{path}': {exc.strerror}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # swapped in after `inside` looked
        os.close(fd)
        raise refusal(path, odd_kind(mode) or "not a plain file")
    return fd


def read_bytes(run_dir: str | os.PathLike, name: str | os.PathLike) -> bytes:
    """The bytes of the plain file `run_dir/name`."""
    return _read(inside(run_dir, name))


def _read(path: Path) -> bytes:
    with os.fdopen(_open(path), "rb") as f:
        return f.read()


def read_text(run_dir: str | os.PathLike, name: str | os.PathLike) -> str:
    """The UTF-8 text of the plain file `run_dir/name`; other bytes are an NvError naming the file."""
    path = inside(run_dir, name)
    data = _read(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NvError(f"'{path}' is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); nv wrote it "
                      "as UTF-8, so it was changed or damaged: remove it or redo the command that wrote it") from exc


def read_csv(run_dir: str | os.PathLike, name: str | os.PathLike) -> "pd.DataFrame":
    """The table `run_dir/name` (empty cells read as empty strings); a damaged one is an NvError naming it."""
    import io

    import pandas as pd

    text = read_text(run_dir, name)
    try:
        return pd.read_csv(io.StringIO(text), keep_default_na=False)
    except (ValueError, pd.errors.EmptyDataError) as exc:  # pandas' parser errors are ValueErrors
        raise NvError(f"'{Path(run_dir) / name}' is not a readable CSV table ({str(exc).strip().splitlines()[0]}); "
                      "remove it or redo the command that wrote it") from exc


def remove(run_dir: str | os.PathLike, name: str | os.PathLike) -> bool:
    """Remove the plain file `run_dir/name` (never through a link); True if one was removed."""
    path = inside(run_dir, name)
    if not path.is_file():
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise NvError(f"cannot remove '{path}': {exc.strerror}") from exc
    return True
