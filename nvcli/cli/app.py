"""The `nv` command: a Typer app whose commands parse options into requests; `run()` executes them.

Every command module imports only typer and nv's torch-free modules at start-up; the core is imported when a
request executes, so `nv --help` and option errors answer without loading torch.
"""
from __future__ import annotations

import functools
import logging
import sys
import warnings
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, NoReturn

import typer

from .. import __version__
from ..errors import NvError
from . import interrupt
from .render import err, note

# Every command: its module in nvcli.cli, the function there that parses its options into a request (or, for a group,
# its Typer app), and its help, which `nv --help` lists. A module is imported only when its command runs or shows its
# own help, so `nv --help` reads this table alone.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "convert": ("convert", "convert", "Convert a standard network to NeuroView: print its nonlinear layers and unit "
                "counts."),
    "train": ("train", "train", "Train a NeuroView network jointly from scratch (or --baseline: the standard "
              "network)."),
    "eval": ("evaluate", "evaluate", "Evaluate runs on their validation split; write eval.csv, per_class.csv, "
             "confusion.csv/.png into each."),
    "perturb": ("perturb", "perturb", "Validation accuracy per class with colour channels zeroed; write "
                "perturb.csv/.png, perturb_examples.png."),
    "weights": ("weights", "weights", "Show a class's head weights by unit and layer (or by time step); write "
                "weights CSVs, figures."),
    "explain": ("explain", "explain", "Explain one prediction; write explain_<input>.csv, _layers.csv, _classes.csv "
                "and explain_<input>.png."),
    "compare": ("compare", "compare", "Compare accuracy and per-layer weight shares of two runs; write compare*.csv "
                "and compare.png."),
    "dissect-map": ("dissect", "dissect_map", "Label every unit with a concept and map each class to the concepts "
                    "its weights favour."),
    "multiview": ("multiview", "multiview", "Train a multi-view NeuroView network (or --baseline: MVCNN) and show "
                  "which views drive each class."),
    "ablate": ("ablate", "ablate", "Remove each class's top-k, bottom-k, random k units; write ablation.csv, "
               "ablation_summary.csv, ablation.png."),
    "attribute": ("attribute", "attribute", "NeuroView's exact maps against Captum's Grad-CAM, Integrated Gradients, "
                  "Occlusion; write attribution.csv/.png."),
    "bias": ("bias", "bias", "Measure the shape bias on cue-conflict images; write bias.csv and bias.png into the "
             "run."),
    "sparsify": ("sparsify", "sparsify", "Fit a sparse head over every unit's code; write sparse_path.csv/.png and "
                 "heads/NAME.pt/.json."),
    "codes": ("codes", "codes", "Compute a run's code store for a split (shard by shard; under torchrun, across "
              "processes); print where it is."),
    "report": ("report", "report", "Write one HTML page showing everything the run holds (repeat --run for runs "
               "side by side); print its path."),
    "data": ("data", "app", "List, describe, write and stylise datasets."),
}


@dataclass
class Session:
    """What Click learns while it parses one `nv` command line, for the errors that executing its request may raise:
    whether --debug was given, the command's path (`nv eval`), and the flag that spells each Python parameter."""

    debug: bool = False
    path: str = "nv"
    flags: dict[str, str] = field(default_factory=dict)


@functools.cache
def load(name: str) -> Any:
    """Command `name` as Click runs it, built from its module (imported now)."""
    import importlib

    module, attribute, summary = COMMANDS[name]
    target = getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
        command.help = summary
        return _flags_as_flags(command)
    single = typer.Typer(add_completion=False)  # an app of one command is that command
    single.command(name, help=summary)(target)
    return _flags_as_flags(typer.main.get_command(single))


def _flags_as_flags(command: Any) -> Any:
    """`command` (and its subcommands) with nothing shown beside a flag in the help: Typer 0.29 shows `<bool>` there,
    `--help` included, as if a flag took a value (Click's `metavar` is what the help shows beside an option)."""
    for param in [*command.params, command.get_help_option(typer.Context(command))]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for subcommand in getattr(command, "commands", {}).values():
        _flags_as_flags(subcommand)
    return command


def _forward(name: str) -> Any:
    """What `nv NAME` runs: the command built by load(NAME), given the rest of the command line (`nv NAME --help`
    included: this stand-in has no options of its own, so `nv --help` lists the commands without building one)."""

    def forward(ctx: typer.Context) -> Any:
        command, session = load(name), ctx.ensure_object(Session)
        session.path = ctx.command_path
        session.flags = {p.name: p.opts[0] for c in [command, *getattr(command, "commands", {}).values()]
                         for p in c.params if p.opts and p.name}
        # `nv data` alone shows its help, as `nv` alone does
        args = ctx.args or (["--help"] if hasattr(command, "commands") else [])
        return command.main(args, prog_name=ctx.command_path, standalone_mode=False, obj=session)

    return forward


app = typer.Typer(
    name="nv",
    help="NeuroView: explainable-by-design deep networks. Train, evaluate and explain from the weights.",
    pretty_exceptions_enable=False,
    add_completion=False,
)
for _name, (_, _, _summary) in COMMANDS.items():
    app.command(_name, help=_summary, add_help_option=False,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                  "allow_interspersed_args": False})(_forward(_name))


def _version(value: bool) -> None:
    if value:
        print(f"nv {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print nv's version and exit.")] = False,
) -> None:
    """nv: make deep networks explainable by design (the NeuroView architecture)."""
    ctx.ensure_object(Session).debug = debug
    logging.basicConfig(level=logging.INFO if verbose or debug else logging.WARNING,
                        format="nv: %(message)s", stream=sys.stderr)
    if ctx.invoked_subcommand is None:  # `nv` alone asks what nv does: its help, as `nv --help` shows it
        typer.echo(ctx.get_help())
        raise typer.Exit()


def _warn(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
          line: str | None = None) -> None:
    """A library's warning as one line on stderr, without the source path and line Python would add (a note: under
    torchrun rank 0's alone, every process computes the same results)."""
    note(f"warning: {' '.join(str(message).split())}")


def _one_line(exc: BaseException) -> str:
    """The message, also when a DataLoader worker re-raised it wrapped in its traceback."""
    text = str(exc).strip()
    if "\nOriginal Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(text.split()) or type(exc).__name__


def _flagged(exc: BaseException, session: Session) -> str:
    """An NvError's message with its Python parameters (`max_k`) spelled as the command's flags (`--max-k`)."""
    import re

    text = _one_line(exc)
    for param in getattr(exc, "params", ()):
        if param in session.flags:
            text = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", session.flags[param], text, count=1)
    return text


def _usage(exc: BaseException, session: Session) -> str:
    """Click's message for a command line it cannot parse, and where the command's options are listed."""
    context = getattr(exc, "ctx", None)
    message = exc.format_message() if isinstance(exc, typer.TyperException) else str(exc)
    return f"{_one_line(Exception(message))} (see {context.command_path if context else session.path} --help)"


def _reader_left(exc: BaseException, session: Session) -> None:
    """Nothing: the reader of stdout left (`nv data list | head -1`), as Click says nothing then."""
    sys.stdout = None  # type: ignore[assignment]  (nothing more can be written there)


def _undecodable(exc: BaseException, session: Session) -> str:
    """A text file changed by hand, read outside nv's readers (which name the file)."""
    assert isinstance(exc, UnicodeDecodeError)
    return (f"a file that nv reads as UTF-8 text holds byte {exc.object[exc.start:exc.start + 1]!r} at offset "
            f"{exc.start}; restore or remove the damaged file")


def _refused_by_system(exc: BaseException, session: Session) -> str:
    """The system refused (permissions, a full disk, a vanished file): not an nv bug."""
    assert isinstance(exc, OSError)
    return f"{exc.strerror or _one_line(exc)}" + (f" ('{exc.filename}')" if exc.filename else "")


def _internal(exc: BaseException, session: Session) -> str:
    return f"{type(exc).__name__}: {_one_line(exc)} (run with --debug for the traceback)"


# How a failure ends nv, the first row whose exception type matches: the exceptions; whether --debug shows their
# traceback instead; the label before the line; the exit status (None: the exception's own); the line (None: silent).
ENDINGS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], bool, str, int | None,
                     Callable[[BaseException, Session], str | None]], ...] = (
    (NvError, True, "error: ", 2, _flagged),
    ((KeyboardInterrupt, typer.Abort), False, "", 130, lambda exc, session: interrupt.interrupted_message()),
    (BrokenPipeError, False, "", 1, _reader_left),
    (typer.TyperException, False, "error: ", None, _usage),  # usage errors (unknown option, bad value)
    (UnicodeDecodeError, True, "error: ", 2, _undecodable),
    (OSError, True, "error: ", 2, _refused_by_system),
    (Exception, True, "internal error: ", 1, _internal),
)


def _end(exc: BaseException, session: Session) -> NoReturn:
    """Print `exc` as its row of ENDINGS says and exit (with --debug, raise it where the row shows tracebacks)."""
    if "Original Traceback" in str(exc) and "NvError" in str(exc):  # an nv error inside a DataLoader worker
        exc = NvError(_one_line(exc))
    shows, label, code, line = next((s, lab, c, f) for kind, s, lab, c, f in ENDINGS if isinstance(exc, kind))
    if shows and session.debug:
        raise
    message = line(exc, session)
    if message is not None:
        _print_error(message, label)
    sys.exit(getattr(exc, "exit_code", 2) if code is None else code)


def _print_error(message: str, label: str = "error: ") -> None:
    from rich.markup import escape

    err.print(f"[bold red]{label}[/]{escape(message)}", highlight=False, soft_wrap=True)


def _one_process(session: Session) -> None:
    """Refuse a command that does not share its work when torchrun started several processes (each would do all of
    it, and race to write): rank 0 says so and exits with status 2, so torchrun's does too."""
    import os

    from ..runs.lock import writer_process

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if writer_process():
            _print_error(f"{session.path} runs in one process; start it without torchrun (docs/scale.md lists the "
                         "commands that share their work across processes)")
            sys.exit(2)
        # The others end quietly, with status 0: torchrun stops every process when one fails, and one failing first
        # would often stop rank 0 before it said why.
        sys.exit(0)


def run() -> None:
    """Entry point: parse, execute the request, and turn user errors into one line and a non-zero exit."""
    if sys.stdout is None or sys.stdout.closed:  # started with stdout closed (`nv eval >&-`): refuse before any work
        _print_error("standard output is closed; nv prints its results there (redirect it to a file or /dev/null "
                     "instead)")
        sys.exit(2)
    warnings.showwarning = _warn
    session = Session()
    try:
        interrupt.install()  # SIGTERM and SIGHUP end a command like Ctrl-C
        command = _flags_as_flags(typer.main.get_command(app))
        request = command.main(prog_name="nv", standalone_mode=False, obj=session)  # the request, or Exit's code
        if hasattr(request, "execute") and not getattr(request, "parallel", False):
            _one_process(session)
        code = request.execute() if hasattr(request, "execute") else request
    except typer.Exit as exc:  # raised while a request executes (e.g. nv eval --min-acc)
        code = exc.exit_code
    except (Exception, KeyboardInterrupt) as exc:
        interrupt.settle()
        _end(exc, session)
    finally:
        interrupt.settle()  # the command is over: an interrupt it swallowed is not raised again
        from ..runs.lock import release_all

        release_all()  # the run locks this command took (open_run)
    if code == 130:  # Ctrl-C inside a command that Typer caught itself
        _print_error(interrupt.interrupted_message(), "")
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
