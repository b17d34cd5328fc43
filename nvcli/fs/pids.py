"""Process ids that files carry (a lock's owner, a temporary file, a scratch folder): whether that process still runs,
which tells a live writer's files from the leftovers of a killed one."""
from __future__ import annotations

import os
from pathlib import Path


def start_ticks(pid: int) -> str | None:
    """When process `pid` started (Linux clock ticks since boot), to tell a reused pid from its first owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, started: str | None = None) -> bool:
    """Whether process `pid` on this host still runs (and, given `started`, is the process that started then)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OverflowError, ValueError):
        return False
    return started is None or start_ticks(pid) in (None, started)
