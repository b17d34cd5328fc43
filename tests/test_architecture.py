"""The layering of docs/architecture.md, checked on the source: who imports whom, and what loads at start-up."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "nvcli"
# Lower numbers are lower layers; a module imports at module level only from lower layers or its own.
RANK = {"errors": 0, "schema": 1, "fs": 2, "models": 3, "data": 3, "runs": 4, "plots": 4, "training": 5,
        "analysis": 6, "report": 7, "api": 7, "cli": 8}
# Layers that never import these, not even inside a function: data and networks are read and written without runs,
# and figures are drawn from the frames, arrays and values they are given.
NEVER = {"data": "runs", "models": "runs", "plots": "analysis"}
CLI_START = {"errors", "schema", "models.spec", "training.config", "runs.files", "data.registry", "analysis.settings",
             "cli"}


def _unit(module: str) -> str:
    """The layer a module `a.b.c` (relative to nvcli) belongs to."""
    parts = module.split(".")
    two = ".".join(parts[:2])
    return two if two in RANK else parts[0]


def _module_level_imports(path: Path) -> list[str]:
    """nvcli modules imported at module level (not inside functions or TYPE_CHECKING blocks), relative to nvcli."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1]) + ([node.module] if node.module else [])
                names = [".".join(base)] if node.module else [".".join(base + [a.name]) for a in node.names]
            else:
                names = [node.module or ""]
            found += [n.removeprefix("nvcli.").removeprefix("nvcli") for n in names if n.startswith("nvcli")]
        elif isinstance(node, ast.Import):
            found += [a.name.removeprefix("nvcli.") for a in node.names if a.name.startswith("nvcli.")]
    return [n for n in found if n and not n.startswith("__")]  # `from .. import __version__` is the package


def _modules() -> list[tuple[str, Path]]:
    return [(".".join(p.relative_to(ROOT).with_suffix("").parts), p) for p in sorted(ROOT.rglob("*.py"))
            if p.name not in ("__init__.py", "__main__.py")]


@pytest.mark.parametrize("module, path", _modules(), ids=[m for m, _ in _modules()])
def test_layers_import_only_downwards(module: str, path: Path) -> None:
    own = _unit(module)
    for imported in _module_level_imports(path):
        other = _unit(imported)
        if own == "cli":
            assert imported.startswith("cli") or any(imported == m or imported.startswith(m + ".")
                                                     for m in CLI_START), f"{module} imports {imported} at start-up"
        elif other != own:
            assert RANK[other] < RANK[own], f"{module} ({own}) imports {imported} ({other})"


def test_no_pyplot_and_no_file_writes_from_the_command_line() -> None:
    for module, path in _modules():
        text = path.read_text()
        assert "matplotlib.pyplot" not in text and "import pyplot" not in text, module
        assert "matplotlib.use(" not in text, module
        if module.startswith("cli."):
            for writer in ("write_csv", "write_json", "write_text", "save_figure", "savefig", "save_torch"):
                assert writer not in text, f"{module} writes a file ({writer}); results own their files"


def _modules_after(argv: list[str], names: str) -> tuple[str, list[str]]:
    """`nv ARGV`'s output in a fresh interpreter, and the modules of `names` (an expression) loaded by then."""
    code = (f"import sys; sys.argv = {['nv', *argv]!r}\n"
            "from nvcli.cli.app import run\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\n"
            "import nvcli\n"
            f"import json; print(json.dumps(sorted(m for m in {names} if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    *output, loaded = result.stdout.strip().splitlines()
    return "\n".join(output), json.loads(loaded)


def test_start_up_loads_neither_torch_nor_pandas() -> None:
    _, loaded = _modules_after(["train", "--help"], "('torch', 'torchaudio', 'torchvision', 'pandas', 'numpy', "
                                                    "'matplotlib')")
    assert loaded == []


def test_the_command_list_imports_no_command() -> None:
    """`nv --help` lists every command from app.COMMANDS; a command's module is imported when it runs."""
    output, loaded = _modules_after(["--help"], "list(sys.modules)")
    assert [m for m in loaded if m.startswith("nvcli.cli.")] == ["nvcli.cli.app", "nvcli.cli.interrupt",
                                                                  "nvcli.cli.render"]
    for name in ("train", "ablate", "dissect-map", "data"):
        assert f" {name} " in output


def test_importing_nvcli_leaves_the_matplotlib_backend_alone() -> None:
    code = ("import matplotlib; matplotlib.use('svg')\n"
            "import nvcli, nvcli.plots.weights, nvcli.analysis.evaluate, nvcli.analysis.dissect.concepts\n"
            "print(matplotlib.get_backend())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "svg"


# Jupyter calls `_repr_html_` to show a run or a result, nv never does: in it (only) runs/ imports the report layer's
# notebook page, whose reading of the run leads back to runs/ (test_display_hooks_import_only_the_notebook_page).
DISPLAY_HOOK, DISPLAY_PAGE = "_repr_html_", "report.notebook"


def _all_imports(path: Path, hooks: bool = False, everywhere: bool = False) -> set[str]:
    """nvcli modules `path` imports anywhere (module level or inside functions), not under TYPE_CHECKING nor in a
    display hook; with `hooks`, those its display hooks import; with `everywhere`, those too."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]
    if path.name == "__init__.py":
        package = path.relative_to(ROOT.parent).parts[:-1]
    displays = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == DISPLAY_HOOK]
    if hooks:
        tree = ast.Module(body=displays, type_ignores=[])
    guarded = [] if everywhere else [node for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING"
                                     in ast.unparse(node.test)] + ([] if hooks else displays)
    skipped = {id(n) for node in guarded for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
            # `from . import x`, `from ..runs import files` and `from .. import runs` import x when it is a module
            found |= {f"{module}.{a.name}" if _is_module(f"{module}.{a.name}") else module for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {n.removeprefix("nvcli.") for n in found if n.startswith("nvcli.")}


def _is_module(dotted: str) -> bool:
    """Whether `nvcli.a.b` names a module or a package of the source tree."""
    path = ROOT.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _import_graph() -> dict[str, set[str]]:
    modules = dict(_modules())
    return {m: {i for i in _all_imports(p) if i in modules and i != m} for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_even_inside_functions() -> None:
    assert _cycles(_import_graph()) == []


def test_display_hooks_import_only_the_notebook_page() -> None:
    hooks = {m: _all_imports(p, hooks=True) for m, p in _modules()}
    assert {m: found for m, found in hooks.items() if found - {DISPLAY_PAGE}} == {}
    assert {m for m, found in hooks.items() if found} == {"runs.run", "runs.results"}


def test_the_cycle_check_sees_a_function_level_import() -> None:
    graph = _import_graph()
    assert "models.spec" in graph["models.archs"] or "models.spec" in graph["models.neuroview"]
    planted = {**graph, "models.spec": graph["models.spec"] | {"models.neuroview"}}
    assert _cycles(planted) != []


def _reaching_up(layer: str) -> dict[str, list[str]]:
    """The modules of `layer` (packages' __init__ included) that import from `NEVER[layer]` anywhere, and what."""
    found = {str(p.relative_to(ROOT)): sorted(i for i in _all_imports(p, everywhere=True)
                                              if i.split(".")[0] == NEVER[layer])
             for p in sorted((ROOT / layer).rglob("*.py"))}
    return {module: imported for module, imported in found.items() if imported}


@pytest.mark.parametrize("layer", sorted(NEVER))
def test_a_layer_never_imports_what_it_must_not_even_inside_functions(layer: str) -> None:
    assert _reaching_up(layer) == {}


def test_the_import_scan_sees_every_form_of_import(monkeypatch: pytest.MonkeyPatch) -> None:
    source = ("from __future__ import annotations\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
              "    from ...runs.run import Run\ndef f():\n    from ... import runs\n    import nvcli.runs.lock\n"
              "    from ...fs.atomic import write_text\n")
    planted, read = ROOT / "data" / "sound" / "planted.py", Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == planted else read(self, *a, **k))
    assert _all_imports(planted, everywhere=True) == {"runs", "runs.run", "runs.lock", "fs.atomic"}
    assert _all_imports(planted) == {"runs", "runs.lock", "fs.atomic"}


def test_the_architecture_page_names_every_module() -> None:
    page = (ROOT.parent / "docs" / "architecture.md").read_text()
    diagram = page[page.index("```"):page.index("```", page.index("```") + 3)]
    words = set(re.findall(r"[a-z_0-9]+", diagram))
    missing = [m for m, _ in _modules() if m.split(".")[-1] not in words or m.split(".")[0] not in words]
    assert missing == [], f"docs/architecture.md does not name {missing}"


def test_the_exported_functions_say_what_each_argument_is_and_what_they_return() -> None:
    import inspect

    import nvcli

    functions = {name: getattr(nvcli, name) for name in nvcli.__all__ if inspect.isfunction(getattr(nvcli, name, None))}
    assert len(functions) >= 15
    lacking = [name for name, fn in functions.items()
               if "Args:" not in (fn.__doc__ or "") or "Returns:" not in (fn.__doc__ or "")
               or any(f"{p}:" not in fn.__doc__ for p in inspect.signature(fn).parameters)]
    assert lacking == []
    classes = [name for name in nvcli.__all__ if inspect.isclass(getattr(nvcli, name, None))]
    assert [name for name in classes if not (getattr(nvcli, name).__doc__ or "").strip()] == []


MAX_FUNCTION_LINES = 60  # from `def` to the function's last line


def _commands() -> set[tuple[str, str]]:
    """(module path relative to nvcli, name) of every command's typed function, read from the CLI: its signature is
    the command's option list, so only its body counts."""
    import inspect

    from nvcli.cli.app import COMMANDS, load

    found = set()
    stack = [load(name) for name in COMMANDS]
    while stack:
        command = stack.pop()
        stack += getattr(command, "commands", {}).values()
        if command.callback is not None:
            function = inspect.unwrap(command.callback)
            found.add((Path(function.__code__.co_filename).resolve().relative_to(ROOT).as_posix(), function.__name__))
    return found


def _long_functions(commands: set[tuple[str, str]]) -> list[str]:
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = node.body[0].lineno if (module, node.name) in commands else node.lineno
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{module}:{node.lineno} {node.name} ({node.end_lineno - start + 1} lines)")
    return long


def test_no_function_is_longer_than_60_lines() -> None:
    """A long function is split into named steps; a command's signature lists its options and does not count."""
    commands = _commands()
    assert {("cli/train.py", "train"), ("cli/multiview.py", "multiview"), ("cli/data.py", "make")} <= commands
    assert _long_functions(commands) == []
