"""What a saved result was made from, recorded by the one saver and checked by every reader.

A result's record in results.json holds two sets of digests, in one shape for every kind of result:
- `made_from`: what the result was computed from, as {source: digest}. A source is a file of the run
  (`model.pt`, `heads/<name>.pt`), a split of the run's data (`data/val`: `split_fingerprint`), or another run's
  weights (`<run dir>/model.pt`, an absolute path: nv compare).
- `digests`: the SHA-256 of every file the result wrote, as saved.
A reader recomputes both (`stale_reasons`): a result whose sources or files changed since it was saved no longer
describes the run, and is refused or shown as stale, never as current.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..errors import NvError
from ..fs import access
from ..fs.digest import file_sha256
from . import files

if TYPE_CHECKING:
    from .run import Run

DATA = "data/"  # sources that are splits of the run's data: data/train, data/val
SPLITS = ("train", "val")


def state_digest(state: Mapping[str, Any]) -> str:
    """The SHA-256 of a state_dict's tensors (names, dtypes, shapes and values): equal for a model in memory and the
    model.pt it was saved as, whatever the file's own bytes."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def head_source(head: str) -> str:
    """The run file a head's weights live in: model.pt for the dense head, heads/<name>.pt for a sparse one."""
    return files.MODEL if files.is_dense(head) else files.SPARSE_HEAD.name(name=head)


def made_from(run: "Run", *, head: str = files.DENSE_HEAD, splits: Iterable[str] = (),
              others: Iterable[tuple["Run", str]] = ()) -> dict[str, str]:
    """The sources of a result computed from `run`'s weights with `head`, the data `splits` it read, and the weights
    of `others` (runs it was compared with, each with its head), each with its digest now."""
    sources = {files.MODEL: run.sha256(files.MODEL)}
    if not files.is_dense(head):
        sources[head_source(head)] = run.sha256(head_source(head))
    for split in splits:
        sources[DATA + split] = _data_fingerprint(run, split)
    for other, other_head in others:
        sources[str(other.dir / files.MODEL)] = other.sha256(files.MODEL)
        if not files.is_dense(other_head):
            sources[str(other.dir / head_source(other_head))] = other.sha256(head_source(other_head))
    return sources


def _data_fingerprint(run: "Run", split: str) -> str:
    from ..data.registry import split_fingerprint

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    return split_fingerprint(getattr(run.data(), split))


def _source_now(run: "Run", source: str) -> str | None:
    """The digest of `source` now; None when it no longer exists. Raises NvError when it cannot be read."""
    if source.startswith(DATA):
        return _data_fingerprint(run, source[len(DATA):])
    path = Path(source)
    if path.is_absolute():  # another run's weights (nv compare): model.pt or heads/<name>.pt, as plain files
        other = path.parent.parent if path.parent.name == files.HEADS_DIR else path.parent
        name = path.relative_to(other).as_posix()
        if name not in (files.MODEL, head_source(path.stem)) or not access.is_file(other, files.CONFIG) \
                or not access.is_file(other, name):
            return None
        from .run import load_run  # that run read by its own rules: config checked, no link followed

        return load_run(other).sha256(name)
    return run.sha256(source) if access.is_file(run.dir, source) else None


def check_record(value: Any, where: str) -> dict[str, str]:
    """`value` if it is a {name: digest} object of strings, else an NvError naming `where`."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise NvError(f"{where} must be an object of names and digests (strings); it is {_shown(value)}")
    return dict(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def stale_reasons(run: "Run", folder: Path, entry: Mapping[str, Any],
                  seen: dict[str, str | None] | None = None) -> list[str]:
    """Why a result recorded in results.json of `folder` (the run, or a result folder inside it) no longer describes
    the run: sources changed since it was made, files edited or replaced since saved ([] when it is current).

    `seen` keeps each source's digest for a reader that checks many results at once (nv report lists the data once,
    not once per result)."""
    seen = {} if seen is None else seen
    sources, digests = entry.get("made_from"), entry.get("digests")
    if not isinstance(sources, Mapping) or not isinstance(digests, Mapping) or not sources:
        return ["nv did not record what it was made from (saved before nv 0.5); make it again"]
    reasons = []
    for source, recorded in sources.items():
        try:
            now = seen[source] if source in seen else seen.setdefault(source, _source_now(run, source))
        except NvError as exc:
            reasons.append(f"{_named(source)} cannot be read now ({exc})")
            continue
        if now is None:
            reasons.append(f"{_named(source)} is gone")
        elif now != recorded:
            reasons.append(f"{_named(source)} changed since (recorded {str(recorded)[:12]}, now {now[:12]})")
    for name, recorded in digests.items():
        if not access.is_file(folder, name):
            reasons.append(f"its file {name} is missing")
        elif file_sha256(access.inside(folder, name)) != recorded:
            reasons.append(f"its file {name} was edited or replaced since nv saved it")
    return reasons


def _named(source: str) -> str:
    if source.startswith(DATA):
        return f"the {source[len(DATA):]} data"
    return f"'{source}' (the other run's weights)" if Path(source).is_absolute() else source
