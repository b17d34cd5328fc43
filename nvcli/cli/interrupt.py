"""How signals end a command: Ctrl-C, SIGTERM and SIGHUP all raise KeyboardInterrupt, but never mid-import.

Some libraries guard their imports (and some of their calls) with a bare `except:`; an interrupt raised
while torch or numpy is being imported can be swallowed there (the command then runs on as if nothing
happened) or leave a module half-imported (an internal error follows). So while a module is being
imported the interrupt is held and raised, via a short timer, as soon as the import is over; and until
the command has ended (`settle`), the timer raises it again wherever it was swallowed, unless it is
already on its way (being handled, or the process exiting).
"""
from __future__ import annotations

import signal
import sys
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


def _on_its_way() -> bool:
    """Whether an interrupt, or what it became (Click's Abort, an exit), is being handled: raising again would cut
    its cleanup short."""
    exc = sys.exc_info()[1]
    while exc is not None:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _interrupt(signum: int, frame: Any) -> None:
    _pending["signal"] = True
    _retry(signum, frame)


def _retry(signum: int, frame: Any) -> None:
    if not _pending["signal"]:
        return
    if not hasattr(signal, "setitimer"):  # no timer to come back with: raise once
        _pending["signal"] = False
        raise KeyboardInterrupt
    signal.setitimer(signal.ITIMER_REAL, _RETRY_S)  # back soon: held now, or swallowed after raising
    if not _importing(frame) and not _on_its_way():
        raise KeyboardInterrupt


def settle() -> None:
    """The command has ended (or reported its interrupt): stop raising the interrupt again."""
    _pending["signal"] = False
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)


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
