"""One writer per run directory: `<run>/.nv-lock`, held for the life of a command that writes the run.

The lock file names its owner (pid, host, command, start time) so a refused writer can say who holds it.
Ownership is an exclusive `flock` on that file, which the kernel drops when the owner dies, however it
dies: a lock left behind by a killed process is stale and is taken over without asking. Where `flock`
is unavailable (some network file systems) a lock is stale when its owner's pid is gone from this host.
Locks are reentrant within a process (a command that holds its run's lock may save results into it),
and under torchrun only rank 0 writes, so only rank 0 locks. Scratch directories are owned the same
way: named by their process, removed when it ends, and cleaned up by the next one if it was killed.
Not the `filelock` package: it names no holder, keeps its file, and changes behaviour between the versions
requirements.lock pins (docs/run-directory.md says what it lacks).
"""
from __future__ import annotations

import atexit
import errno
import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import NvError
from ..fs.access import odd_kind
from ..fs.pids import pid_alive, start_ticks
from .files import LOCK

try:
    import fcntl
except ImportError:  # Windows: pid-based stale detection only
    fcntl = None  # type: ignore[assignment]

_held: dict[Path, tuple[int, int]] = {}  # resolved run dir -> (open lock file descriptor, nesting depth)


@dataclass(frozen=True)
class Owner:
    """The process a lock file names."""

    pid: int
    host: str
    command: str
    since: str
    started: str | None = None

    @classmethod
    def me(cls, command: str | None) -> "Owner":
        pid = os.getpid()
        return cls(pid, socket.gethostname(), command or shlex.join(["nv", *sys.argv[1:]]),
                   time.strftime("%Y-%m-%dT%H:%M:%S%z"), start_ticks(pid))

    @classmethod
    def read(cls, fd: int) -> "Owner | None":
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            data = json.loads(os.read(fd, 65536).decode("utf-8"))
            return cls(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]),
                       data.get("started"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(self.__dict__).encode())

    def alive(self) -> bool:
        """Whether the owner may still run: always on another host, where its pid cannot be checked."""
        return self.host != socket.gethostname() or pid_alive(self.pid, self.started)

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since} ({self.command})"


def _flock(fd: int) -> bool | None:
    """Take the exclusive flock: True if taken, False if another process holds it, None if not supported."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        return False if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK) else None


def _open(path: Path, run_dir: Path) -> int:
    """The lock file, opened (created if missing) without following a link or opening a FIFO, device or socket."""
    try:
        what = odd_kind(os.lstat(path).st_mode)
    except OSError:
        what = None
    if what is not None and what != "a symbolic link":  # a FIFO would block the read of its owner
        raise NvError(f"'{path}' is {what}, not an nv lock; remove it (nv never opens it)")
    try:  # O_NOFOLLOW: a lock file planted as a link to another file must not get that file truncated
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NvError(f"'{path}' is a symbolic link, not an nv lock; remove it (nv never follows it)") from exc
        raise NvError(f"cannot lock run '{run_dir}' for writing: {exc.strerror} (this command writes its results "
                      "into the run directory, so it must be writable)") from exc


def _take(run_dir: Path) -> int:
    """The lock file of `run_dir`, opened and owned by this process, or NvError naming the process that owns it."""
    path = run_dir / LOCK
    while True:
        fd = _open(path, run_dir)
        taken = _flock(fd)
        owner = Owner.read(fd)
        if taken is False or (taken is None and owner is not None and owner.pid != os.getpid() and owner.alive()):
            os.close(fd)
            who = str(owner) if owner else "another process"
            raise NvError(f"run '{run_dir}' is being written by another nv process: {who}; wait for it to end or "
                          f"stop it (if that process is gone, delete '{path}')")
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous owner removed the file while we opened it: lock the new one


def writer_process() -> bool:
    """Whether this process writes runs and prints results: the only one, or rank 0 of those torchrun started."""
    return os.environ.get("RANK", "0") == "0"


def acquire(run_dir: str | os.PathLike, command: str | None = None) -> None:
    """Lock `run_dir` for writing by this process, or raise NvError naming the process that holds it."""
    if not writer_process():
        return  # a torchrun rank other than 0 never writes
    key = Path(run_dir).resolve()
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        return
    fd = _take(key)
    try:
        Owner.me(command).write(fd)
    except OSError as exc:
        os.close(fd)
        raise NvError(f"cannot lock run '{key}' for writing: {exc.strerror}") from exc
    _held[key] = (fd, 1)


def _drop(key: Path) -> None:
    """Remove the lock file of `key` and give up its lock."""
    fd, _ = _held.pop(key)
    try:
        os.unlink(key / LOCK)  # before unlocking: a waiting writer then finds the file gone and opens a new one
    except OSError:
        pass
    os.close(fd)


def release(run_dir: str | os.PathLike) -> None:
    """Undo one `acquire` of `run_dir`; the last one removes the lock file."""
    key = Path(run_dir).resolve()
    if key in _held:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
        else:
            _drop(key)


def release_all() -> None:
    """Release every lock this process holds (the end of a command)."""
    for key in list(_held):
        _drop(key)


atexit.register(release_all)  # a process that exits without releasing (sys.exit in a script) leaves no lock file


@contextmanager
def holding(run_dir: str | os.PathLike, command: str | None = None) -> Iterator[Path]:
    """Hold `run_dir`'s lock for the `with` block; yields the run directory."""
    acquire(run_dir, command)
    try:
        yield Path(run_dir)
    finally:
        release(run_dir)


def remove_orphans(folder: Path, prefix: str) -> None:
    """Remove the directories `<folder>/<prefix><pid>[-...]` whose process is gone (a killed command's leftovers)."""
    for old in folder.glob(f"{prefix}*"):
        pid = old.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)) and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory `<tmp>/<prefix><pid>-*`, removed afterwards; those of dead processes are removed first."""
    remove_orphans(Path(tempfile.gettempdir()), prefix)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-") as tmp:
        yield Path(tmp)
