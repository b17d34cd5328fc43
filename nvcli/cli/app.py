"""The `nv` command: a Typer app whose commands are thin layers over `nvcli.core`."""
from __future__ import annotations

import logging
import sys

import typer

from ..core.errors import NvError
from .render import err

app = typer.Typer(
    name="nv",
    help="NeuroView: explainable-by-design deep networks. Train, evaluate and explain from the weights.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state = {"debug": False}  # set by the --debug option; read when an error reaches run()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
) -> None:
    """nv: make deep networks explainable by design (the NeuroView architecture)."""
    _state["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose or debug else logging.WARNING,
                        format="nv: %(message)s", stream=sys.stderr)


def _one_line(exc: NvError) -> str:
    """The user's message, also when a DataLoader worker re-raised it wrapped in its traceback."""
    text = str(exc).strip()
    if "\nOriginal Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text


def _register() -> None:
    from . import commands  # noqa: F401  (registers every command on `app`)


def run() -> None:
    """Entry point: run the app, turning user errors into one line and a non-zero exit."""
    _register()
    try:
        code = app(standalone_mode=False)  # returns typer.Exit's code instead of raising it
    except NvError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {_one_line(exc)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(1)
    except typer.TyperException as exc:  # usage errors (unknown option, bad value) in standalone_mode=False
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                  highlight=False, soft_wrap=True)
        sys.exit(1)
    if code == 130:  # Typer turns Ctrl-C into exit code 130
        err.print("interrupted; every file written so far is complete (resume training with 'nv train --resume')",
                  highlight=False, soft_wrap=True)
    if isinstance(code, int) and code:
        sys.exit(code)
