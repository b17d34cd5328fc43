"""Every option of every command reaches the request the command builds (issue 19).

Generated from the commands themselves: for each command of `nv` (and `nv data`), each option is given a valid
value other than its default, and the parsed request (commands parse into a frozen dataclass and execute it later)
must differ from the one built without it. An option that applies only with another (a sound dataset's setting,
`--run` of `nv train` without `--resume`) is refused alone with a one-line error; it must then reach the request
in a context where it applies: with `--resume`, or with some dataset of the registry (and a --data-dir). A flag
dropped anywhere between the command line and the request fails here. Parsing touches no file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from nvcli.cli.app import app
from nvcli.errors import NvError

ROOT = typer.main.get_command(app)
# Values where the type alone does not tell a valid one.
VALUES = {"arch": "vgg11", "data": "tones", "head": "sparse5", "class_": "red", "classes": "red,green",
          "data_option": "train_per_class=7", "categories": "color", "category": "color,texture", "name": "contract",
          "max_drop": 0.02,
          "fraction": 0.05, "quantile": 0.01, "iou_threshold": 0.1, "alpha": 0.5, "ratio": 0.05, "momentum": 0.5,
          "gamma": 0.5, "label_smoothing": 0.1, "lr": 0.01, "weight_decay": 0.01, "head_lr_scale": 0.5,
          "head_init_scale": 0.5, "head_weight_decay": 0.01, "head_l1": 0.01, "head_warmup": 1, "epochs": 3}


def _commands() -> list[tuple[str, Any]]:
    """Every command as (name, click command), `nv data`'s as 'data NAME'."""
    found = []
    for name in ROOT.list_commands(None):
        command = ROOT.load(name)
        if hasattr(command, "commands"):
            found += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
        else:
            found.append((name, command))
    return found


def _arguments(command: Any, tmp: Path) -> list[str]:
    """Values for the required arguments and options, the same in every call."""
    args = [str(tmp / p.name) if p.name.startswith("run") else "shapes"
            for p in command.params if p.param_type_name == "argument"]
    return args + [a for p in command.params if p.param_type_name == "option" and p.required
                   for a in (p.opts[0], str(tmp / p.name))]


def _value(param: Any, tmp: Path) -> list[str]:
    """A valid value other than the default, as command-line words."""
    name, default = param.name, param.default
    if param.is_flag:
        return [param.secondary_opts[0] if default and param.secondary_opts else param.opts[0]]
    kind = param.type.name  # click's type: 'choice', 'path', 'int', 'int range', 'float', 'str'
    if name in VALUES:
        value: Any = VALUES[name]
    elif kind == "choice":
        value = [c for c in param.type.choices if c != getattr(default, "value", default)][-1]  # not a dataset's
    elif kind == "path":
        value = tmp / f"given-{name}"
    elif kind.startswith("int"):
        low = getattr(param.type, "min", None)
        value = (default if isinstance(default, int) else max(low or 0, 16 if "size" in name else 1)) + 1
    elif kind.startswith("float"):
        value = default / 2 if isinstance(default, float) and default else 0.5
    else:
        value = "x"
    return [param.opts[0], str(value)]


def _request(command: str, args: list[str]) -> Any:
    return ROOT.main([*command.split(), *args], standalone_mode=False)


def _cases() -> list[tuple[str, str]]:
    return [(name, p.name) for name, command in _commands() for p in command.params
            if p.param_type_name == "option" and not p.required and p.name != "help"]


def _contexts(command: Any, tmp: Path) -> list[list[str]]:
    """Options under which another may apply: each of the command's switches and named values, a recurrent
    architecture, and every dataset (with and without a root)."""
    from nvcli.data.registry import readable

    own = [_value(p, tmp) for p in command.params if p.param_type_name == "option" and not p.required
           and (p.is_flag or p.name in VALUES) and p.name != "help"]
    datasets = [["--data", e.name, *extra] for e in readable() for extra in ([], ["--data-dir", str(tmp / "root")])]
    recurrent = [["--arch", "gru"]] if any(p.name == "arch" for p in command.params) else []  # --hidden-size etc.
    return [*own, *recurrent, *(datasets if any(p.name == "data" for p in command.params) else [])]


def _outcome(command: str, args: list[str]) -> Any:
    """The request `nv command args` parses into, or the NvError that refuses it."""
    try:
        return _request(command, args)
    except NvError as refused:
        return refused


def check_option(command: str, option: str, tmp: Path) -> None:
    """Fail unless `option` of `command`, given a non-default value, changes what the command parses into (a
    refusal into a request, or one request into another); only where it is refused may it apply in a context."""
    cmd = dict(_commands())[command]
    param = next(p for p in cmd.params if p.name == option)
    base, given = _arguments(cmd, tmp), _value(param, tmp)
    outcomes = []
    for context in [[], *_contexts(cmd, tmp)]:
        before, after = _outcome(command, [*base, *context]), _outcome(command, [*base, *context, *given])
        if not isinstance(after, NvError):
            assert hasattr(after, "execute"), f"nv {command} parsed into {after!r}, not a request"
            assert isinstance(before, NvError) or after != before, \
                f"nv {command} {' '.join([*context, *given])}: the option did not reach the request"
            return
        outcomes.append(after)  # refused here: it may apply in another context
    refusals = "; ".join(str(e) for e in outcomes if isinstance(e, NvError))[:300]
    raise AssertionError(f"nv {command} {' '.join(given)} is refused in every context ({refusals})")


@pytest.mark.parametrize("command, option", _cases(), ids=[f"{c}:{o}" for c, o in _cases()])
def test_every_option_reaches_the_request(command: str, option: str, tmp_path: Path) -> None:
    check_option(command, option, tmp_path)


def test_the_contract_covers_every_command_the_readme_lists() -> None:
    """The commands a user is told about (README's table) are the commands whose options are checked."""
    import re

    table = (Path(__file__).resolve().parents[1] / "README.md").read_text().split("## Commands", 1)[1]
    listed = set()
    for first, rest in re.findall(r"^\| `nv ([a-z-]+)([^`|]*)", table, flags=re.M):
        subs = re.findall(r"\b(list|info|make|stylize)\b", rest) if first == "data" else []
        listed |= {f"data {s}" for s in subs} if subs else {first}
    assert listed == {c for c, _ in _cases()} == {name for name, _ in _commands()}
    assert len(_cases()) > 150


def test_a_dropped_option_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bug of issue 19 planted again: nv multiview losing --image-size on its way to the request."""
    from nvcli.cli import multiview

    real = multiview.training_request

    def drop_image_size(ctx: typer.Context, **values: Any) -> Any:
        return real(ctx, **{**values, "data_settings": {**values["data_settings"], "image_size": None}})

    monkeypatch.setattr(multiview, "training_request", drop_image_size)
    with pytest.raises(AssertionError, match="did not reach the request"):
        check_option("multiview", "image_size", tmp_path)
    check_option("train", "image_size", tmp_path)  # the other command still passes
