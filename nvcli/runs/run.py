"""The run directory: the contract between `nv train` and every command that reads its result.

Reading a run never executes code from it: config.json is plain JSON checked key by key, tensors
are loaded with `weights_only=True`, and a user's `package.module:function` architecture is imported
only when the caller passes `trust_code`.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .. import __version__
from ..errors import NvError
from ..fs import access
from ..fs.atomic import load_torch, write_csv, write_json
from ..fs.digest import file_sha256
from ..models.spec import ModelSpec
from . import files, lock
from .config import CONFIG_FORMAT, RunConfig

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

    from ..data.registry import DataBundle

REQUIRED_UNIT_COLUMNS = ("unit", "layer", "node", "channel")  # of units.csv (view, label: when present)
REWRITE_METRICS = "remove the file: resuming the training writes it again from checkpoint.pt"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def library_versions() -> dict[str, str]:
    """Versions of nv and the libraries that shape a run's numbers (torchaudio's read without importing it)."""
    import torch
    import torchvision

    versions = {"nv": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "torchvision": torchvision.__version__}
    try:
        versions["torchaudio"] = metadata.version("torchaudio")
    except metadata.PackageNotFoundError:
        pass
    return versions


def check_name(name: str) -> str:
    """A run name: letters, digits, '.', '_' or '-' (not 'latest'), starting with a letter or digit."""
    if not _NAME.fullmatch(name) or name == files.LATEST:
        raise NvError(f"run name {name!r} is not allowed; use letters, digits, '.', '_' or '-' (not 'latest')")
    return name


@contextmanager
def new_run_dir(name: str | None, runs_dir: str | Path = files.RUNS_DIR, force: bool = False) -> Iterator[Path]:
    """Create `runs_dir/name` (a timestamped name if None) and hold its lock while the `with` block writes it.

    An existing run is replaced only with `force`, only if it is an nv run, and only if no other process is
    writing it (its lock); a directory that is not a run is never deleted.
    """
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NvError(f"cannot create run directory '{runs_dir / (name or '')}': {exc.strerror}") from exc
    if name is None:
        path = _fresh_dir(runs_dir)
    else:
        path = runs_dir / check_name(name)
        if path.is_symlink():
            raise NvError(f"'{path}' is a symbolic link; nv writes runs only into real directories, choose another "
                          "name", param="name")
        if path.exists() and not path.is_dir():
            raise NvError(f"cannot create run directory '{path}': a file of that name exists")
        if path.is_dir() and any(path.iterdir()):
            if not force:
                raise NvError(f"run directory '{path}' already exists; pass force to overwrite it or choose another "
                              "name", param=("force", "name"))
            if not access.is_file(path, files.CONFIG):
                raise NvError(f"'{path}' is not an nv run directory (no config.json); force only replaces runs",
                              param="force")
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise NvError(f"cannot create run directory '{path}': {exc.strerror}") from exc
    with lock.holding(path):
        _clear(path)  # a replaced run keeps none of the old run's results
        if not os.access(path, os.W_OK):
            raise NvError(f"run directory '{path}' is not writable")
        yield path


def _fresh_dir(runs_dir: Path) -> Path:
    """A new directory named by the time; runs started within one second get -2, -3, ..."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        path = runs_dir / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()  # atomic: two processes starting together never share a directory
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise NvError(f"cannot create run directory '{path}': {exc.strerror}") from exc
    raise NvError(f"cannot find a free run directory for {stamp} in '{runs_dir}'; pass name", param="name")


def _clear(path: Path) -> None:
    """Remove from run directory `path` what nv wrote there (`files.written_by_nv`); the user's own files and
    folders, and any link, stay (a link is removed only where nv's file of that name would go, never followed)."""
    try:
        for child in sorted(path.iterdir()):
            if child.name == files.LOCK:
                continue
            if child.is_symlink() or not child.is_dir():
                if files.written_by_nv(child.name):
                    child.unlink()  # a link itself, never its target
            elif child.name.startswith(files.STAGING):
                shutil.rmtree(child)
            elif files.written_by_nv(f"{child.name}/{files.RESULTS}") or child.name in (
                    files.CODES_DIR, files.HEADS_DIR, files.TENSORBOARD_DIR):
                for inner in child.iterdir():
                    if files.written_by_nv(f"{child.name}/{inner.name}") and not inner.is_dir():
                        inner.unlink()
                if not any(child.iterdir()):
                    child.rmdir()
    except OSError as exc:
        raise NvError(f"cannot replace run '{path}': {exc.strerror} ('{exc.filename}')") from exc


def mark_latest(path: Path) -> None:
    """Point `<runs dir>/latest` at `path` (atomically replacing the old link)."""
    link = path.parent / files.LATEST
    tmp = path.parent / f".latest.{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(path.name)
        os.replace(tmp, link)
    except OSError as exc:
        raise NvError(f"cannot point '{link}' at the new run: {exc.strerror}") from exc


@dataclass
class Run:
    """A run directory read back: its config and the means to rebuild its model and data.

    A file read once is kept while its size and modification time stay the same, so the analyses of one command
    (head, model, code cache) read and hash model.pt once; the dataset of each setting is loaded once.
    """

    dir: Path
    config: RunConfig
    _read: dict[str, tuple[tuple[int, int], Any]] = field(default_factory=dict, repr=False, compare=False)
    _data: dict[str, "DataBundle"] = field(default_factory=dict, repr=False, compare=False)

    @property
    def spec(self) -> ModelSpec:
        return self.config.model

    @property
    def classes(self) -> list[str]:
        return list(self.config.data.classes)

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def kind(self) -> str:
        """The data kind: image, sound or views."""
        return self.config.data.kind or "image"

    @property
    def is_neuroview(self) -> bool:
        return not self.spec.baseline

    def path(self, name: str) -> Path:
        """The path of the run's file `name`, refused if a link, FIFO or device stands in its place (`access`)."""
        return access.inside(self.dir, name)

    def _metrics(self) -> list[dict[str, float]]:
        """metrics.csv's rows, one per finished epoch, each value checked by `metric`: a damaged row is an NvError
        naming the line and column."""
        if not access.is_file(self.dir, files.METRICS):
            return []
        rows = []
        text = access.read_text(self.dir, files.METRICS)
        for epoch, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), 1):
            if None in row or None in row.values():
                raise NvError(f"'{self.path(files.METRICS)}' line {epoch + 1} does not have one value per column of "
                              f"its header ({REWRITE_METRICS})")
            rows.append({column: metric(column, value, epoch, f"'{self.path(files.METRICS)}' line {epoch + 1}")
                         for column, value in row.items()})
        return rows

    @property
    def epochs_done(self) -> int:
        """Epochs recorded in metrics.csv (0 before the first one ends)."""
        return len(self._metrics())

    @property
    def last_val_acc(self) -> float | None:
        """The validation accuracy after the last recorded epoch (None before the first one ends)."""
        rows = self._metrics()
        return rows[-1].get("val_acc") if rows else None

    @property
    def complete(self) -> bool:
        """Whether a training run has run all its epochs."""
        return self.config.train is not None and self.epochs_done >= self.config.train.epochs

    def _once(self, key: str, name: str, read: Callable[[Path], Any]) -> Any:
        """`read(path)` of the run's file `name`, again only when the file has changed since."""
        path = self.path(name)
        if not path.is_file():
            hint = "; train the run first, or convert a network into it" if name == files.MODEL else ""
            raise NvError(f"run '{self.dir}' has no {name}{hint}")
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        kept = self._read.get(key)
        if kept is None or kept[0] != version:
            kept = self._read[key] = (version, read(path))
        return kept[1]

    def tensors(self, name: str) -> dict[str, "torch.Tensor"]:
        """A state_dict file of the run, loaded with weights_only=True."""
        import torch

        def read(path: Path) -> dict[str, torch.Tensor]:
            state = load_torch(path, f"cannot read '{path}' as a state_dict")
            if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                      for k, v in state.items()):
                raise NvError(f"'{path}' does not hold a state_dict of tensors (named by text)")
            return state

        return dict(self._once(f"tensors:{name}", name, read))

    def sha256(self, name: str) -> str:
        """The SHA-256 of the run's file `name` (hex)."""
        return self._once(f"sha256:{name}", name, file_sha256)

    def state(self) -> dict[str, "torch.Tensor"]:
        """model.pt's state_dict, loaded with weights_only=True (no model is built)."""
        return self.tensors(files.MODEL)

    def head_init(self) -> dict[str, "torch.Tensor"] | None:
        """The head's weights before training (head_init.pt), or None for runs that did not keep them."""
        if not access.is_file(self.dir, files.HEAD_INIT):
            return None
        try:
            return self.tensors(files.HEAD_INIT)
        except NvError as exc:
            raise NvError(f"{exc}; it is optional: remove it to read the run without the head's starting "
                          "weights") from None

    def model(self, device: "str | torch.device" = "cpu", *, trust_code: bool = False) -> "nn.Module":
        """The trained model, rebuilt from config and loaded from model.pt, in eval mode."""
        from ..models.build import build_model

        state = self.state()
        broken = next((k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()), None)
        if broken is not None:
            raise NvError(f"'{self.dir / files.MODEL}' holds NaN or infinite values in '{broken}'; a model with them "
                          "computes nothing (train the run again)")
        model = build_model(self.spec, load_weights=False, trust_code=trust_code)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise NvError(f"'{self.dir / files.MODEL}' does not match the model described in config.json "
                          f"({first})") from exc
        units = len(model.units()) if hasattr(model, "units") else None
        if units != self.config.units and self.config.units is not None:
            raise NvError(f"'{self.dir / files.CONFIG}': 'units' is {self.config.units} but its model reads {units} "
                          "codes; restore it (nv wrote the model's count)")
        return model.to(device).eval()

    def data(self, **overrides: Any) -> "DataBundle":
        """The run's dataset, loaded with the options recorded at training time (overrides win)."""
        from ..data.registry import check_classes, check_input, data_options, load_data

        data = self.config.data
        if data.name is None:
            raise NvError(f"run '{self.dir}' was converted without data; train it first, starting from this run (init)",
                          param="init")
        options = {**data.options, **overrides}
        key = json.dumps(options, sort_keys=True, default=str)
        if key not in self._data:  # the classes are checked every time: a data tree can change between commands
            try:
                typed = data_options(data.name, options)
            except NvError as exc:
                raise NvError(f"'{self.dir / files.CONFIG}' data section: {exc}") from None
            bundle = check_classes(load_data(data.name, typed), self.classes, str(self.dir))
            shape = [self.spec.views, *self.spec.input_shape] if self.spec.multiview else self.spec.input_shape
            self._data[key] = check_input(bundle, shape, str(self.dir))
        return self._data[key]

    def units(self) -> "pd.DataFrame":
        """units.csv as a DataFrame (with a `label` column also for runs written before labels existed)."""
        if not access.is_file(self.dir, files.UNITS):
            raise NvError(f"run '{self.dir}' has no units.csv (a baseline run has no NeuroView units)")
        return self._once("units", files.UNITS, self._read_units).copy()

    def _read_units(self, path: Path) -> "pd.DataFrame":
        from ..models.unit_table import checked_units, with_labels

        units = with_labels(access.read_csv(self.dir, files.UNITS))
        missing = [c for c in REQUIRED_UNIT_COLUMNS if c not in units.columns]
        expected = self.config.units
        if missing or (isinstance(expected, int) and len(units) != expected):
            raise NvError(f"'{path}' does not describe this run's units (expected columns "
                          f"{', '.join(REQUIRED_UNIT_COLUMNS)}"
                          f" and {expected} rows; it has {', '.join(map(str, units.columns))} and {len(units)} rows)")
        return checked_units(units, f"'{path}'")

    def require_neuroview(self) -> None:
        """Refuse a baseline run where the NeuroView head is read."""
        if not self.is_neuroview:
            raise NvError(f"this needs a NeuroView run; '{self.dir}' is a baseline run without unit weights")

    def _repr_html_(self) -> str:
        """This run in Jupyter: nv report's overview row, its configuration and its saved results, stale ones marked."""
        from ..report.notebook import run_html  # a higher layer, loaded only when a notebook shows a run

        return run_html(self)


def metric(column: str, text: str, epoch: int, where: str) -> float:
    """One value of metrics.csv's row for `epoch` (`where`: its file and line): the epoch itself, an accuracy in
    [0, 1], a loss (a number, NaN or infinite where training diverged) or another finite number."""
    try:
        value, number = float(text), True
    except ValueError:
        value, number = math.nan, False
    if column == "epoch":
        ok, valid = value == epoch, f"{epoch} (epochs are numbered from 1, one per line)"
    elif column.endswith("_acc"):
        ok, valid = 0 <= value <= 1, "an accuracy in [0, 1]"
    elif column.endswith("_loss"):
        ok, valid = number, "a number"
    else:
        ok, valid = math.isfinite(value), "a finite number"
    if not ok:
        raise NvError(f"{where} column '{column}' is {text!r}; expected {valid} ({REWRITE_METRICS})")
    return value


def load_run(path: str | Path | None = None, runs_dir: str | Path = files.RUNS_DIR) -> Run:
    """Open a run directory, validating its config.json; nothing in it is executed.

    Args:
        path: the run directory (default: `<runs_dir>/latest`, the newest run).
        runs_dir: where run directories live.

    Returns:
        The `Run`: `config` (a typed RunConfig), `spec`, `classes`, `units()`, `model()`, `data()`.
    """
    if path is None:
        link = Path(runs_dir) / files.LATEST
        if not link.exists():
            found = Path(runs_dir).glob("*/config.json") if Path(runs_dir).is_dir() else []
            others = sorted(p.parent.name for p in found)
            if link.is_symlink():
                raise NvError(f"'{link}' points to '{os.readlink(link)}', which no longer exists; pass run PATH"
                              + (f" (runs in '{runs_dir}': {', '.join(others[:5])}"
                                 f"{', ...' if len(others) > 5 else ''})" if others else ""), param="run")
            raise NvError(f"no runs yet in '{runs_dir}'; train one or pass run PATH", param="run")
        run_dir = link
    else:
        run_dir = Path(path)
    config_path = run_dir / files.CONFIG
    if not run_dir.is_dir():
        raise NvError(f"run directory '{run_dir}' does not exist or is not a directory")
    if not access.is_file(run_dir, files.CONFIG):
        raise NvError(f"'{run_dir}' is not an nv run directory (no config.json)")
    try:
        config = json.loads(access.read_text(run_dir, files.CONFIG))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise NvError(f"'{config_path}' is not valid JSON ({str(exc)[:200] or type(exc).__name__})") from exc
    return Run(run_dir.resolve(), RunConfig.from_dict(config, str(config_path)))


def write_config(path: Path, config: RunConfig) -> None:
    """Write config.json, in the current format with this process's library versions."""
    write_json(path / files.CONFIG, replace(config, format=CONFIG_FORMAT, versions=library_versions()).to_json())


def write_units(path: Path, units: "pd.DataFrame") -> None:
    """Write units.csv."""
    write_csv(path / files.UNITS, units)
