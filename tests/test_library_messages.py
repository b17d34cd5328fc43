"""The core speaks Python: no text of nvcli outside cli/ names an `nv` command or one of its flags.

The command line alone knows its commands and flags; a core error names the Python parameter (`NvError(...,
param="max_k")`) and the CLI spells it as the flag (`cli.app._flagged`). The commands and flags are read from the CLI
itself, so a new command or option is covered as soon as it exists.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

from nvcli.cli.app import COMMANDS, app, load

ROOT = Path(__file__).resolve().parents[1] / "nvcli"

# Text that is data, not a message, by (module, the command or flag it names): each with the reason it may stay.
ALLOWED = {
    ("report/page.py", "nv report"): "the generator mark by which nv knows a page it may replace",
    ("report/build.py", "nv report"): "the page's title names the tool that made it",
    ("report/build.py", "--no-plot"): "the recorded command line, edited into the one that makes the figures again",
    ("report/build.py", "nv eval"): "the page says which command's file the overview's accuracy comes from",
    ("report/catalog.py", "nv attribute"): "a section's title names the command that makes it",
    ("report/catalog.py", "nv sparsify"): "a section's title names the command that makes it",
}


def _commands_and_flags() -> tuple[set[str], set[str]]:
    """Every command name (subcommands too) and every long flag of the `nv` command line."""
    names, flags = set(COMMANDS), set()

    def walk(command: object) -> None:
        for param in getattr(command, "params", []):
            flags.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("--"))
        for name, sub in getattr(command, "commands", {}).items():
            names.add(name)
            walk(sub)

    walk(typer.main.get_command(app))
    for name in COMMANDS:
        walk(load(name))
    return names, flags - {"--help"}


def _pattern() -> re.Pattern[str]:
    names, flags = _commands_and_flags()
    longest_first = lambda words: "|".join(map(re.escape, sorted(words, key=len, reverse=True)))  # noqa: E731
    return re.compile(rf"(?<![\w-])(?:nv (?:{longest_first(names)})|{longest_first(flags)})(?![\w-])")


def _texts(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module (f-strings' literal parts included), docstrings left out: they document."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def _found(pattern: re.Pattern[str]) -> list[tuple[str, int, str]]:
    """(module, line, the command or flag) for each naming outside cli/."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        if not module.startswith("cli/"):
            found += [(module, line, m.group(0)) for line, text in _texts(path) for m in pattern.finditer(text)]
    return found


def test_the_scan_knows_the_commands_and_flags() -> None:
    names, flags = _commands_and_flags()
    assert {"train", "eval", "dissect-map", "data", "make", "stylize"} <= names
    assert {"--max-k", "--units-per-class", "--run", "--force", "--no-plot", "--conflicts", "--debug"} <= flags
    pattern = _pattern()
    assert pattern.search("was not written by nv train") and pattern.search("raise --max-k")
    assert not pattern.search("nv trains") and not pattern.search("pass max_k") and not pattern.search("--max-kay")


def test_no_library_text_names_a_command_or_a_flag() -> None:
    found = _found(_pattern())
    named = [f"{module}:{line}: {what}" for module, line, what in found if (module, what) not in ALLOWED]
    assert not named, "the core names commands or flags (name the Python parameter, param=...):\n" + "\n".join(named)
    unused = set(ALLOWED) - {(module, what) for module, _, what in found}
    assert not unused, f"allowed but no longer there (remove from ALLOWED): {sorted(unused)}"
