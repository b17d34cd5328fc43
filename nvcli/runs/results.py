"""Saving results into a run directory: all of a result's files or none, and a record of what made them.

Every analysis returns a `RunResult`. Saving one writes all its files into a staging folder first (so a
failure while producing any of them changes nothing), then moves them into the run directory and
records them in `results.json` with the settings that produced them and the command that redoes them.
Saving again with the same settings replaces the files; with other settings it is refused unless
`force`, so no result is silently replaced by a differently made one. Every record also holds what the result was
made from and the digest of each file it wrote (`provenance`), so every reader can tell a stale result from a
current one.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ..errors import NvError
from ..fs import access
from ..fs.atomic import save_figure, write_csv, write_json
from ..fs.digest import file_sha256
from ..schema import JsonRecord
from . import provenance
from .files import DENSE_HEAD, RESULTS, STAGING, ResultKey, result_file
from .lock import holding, remove_orphans

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import FigureBase

    from .run import Run

Writer = Callable[[Path], None]  # writes one file at the path it is given
MANIFEST_FORMAT = 1


def table(frame: Any) -> Writer:
    """A writer of `frame` as CSV."""
    return lambda path: write_csv(path, frame)


class figure:  # noqa: N801  (used like `table`: a writer named for what it writes)
    """A writer of the figure `draw(*args, **kwargs)` as PNG (drawn only when written); `draw(into=...)` draws it into
    a sub-figure instead, for `RunResult.plot`."""

    def __init__(self, draw: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.draw, self.args, self.kwargs = draw, args, kwargs

    def __call__(self, path: Path) -> None:
        save_figure(path, self.draw(*self.args, **self.kwargs))

    def drawn(self, into: Any = None) -> Any:
        """The figure: a new matplotlib Figure, or drawn into `into` (a sub-figure, or in the place of an axes)."""
        return self.draw(*self.args, **self.kwargs, into=into)


class RunResult(ABC):
    """A result that owns its files: `save(run)` writes them with what they were made from, `artifacts()` names
    them."""

    kind: ClassVar[str]  # the manifest entry, e.g. "perturb"
    main_table: ClassVar[str]  # the field holding the main table (`to_frame`)
    # A result made from a model in memory (nvcli.api) holds its weights' digest (provenance.state_digest): it is
    # saved only into the run whose model.pt holds those weights.
    computed_from: str | None = None

    def key(self) -> ResultKey:
        """The manifest entry of this result: its kind, marked with the head it reads unless that is the dense one;
        results that describe one of several things (a class, an input) say so in their own key."""
        return ResultKey(self.kind, head=self.head_name())

    def head_name(self) -> str:
        """The head whose weights this result was computed from (`dense` unless a `head` field names another)."""
        head = getattr(self, "head", DENSE_HEAD)
        return str(getattr(head, "name", head))

    def data_splits(self) -> tuple[str, ...]:
        """The splits of the run's data this result was computed from (the validation split when it ranks units by
        importance, which reads its codes)."""
        return ("val",) if getattr(self.settings(), "rank", None) == "importance" else ()

    def made_from(self, run: "Run") -> dict[str, str]:
        """What this result was computed from, with digests (`provenance.made_from`)."""
        return provenance.made_from(run, head=self.head_name(), splits=self.data_splits())

    @abstractmethod
    def settings(self) -> JsonRecord:
        """The options that produced this result, as recorded in results.json."""

    @abstractmethod
    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        """File name -> the function that writes it; figures only when `figures`."""

    def to_frame(self) -> "pd.DataFrame":
        """The result's main table (a copy): what its first CSV holds."""
        return getattr(self, self.main_table).copy()

    def plot(self, ax: "Axes | None" = None) -> "FigureBase":
        """The result's main figure: a new matplotlib Figure, or drawn in the place of the caller's `ax` (a grid
        cell, from `plt.subplots`), where a figure of many panels takes that cell."""
        drawn = [w for w in self.artifacts(figures=True).values() if isinstance(w, figure)]
        if not drawn:
            raise NvError(f"a {type(self).__name__} has no figure; its table is to_frame()")
        return drawn[0].drawn(ax)

    def check(self) -> None:
        """Refuse (NvError) a result that breaks its own promises; nothing is written then. Every result is checked
        here, in `save`, whatever made it."""

    def save(self, run: "Run | str | os.PathLike", *, into: str | os.PathLike | None = None, force: bool = False,
             figures: bool = True, command: str | None = None) -> list[Path]:
        """Write every file of this result into the run's directory (or the folder `into`, inside it), recording
        what it was made from; returns their paths."""
        from .run import Run, load_run

        run = run if isinstance(run, Run) else load_run(run)
        self.check()
        if self.computed_from is not None and self.computed_from != provenance.state_digest(run.state()):
            raise NvError(f"this {type(self).__name__} was computed from other weights than run '{run.name}' holds "
                          f"('{run.dir / 'model.pt'}'); save it into a run of that model (save(model, path, ...))",
                          param="run")
        sources = self.made_from(run)  # before the files: a result may carry it in one of them (a sparse head)
        return save_files(Path(into) if into is not None else run.dir, str(self.key()), self.settings(),
                          self.artifacts(figures), force=force, command=command, made_from=sources)

    def _repr_html_(self) -> str:
        """This result in Jupyter: its figures and tables, escaped as nv report does (drawn in a scratch folder)."""
        from ..report.notebook import result_html  # a higher layer, loaded only when a notebook shows a result

        return result_html(self)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """`results.json` as {entry: {settings, files, command, written, made_from, digests}} ({} when there is none yet).

    A results.json that cannot be read, or whose entries are not of nv's shape, is refused in one line naming the
    entry and field, not treated as empty: rewriting it would lose its records.
    """
    if not access.is_file(run_dir, RESULTS):
        return {}
    path = Path(run_dir) / RESULTS
    try:
        data = json.loads(access.read_text(run_dir, RESULTS))
    except (ValueError, RecursionError) as exc:
        raise NvError(f"'{path}' is not valid JSON ({str(exc)[:120]}); it lists the run's results, so nv will not "
                      "replace it: repair it, or move it away to start a new list") from exc
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or not all(isinstance(v, dict) for v in results.values()):
        raise NvError(f"'{path}' does not hold nv's list of results (an object with a 'results' object of entries); "
                      "repair it, or move it away to start a new list")
    if data.get("format") != MANIFEST_FORMAT:
        raise NvError(f"'{path}' has format {data.get('format')!r}; this nv reads format {MANIFEST_FORMAT} (repair "
                      "it, or move it away to start a new list)")
    for key, entry in results.items():
        _check_entry(entry, f"'{path}': entry '{key}'")
    return results


_ENTRY_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "settings": (dict, "an object"), "files": (list, "a list of file names"),
    "command": ((str, type(None)), "a string"), "written": (str, "a string"), "made_from": (dict, "an object"),
    "digests": (dict, "an object")}


def _check_entry(entry: dict[str, Any], where: str) -> None:
    """One results.json entry of nv's shape (fields of the right types, file names as strings), else an NvError."""
    for name, value in entry.items():
        kind, spelled = _ENTRY_FIELDS.get(name, (object, ""))
        if not isinstance(value, kind):
            raise NvError(f"{where}: '{name}' must be {spelled}; it is {value!r:.60}; repair or remove the entry")
    names = entry.get("files", [])
    if not all(isinstance(n, str) for n in names):
        raise NvError(f"{where}: 'files' must be a list of file names; it is {names!r:.60}")
    for field in ("made_from", "digests"):
        if field in entry:
            provenance.check_record(entry[field], f"{where}: '{field}'")


def stale(run: "Run", key: str, folder: Path | None = None) -> list[str]:
    """Why result `key` of `folder`'s results.json (default: the run's) no longer describes the run: its sources or
    files changed since it was saved, or it was saved without that record ([] when it is current; see `provenance`)."""
    folder = run.dir if folder is None else folder
    entry = read_manifest(folder).get(key)
    if entry is None:
        return [f"results.json of '{folder}' does not list {key}"]
    return provenance.stale_reasons(run, folder, entry)


def current(run: "Run", key: str) -> bool:
    """Whether the run's result `key` is recorded and still describes the run (`stale` has no reason)."""
    return not stale(run, key)


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def save_files(run_dir: Path, key: str, settings: JsonRecord, files: dict[str, Writer], *,
               made_from: dict[str, str], force: bool = False, command: str | None = None) -> list[Path]:
    """Write `files` into `run_dir` all together and record them under `key` in results.json, with `made_from` (what
    they were computed from) and each file's SHA-256 as written."""
    with holding(run_dir, command):  # reentrant: a command that holds the run's lock already keeps it
        return _save_files(run_dir, key, settings, files, force=force, command=command, made_from=made_from)


def _save_files(run_dir: Path, key: str, record: JsonRecord, files: dict[str, Writer], *, force: bool,
                command: str | None, made_from: dict[str, str]) -> list[Path]:
    settings = json.loads(json.dumps(record.to_json()))  # what the manifest will hold, for a like-for-like comparison
    manifest = read_manifest(run_dir)
    previous = manifest.get(key)
    if previous and previous.get("settings") != settings and not force:
        changed = "; ".join(_differences(previous.get("settings") or {}, settings))
        raise NvError(f"'{run_dir}' already holds {key} results made with other settings ({changed}); "
                      f"pass force to replace them (made by: {previous.get('command') or 'unknown'})", param="force")
    destinations = [access.inside(run_dir, name) for name in files]  # no link, FIFO or device in the way
    old: list[str] = []
    if previous:
        # Only names of result files, that no other result lists: a hand-edited results.json must not reach others.
        others = {n for k, v in manifest.items() if k != key for n in v.get("files", [])}
        old = [n for n in previous.get("files", []) if n not in files and n not in others and result_file(n)]
        for n in old:
            access.inside(run_dir, n)  # refused before anything is written
    remove_orphans(run_dir, STAGING)  # staging folders of killed commands
    staging = access.inside(run_dir, f"{STAGING}{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        for name, write in files.items():
            (staging / name).parent.mkdir(exist_ok=True)  # a name may lie in one subfolder (heads/<name>.pt)
            write(staging / name)
        digests = {name: file_sha256(staging / name) for name in files}
        for name, path in zip(files, destinations):  # every file is complete before the first one replaces an old one
            path.parent.mkdir(exist_ok=True)
            os.replace(staging / name, access.inside(run_dir, name))  # checked again: the folder is made now
    except OSError as exc:
        raise NvError(f"cannot write {key} results into '{run_dir}': {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    kept = list(files)
    if previous and previous.get("settings") == settings and previous.get("made_from") == made_from:
        kept += [n for n in old if access.is_file(run_dir, n)]  # e.g. figures saved before, skipped now
        digests.update({n: d for n, d in (previous.get("digests") or {}).items() if n in kept and n not in digests})
    else:
        for n in old:  # made with the replaced settings, or from other weights or data
            access.remove(run_dir, n)
    for other in manifest.values():  # a file now written by this result is no longer another's (runs before 0.3)
        other["files"] = [n for n in other.get("files", []) if n not in files]
        if "digests" in other:
            other["digests"] = {n: d for n, d in other["digests"].items() if n not in files}
    manifest[key] = {"settings": settings, "files": kept, "command": command,
                     "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "made_from": made_from, "digests": digests}
    write_json(access.inside(run_dir, RESULTS), {"format": MANIFEST_FORMAT, "results": manifest})
    return [run_dir / name for name in files]
