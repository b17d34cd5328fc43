"""The `nv` command: a Typer app whose commands are thin layers over the core packages.

Every command module imports only typer and nv's torch-free modules at start-up; the core is imported
inside the command, so `nv --help` and argument errors answer without loading torch.
"""
from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

import typer

from ..errors import NvError
from . import interrupt
from .render import err

app = typer.Typer(
    name="nv",
    help="NeuroView: explainable-by-design deep networks. Train, evaluate and explain from the weights.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
INTERRUPTED = "interrupted; results are written all at once, so none was left half-written"
_state: dict[str, Any] = {"debug": False, "interrupted": INTERRUPTED}


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
) -> None:
    """nv: make deep networks explainable by design (the NeuroView architecture)."""
    _state["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose or debug else logging.WARNING,
                        format="nv: %(message)s", stream=sys.stderr)


def _warn(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
          line: str | None = None) -> None:
    """A library's warning as one line on stderr, without the source path and line Python would add."""
    err.print(f"warning: {' '.join(str(message).split())}", highlight=False, soft_wrap=True, markup=False)


def on_interrupt(message: str) -> None:
    """What to tell the user if this command is interrupted (Ctrl-C or SIGTERM)."""
    _state["interrupted"] = message


def _one_line(exc: BaseException) -> str:
    """The message, also when a DataLoader worker re-raised it wrapped in its traceback."""
    text = str(exc).strip()
    if "\nOriginal Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(text.split()) or type(exc).__name__


def _fail(message: str, code: int, label: str = "") -> None:
    from rich.markup import escape

    err.print(f"[bold red]{label}[/]{escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def run() -> None:
    """Entry point: run the app, turning user errors into one line and a non-zero exit."""
    if sys.stdout is None or sys.stdout.closed:  # started with stdout closed (`nv eval >&-`): refuse before any work
        _fail("standard output is closed; nv prints its results there (redirect it to a file or /dev/null instead)",
              2, "error: ")
    warnings.showwarning = _warn
    try:
        interrupt.install()  # SIGTERM and SIGHUP end a command like Ctrl-C
        from . import commands  # noqa: F401  (registers every command on `app`)

        code = app(standalone_mode=False)  # returns typer.Exit's code instead of raising it
    except NvError as exc:
        if _state["debug"]:
            raise
        _fail(_one_line(exc), 2, "error: ")
    except (KeyboardInterrupt, typer.Abort):
        _fail(_state["interrupted"], 130)
    except typer.TyperException as exc:  # usage errors (unknown option, bad value) in standalone_mode=False
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        command = getattr(getattr(exc, "ctx", None), "command_path", "nv").replace(sys.argv[0], "nv")
        _fail(f"{_one_line(exc if not message else Exception(message))} (see {command} --help)",
              getattr(exc, "exit_code", 2), "error: ")
    except UnicodeDecodeError as exc:  # a text file changed by hand, read outside nv's readers (which name the file)
        if _state["debug"]:
            raise
        _fail(f"a file that nv reads as UTF-8 text holds byte {exc.object[exc.start:exc.start + 1]!r} at offset "
              f"{exc.start}; restore or remove the damaged file", 2, "error: ")
    except OSError as exc:  # the system refused (permissions, a full disk, a vanished file): not an nv bug
        if _state["debug"]:
            raise
        where = f" ('{exc.filename}')" if exc.filename else ""
        _fail(f"{exc.strerror or _one_line(exc)}{where}", 2, "error: ")
    except Exception as exc:
        if _state["debug"]:
            raise
        if "Original Traceback" in str(exc) and "NvError" in str(exc):  # an nv error inside a DataLoader worker
            _fail(_one_line(exc), 2, "error: ")
        _fail(f"{type(exc).__name__}: {_one_line(exc)} (run with --debug for the traceback)", 1, "internal error: ")
    finally:
        from ..runs.lock import release_all

        release_all()  # the run locks this command took (open_run)
    if code == 130:  # Ctrl-C inside a command that Typer caught itself
        _fail(_state["interrupted"], 130)
    if isinstance(code, int) and code:
        sys.exit(code)
