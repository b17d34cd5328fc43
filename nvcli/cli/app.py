"""The `nv` command: a Typer app whose commands parse options into requests; `run()` executes them.

Every command module imports only typer and nv's torch-free modules at start-up; the core is imported when a
request executes, so `nv --help` and option errors answer without loading torch.
"""
from __future__ import annotations

import logging
import sys
import warnings
from typing import Annotated, Any

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


class Commands(typer.core.TyperGroup):
    """nv's commands from COMMANDS: listed by name and help, each built when it runs or shows its help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = {name: typer.core.TyperCommand(name, help=summary)  # enough to list it, until load()
                         for name, (_, _, summary) in COMMANDS.items()}
        self.built: set[str] = set()

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, _, rest = super().resolve_command(ctx, args)
        return name, self.load(name), rest

    def load(self, name: str) -> Any:
        """Command `name`, built from its module (imported now)."""
        if name not in self.built:
            import importlib

            module, attribute, summary = COMMANDS[name]
            target = getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
            if isinstance(target, typer.Typer):
                command = typer.main.get_group(target)
                command.help = summary
            else:
                info = typer.models.CommandInfo(name=name, callback=target, help=summary)
                command = typer.main.get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                                           rich_markup_mode=app.rich_markup_mode)
            self.commands[name] = command
            self.built.add(name)
        return self.commands[name]


app = typer.Typer(
    name="nv",
    cls=Commands,
    help="NeuroView: explainable-by-design deep networks. Train, evaluate and explain from the weights.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state: dict[str, Any] = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"nv {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print nv's version and exit.")] = False,
) -> None:
    """nv: make deep networks explainable by design (the NeuroView architecture)."""
    _state["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose or debug else logging.WARNING,
                        format="nv: %(message)s", stream=sys.stderr)


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


def _flagged(exc: NvError) -> str:
    """The error's message with its Python parameters (`max_k`) spelled as the command's flags (`--max-k`)."""
    import re

    text = _one_line(exc)
    command = typer.main.get_command(app)
    for word in sys.argv[1:3]:
        if isinstance(command, Commands) and word in COMMANDS:
            command = command.load(word)
        elif word in getattr(command, "commands", {}):
            command = command.commands[word]
    spelled = {p.name: p.opts[0] for p in getattr(command, "params", []) if p.opts}
    for param in exc.params:
        if param in spelled:
            text = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", spelled[param], text, count=1)
    return text


def _choice_message(exc: Exception) -> str | None:
    """For a value outside an option's choices: the valid ones and the closest, like every other nv error."""
    from ..errors import choice_error

    param = getattr(exc, "param", None)
    choices = getattr(getattr(param, "type", None), "choices", None)
    if not choices or not param.opts:
        return None
    words = sys.argv[1:]
    given = [words[i + 1] for i, w in enumerate(words[:-1]) if w in param.opts]
    given += [w.split("=", 1)[1] for w in words if w.startswith(tuple(f"{o}=" for o in param.opts))]
    wrong = [v for v in given if v not in [str(getattr(c, "value", c)) for c in choices]]
    return str(choice_error(f"{param.opts[0]} value", wrong[-1], [getattr(c, "value", c) for c in choices])) \
        if wrong else None


def _fail(message: str, code: int, label: str = "") -> None:
    from rich.markup import escape

    err.print(f"[bold red]{label}[/]{escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def _one_process() -> None:
    """Refuse a command that does not share its work when torchrun started several processes (each would do all of
    it, and race to write)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        name = next((w for w in sys.argv[1:] if w in COMMANDS), "this command")
        raise NvError(f"nv {name} runs in one process; start it without torchrun (docs/scale.md lists the commands "
                      "that share their work across processes)")


def run() -> None:
    """Entry point: parse, execute the request, and turn user errors into one line and a non-zero exit."""
    if sys.stdout is None or sys.stdout.closed:  # started with stdout closed (`nv eval >&-`): refuse before any work
        _fail("standard output is closed; nv prints its results there (redirect it to a file or /dev/null instead)",
              2, "error: ")
    warnings.showwarning = _warn
    try:
        interrupt.install()  # SIGTERM and SIGHUP end a command like Ctrl-C
        request = app(standalone_mode=False)  # the command's request, or typer.Exit's code
        if hasattr(request, "execute") and not getattr(request, "parallel", False):
            _one_process()
        code = request.execute() if hasattr(request, "execute") else request
    except NvError as exc:
        if _state["debug"]:
            raise
        _fail(_flagged(exc), 2, "error: ")
    except (KeyboardInterrupt, typer.Abort):
        _fail(interrupt.interrupted_message(), 130)
    except BrokenPipeError:  # `nv data list | head -1`: the reader left; say nothing, as Click does
        sys.stdout = None  # type: ignore[assignment]  (nothing more can be written there)
        sys.exit(1)
    except typer.Exit as exc:  # raised while a request executes (e.g. nv eval --min-acc)
        code = exc.exit_code
    except typer.TyperException as exc:  # usage errors (unknown option, bad value) in standalone_mode=False
        message = _choice_message(exc) or (exc.format_message() if hasattr(exc, "format_message") else str(exc))
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
        _fail(interrupt.interrupted_message(), 130)
    if isinstance(code, int) and code:
        sys.exit(code)
