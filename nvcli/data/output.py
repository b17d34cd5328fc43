"""Where `nv data make` writes: a new or empty directory, or with `force` one that nv wrote before.

Every writer's directory holds `.nv-dataset.json`, the list of files nv wrote there; `force` removes
exactly those before writing again, so files a user put there themselves are never deleted.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import NvError
from ..fs.atomic import write_json

MANIFEST = ".nv-dataset.json"


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST}


def _previous(root: Path) -> list[str] | None:
    """The files nv wrote into `root` before; for an interrupted write, all but those that were there first."""
    path = root / MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("complete", True):
            return [str(f) for f in manifest["files"]]
        return sorted(_files(root) - {str(f) for f in manifest["kept"]})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NvError(f"force removes nothing from out '{root}': '{path}' is damaged ({type(exc).__name__}), so nv "
                      "cannot tell which files it wrote there; repair or remove that file, or choose another directory",
                      param=("force", "out")) from exc


def _remove(root: Path, names: list[str]) -> None:
    real = root.resolve()
    emptied = set()
    for name in names:
        path = root / name
        # Only files nv listed, and only inside the output directory.
        if path.is_file() and not path.is_symlink() and real in path.resolve().parents:
            path.unlink()
            emptied.update(p for p in path.parents if real in p.resolve().parents)
    for folder in sorted(emptied, key=lambda p: -len(p.parts)):  # folders that held nv's files, deepest first
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


@contextmanager
def dataset_output(out_dir: str | os.PathLike, dataset: str, *, force: bool = False) -> Iterator[Path]:
    """The directory to write dataset `dataset` into; the files written are recorded as nv's on success."""
    root = Path(out_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise NvError(f"output '{root}' exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not force:
            raise NvError(f"out '{root}' exists and is not empty; pass force to replace a dataset nv wrote there, "
                          "or choose another directory", param=("out", "force"))
        previous = _previous(root)
        if previous is None:
            raise NvError(f"out '{root}' was not written by nv (it has no {MANIFEST}); force only "
                          "replaces what nv wrote, so choose an empty or new directory", param=("out", "force"))
        _remove(root, previous)
    try:
        root.mkdir(parents=True, exist_ok=True)
        before = _files(root)
        # Claimed before the first file, with what was there already: an interrupted writer's files are known.
        write_json(root / MANIFEST, {"dataset": dataset, "complete": False, "files": [], "kept": sorted(before)})
    except OSError as exc:
        raise NvError(f"cannot write to output directory '{root}': {exc.strerror}") from exc
    yield root
    write_json(root / MANIFEST, {"dataset": dataset, "complete": True, "files": sorted(_files(root) - before)})
