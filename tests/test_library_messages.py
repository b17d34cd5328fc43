"""The core speaks Python: no text of nvcli outside cli/ names an `nv` command or a flag.

The command line alone knows its commands and flags; a core error names the Python parameter (`NvError(...,
param="max_k")`) and the CLI spells it as the flag (`cli.app._flagged`). The commands are read from the CLI itself, so
a new command is covered as soon as it exists; a flag is any `--name` (the test checks that this covers every flag the
CLI has). Docstrings may name commands (they document how the library serves them), never flags.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

from nvcli.cli.app import COMMANDS, app, load

ROOT = Path(__file__).resolve().parents[1] / "nvcli"
FLAG = r"--[A-Za-z][\w-]*"

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
    return names, flags


def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """What names a command (`nv eval`), and what names a flag (`--max-k`)."""
    names, _ = _commands_and_flags()
    words = "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
    return re.compile(rf"(?<![\w-])nv (?:{words})(?![\w-])"), re.compile(rf"(?<![\w-]){FLAG}")


def _texts(path: Path) -> list[tuple[int, str, bool]]:
    """The string literals of a module (f-strings' literal parts included): (line, text, whether a docstring)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value, id(node) in docstrings) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _found(command: re.Pattern[str], flag: re.Pattern[str]) -> list[tuple[str, int, str]]:
    """(module, line, the command or flag) for each naming outside cli/."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        if module.startswith("cli/"):
            continue
        for line, text, docstring in _texts(path):
            named = [*flag.finditer(text), *([] if docstring else command.finditer(text))]
            found += [(module, line, m.group(0)) for m in named]
    return found


def test_the_scan_knows_the_commands_and_flags() -> None:
    names, flags = _commands_and_flags()
    assert {"train", "eval", "dissect-map", "data", "make", "stylize"} <= names
    assert {"--max-k", "--units-per-class", "--run", "--force", "--no-plot", "--conflicts", "--debug"} <= flags
    command, flag = _patterns()
    assert [f for f in flags if not flag.fullmatch(f)] == []
    assert command.search("was not written by nv train") and flag.search("raise --max-k")
    assert not command.search("nv trains") and not command.search("nv writes") and not flag.search("pass max_k")


def test_no_library_text_names_a_command_or_a_flag() -> None:
    found = _found(*_patterns())
    named = [f"{module}:{line}: {what}" for module, line, what in found if (module, what) not in ALLOWED]
    assert not named, "the core names commands or flags (name the Python parameter, param=...):\n" + "\n".join(named)
    unused = set(ALLOWED) - {(module, what) for module, _, what in found}
    assert not unused, f"allowed but no longer there (remove from ALLOWED): {sorted(unused)}"
