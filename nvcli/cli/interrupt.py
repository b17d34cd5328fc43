"""How signals end a command: Ctrl-C, SIGTERM and SIGHUP all raise KeyboardInterrupt, but never mid-import.

Some libraries guard their imports with a bare `except:`; an interrupt raised while torch or numpy is
being imported can be swallowed there (the command then runs on as if nothing happened) or leave a
module half-imported (an internal error follows). So while a module is being imported the interrupt
is held and raised, via a short timer, as soon as the import is over.
"""
from __future__ import annotations

import signal
from typing import Any, Callable

from ..errors import NvError

_RETRY_S = 0.05
_pending = {"signal": False}


def _importing(frame: Any) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _hold(frame: Any) -> bool:
    """Whether to hold the interrupt (an import is running); then try again shortly."""
    if hasattr(signal, "setitimer") and _importing(frame):
        _pending["signal"] = True
        signal.setitimer(signal.ITIMER_REAL, _RETRY_S)
        return True
    _pending["signal"] = False
    return False


def _interrupt(signum: int, frame: Any) -> None:
    if not _hold(frame):
        raise KeyboardInterrupt


def _retry(signum: int, frame: Any) -> None:
    if _pending["signal"] and not _hold(frame):
        raise KeyboardInterrupt


def install() -> None:
    """Route Ctrl-C, SIGTERM and SIGHUP to KeyboardInterrupt (a signal the parent ignores stays ignored), and say
    INTERRUPTED until the command says otherwise."""
    _message["text"] = INTERRUPTED
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not a background job that ignores it
        signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:  # not under nohup
        signal.signal(signal.SIGHUP, _interrupt)
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, _retry)


INTERRUPTED = "interrupted; results are written all at once, so none was left half-written"
_message: dict[str, str | Callable[[], str]] = {"text": INTERRUPTED}


def on_interrupt(message: str | Callable[[], str]) -> None:
    """What to tell the user if this command is interrupted (Ctrl-C or SIGTERM): a line, or a function that says
    what was kept when the interrupt comes."""
    _message["text"] = message


def interrupted_message() -> str:
    """The line the user reads when this command is interrupted."""
    message = _message["text"]
    if isinstance(message, str):
        return message
    try:
        return message()
    except (OSError, ValueError, NvError):  # what it reads is gone or damaged: the line must still come
        return INTERRUPTED
