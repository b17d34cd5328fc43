"""The one exception type for user mistakes: the CLI prints its message on one line and exits 2."""
from __future__ import annotations


class NvError(Exception):
    """A problem with the user's input, explained in one line (what was given, what would be valid).

    Args:
        message: the one line the user reads.
        param: the Python parameter(s) the message speaks of (e.g. `max_k`), so the command line can name
            its flags instead; kept as `params`.
    """

    def __init__(self, message: str, *, param: str | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.params = (param,) if isinstance(param, str) else tuple(param)


def describe(exc: BaseException) -> str:
    """`Type: first line of the message` (the OS's own text for system errors), for one-line messages."""
    text = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def choice_error(what: str, value: object, valid: "list[str] | tuple[str, ...]", *,
                 param: str | tuple[str, ...] = ()) -> NvError:
    """An NvError for a value outside a known set, with the closest valid name suggested (`param` as in NvError)."""
    import difflib

    valid = [str(v) for v in valid]
    close = difflib.get_close_matches(str(value), valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    shown = ", ".join(valid[:40]) + (", ..." if len(valid) > 40 else "")
    return NvError(f"unknown {what} '{value}'; valid: {shown}.{hint}", param=param)
