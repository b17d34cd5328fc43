"""What a user installing nv from a package index gets: the wheel built from this tree, installed on its own.

The wheel goes into a fresh environment that borrows this one's packages (torch and the rest) through a path
entry, never its nv: `nv --version` must match pyproject's version, and one epoch of training and its report page
must run from a folder outside the source tree.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import nvcli

ROOT = Path(__file__).resolve().parents[1]


def test_one_version_everywhere() -> None:
    project = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in project and 'version = { attr = "nvcli.__version__" }' in project
    assert (ROOT / "CHANGELOG.md").read_text().count(f"## [{nvcli.__version__}]") == 1


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment holding the wheel built from this tree; its `bin` folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy: building leaves build/ and *.egg-info behind, never in the user's tree
    shutil.copytree(ROOT / "nvcli", source / "nvcli", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "--wheel-dir", str(tmp / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheels = list((tmp / "dist").glob("nvcli-*.whl"))
    assert [w.name.split("-")[1] for w in wheels] == [nvcli.__version__]
    env = tmp / "env"
    venv.create(env, with_pip=False)
    site = next((env / "lib").glob("python*/site-packages"))
    # This environment's packages, but not its nv (its editable finder sits in a .pth that a path entry skips).
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
                           "--no-deps", "--no-index", "--quiet", str(wheels[0])], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return env / "bin"


def _clean_env() -> dict[str, str]:
    """This environment without a path to another nv (PYTHONPATH, an active virtual environment)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "OMP_NUM_THREADS": "1"}


def _nv(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "nv"), *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=_clean_env())


def test_the_installed_wheel_reports_its_version_and_trains(installed: Path, tmp_path: Path) -> None:
    version = _nv(installed, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"nv {nvcli.__version__}", version.stderr
    where = subprocess.run([str(installed / "python"), "-c", "import nvcli; print(nvcli.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120, env=_clean_env())
    assert str(installed.parent) in where.stdout, "nv came from the source tree, not from the wheel"
    trained = _nv(installed, "train", "--arch", "smallcnn", "--image-size", "16", "--epochs", "1", "-D",
                  "train_per_class=4", "-D", "val_per_class=2", "--batch-size", "8", "--threads", "1", "--name", "w",
                  "-f", "csv", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "runs" / "w" / "model.pt").is_file() and "val_acc" in trained.stdout
    report = _nv(installed, "report", "--run", "runs/w", cwd=tmp_path)  # its HTML templates are in the wheel
    assert report.returncode == 0, report.stderr
    assert '<section id="training">' in (tmp_path / "runs" / "w" / "report.html").read_text()
