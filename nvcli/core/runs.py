"""The run directory: the contract between `nv train` and every command that reads its result."""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from .. import __version__
from .atomic import write_csv, write_json
from .build import ModelSpec, build_model
from .data import DataBundle, load_data
from .errors import NvError

CONFIG_FORMAT = 1
RUNS_DIR = Path("runs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def library_versions() -> dict[str, str]:
    """Versions of nv and the libraries that shape a run's numbers."""
    import torchvision

    versions = {"nv": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                "python": platform.python_version()}
    try:
        import torchaudio

        versions["torchaudio"] = torchaudio.__version__
    except ImportError:  # pragma: no cover - torchaudio is a dependency, but only sound needs it
        pass
    return versions


def new_run_dir(name: str | None, runs_dir: str | Path = RUNS_DIR, force: bool = False) -> Path:
    """Create `runs_dir/name` (a timestamped name if None); refuse to reuse one unless `force`."""
    runs_dir = Path(runs_dir)
    name = name or time.strftime("%Y%m%d-%H%M%S")
    if not _NAME.match(name) or name == "latest":
        raise NvError(f"run name '{name}' is not allowed; use letters, digits, '.', '_' or '-' (not 'latest')")
    path = runs_dir / name
    if path.exists() and any(path.iterdir()):
        if not force:
            raise NvError(f"run directory '{path}' already exists; pass --force to overwrite it or --name for another")
        if not (path / "config.json").is_file():
            raise NvError(f"'{path}' is not an nv run directory (no config.json); --force only replaces runs")
        shutil.rmtree(path)  # a replaced run keeps none of the old run's results
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NvError(f"cannot create run directory '{path}': {exc.strerror}") from exc
    if not os.access(path, os.W_OK):
        raise NvError(f"run directory '{path}' is not writable")
    return path


def mark_latest(path: Path) -> None:
    """Point `<runs dir>/latest` at `path` (atomically replacing the old link)."""
    link = path.parent / "latest"
    tmp = path.parent / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(path.name)
    os.replace(tmp, link)


@dataclass
class Run:
    """A run directory read back: its config and the means to rebuild its model and data."""

    dir: Path
    config: dict[str, Any]

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self.config["model"])

    @property
    def classes(self) -> list[str]:
        return list(self.config["data"]["classes"])

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def is_neuroview(self) -> bool:
        return not self.spec.baseline

    def state(self) -> dict[str, torch.Tensor]:
        """model.pt's state_dict, loaded with weights_only=True (no model is built)."""
        path = self.dir / "model.pt"
        if not path.is_file():
            raise NvError(f"run '{self.dir}' has no model.pt; train it first (nv train) or convert (nv convert)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise NvError(f"cannot read '{path}' as a state_dict ({type(exc).__name__})") from exc
        if not isinstance(state, dict):
            raise NvError(f"'{path}' does not hold a state_dict")
        return state

    def model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The trained model, rebuilt from config and loaded from model.pt, in eval mode."""
        state = self.state()
        model = build_model(self.spec, load_weights=False)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise NvError(f"'{self.dir / 'model.pt'}' does not match the model described in config.json ({first})") from exc
        return model.to(device).eval()

    def data(self, **overrides: Any) -> DataBundle:
        """The run's dataset, loaded with the options recorded at training time (overrides win)."""
        data = self.config["data"]
        if data["name"] is None:
            raise NvError(f"run '{self.dir}' was converted without data; train it with 'nv train --init {self.dir}'")
        return load_data(data["name"], **{**data.get("options", {}), **overrides})

    def units(self) -> pd.DataFrame:
        """units.csv as a DataFrame."""
        path = self.dir / "units.csv"
        if not path.is_file():
            raise NvError(f"run '{self.dir}' has no units.csv (a baseline run has no NeuroView units)")
        return pd.read_csv(path)

    def require_neuroview(self, command: str) -> None:
        """Refuse baseline runs for commands that read the NeuroView head."""
        if not self.is_neuroview:
            raise NvError(f"'{command}' needs a NeuroView run; '{self.dir}' is a --baseline run without unit weights")


def _check_config(path: Path, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise NvError(f"'{path}' must hold a JSON object")
    fmt = config.get("format")
    if fmt != CONFIG_FORMAT:
        raise NvError(f"'{path}' has config format {fmt!r}; this nv ({__version__}) reads format {CONFIG_FORMAT} "
                      "(re-create the run with this nv version)")
    for key, kind in (("model", dict), ("data", dict), ("train", dict)):
        if not isinstance(config.get(key), kind):
            raise NvError(f"'{path}' has no valid '{key}' section")
    if not isinstance(config["data"].get("classes"), list) or "name" not in config["data"]:
        raise NvError(f"'{path}' data section needs 'name' and a 'classes' list")
    spec = ModelSpec.from_dict(config["model"])
    if spec.num_classes != len(config["data"]["classes"]):
        raise NvError(f"'{path}' says num_classes={spec.num_classes} but lists {len(config['data']['classes'])} classes")
    return config


def load_run(path: str | Path | None = None, runs_dir: str | Path = RUNS_DIR) -> Run:
    """Open a run directory (default: `<runs_dir>/latest`), validating its config.json."""
    run_dir = Path(path) if path is not None else Path(runs_dir) / "latest"
    if path is None and not run_dir.exists():
        raise NvError(f"no runs yet in '{runs_dir}'; train one with 'nv train' or pass --run PATH")
    config_path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise NvError(f"run directory '{run_dir}' does not exist or is not a directory")
    if not config_path.is_file():
        raise NvError(f"'{run_dir}' is not an nv run directory (no config.json)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise NvError(f"'{config_path}' is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    return Run(run_dir.resolve(), _check_config(config_path, config))


def write_config(path: Path, config: dict[str, Any]) -> None:
    """Write config.json with the format number and library versions added."""
    write_json(path / "config.json", {**config, "format": CONFIG_FORMAT, "versions": library_versions()})


def write_units(path: Path, units: pd.DataFrame) -> None:
    """Write units.csv."""
    write_csv(path / "units.csv", units)
