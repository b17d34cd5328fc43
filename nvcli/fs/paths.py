"""Paths that a dataset's own files name (metadata CSVs, file lists, index files): kept inside the dataset.

A metadata row is text anyone can write, so a path in one is taken only when it is relative and stays
below the folder it is relative to: an absolute path or a `..` step is refused, naming the file and row.
Symbolic links inside a dataset are followed like any file: whoever made the directory put them there
(and archive tools refuse to unpack links that point outside). A folder handed over to be judged (`nv bias`'s
cue-conflict images) is held to more: `contained_path` refuses a link that leads outside it.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..errors import NvError


def listed_path(base: Path, text: str, source: str) -> Path:
    """`base / text` for a path read from a dataset file; `source` says where it was read (file and row)."""
    value = str(text)
    parts = PurePosixPath(value).parts
    if not value or "\0" in value or value.startswith("/") or ".." in parts:
        raise NvError(f"{source} names the path {value!r}, which is not inside '{base}'; paths in a dataset's "
                      "files must be relative and stay inside the dataset (no absolute paths, no '..')")
    return base.joinpath(*parts)


def contained_path(base: Path, path: Path, source: str) -> Path:
    """`path` if it stays inside `base` when every link on the way is followed; `source` says where it was named."""
    try:
        real, root = path.resolve(), base.resolve()
    except (OSError, RuntimeError) as exc:  # a link loop
        raise NvError(f"{source} names '{path}', which cannot be followed ({type(exc).__name__})") from exc
    if not real.is_relative_to(root):
        raise NvError(f"{source} names '{path}', which leads through a link to '{real}', outside '{base}'; the files "
                      "of this folder must be inside it")
    return path


def require_dir(path: Path, what: str) -> Path:
    """`path` if it is a directory, else an NvError naming it as `what`."""
    if not path.is_dir():
        raise NvError(f"{what} '{path}' is not a directory")
    return path
