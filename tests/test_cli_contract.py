"""Every option of every command reaches the request the command builds (issue 19).

Generated from the commands themselves: for each command of `nv` (and `nv data`), each option is given a valid
value other than its default, and the parsed request (commands parse into a frozen dataclass and execute it later)
must differ from the one built without it. An option that applies only with another (a sound dataset's setting,
`--run` of `nv train` without `--resume`) is refused alone with a one-line error; it must then reach the request
in a context where it applies: with `--resume`, or with some dataset of the registry (and a --data-dir). A flag
dropped anywhere between the command line and the request fails here. Parsing touches no file.
"""
from __future__ import annotations

import inspect
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import typer

from nvcli.cli.app import COMMANDS, app, load
from nvcli.errors import NvError

ROOT = typer.main.get_command(app)
# Values where the type alone does not tell a valid one.
VALUES = {"arch": "vgg11", "data": "tones", "head": "sparse5", "class_": "red", "classes": "red,green",
          "data_option": "train_per_class=7", "categories": "color", "category": "color,texture", "name": "contract",
          "max_drop": 0.02,
          "fraction": 0.05, "quantile": 0.01, "iou_threshold": 0.1, "alpha": 0.5, "ratio": 0.05, "momentum": 0.5,
          "gamma": 0.5, "label_smoothing": 0.1, "lr": 0.01, "weight_decay": 0.01, "head_lr_scale": 0.5,
          "head_init_scale": 0.5, "head_weight_decay": 0.01, "head_l1": 0.01, "head_warmup": 1, "epochs": 3}
# Integer options a huge value of which is not refused while the command line is parsed, and why that is safe: the
# core refuses it when the command runs, before anything is allocated for it or written (issue 31: every other
# integer option is bounded while parsing, by the CLI or by the core's check of the request).
UNBOUNDED = {  # "nv COMMAND --flag", or "--flag" in every command
    "--workers": "'--workers 100000 is out of range; use 0 (load in the main process) to 256' before a worker starts",
    "explain --index": "a sample of the validation split: 'index 999 is out of range; ...' once the split is read",
    "perturb --example": "a sample of the validation split: 'example 999 is out of range; ...' likewise",
    "codes --shard-rows": "rows per shard of the code store: no shard holds more rows than the split has",
    "train --val-fold": "a fold of the sound dataset: 'val_fold=11 ...; valid: 1, 2, 3' when its folds are read",
    "train --sample-rate": "'... above 768000 Hz' before a clip is decoded (test_runaway_sizes_are_refused_...)",
    "data info --image-size": "'image size 100000 is too large; use at most 4096' when the dataset is set up",
    "data make --image-size": "likewise, before anything is written",
}


def _commands() -> list[tuple[str, Any]]:
    """Every command as (name, click command), `nv data`'s as 'data NAME'."""
    found = []
    for name in COMMANDS:
        command = load(name)
        if hasattr(command, "commands"):
            found += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
        else:
            found.append((name, command))
    return found


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and p.name != "help"]


def _kind(command: Any, param: Any) -> Any:
    """The type the command's function declares for `param`, without Annotated, Optional and list: int, float, str,
    Path, bool, a Literal or an Enum."""
    hint = typing.get_type_hints(inspect.unwrap(command.callback), include_extras=True)[param.name]
    hint = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
    while typing.get_origin(hint) in (typing.Union, list):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _choices(kind: Any) -> list[str] | None:
    if typing.get_origin(kind) is Literal:
        return [str(v) for v in typing.get_args(kind)]
    return [v.value for v in kind] if isinstance(kind, type) and issubclass(kind, Enum) else None


def _arguments(command: Any, tmp: Path) -> list[str]:
    """Values for the required arguments and options, the same in every call."""
    args = [str(tmp / p.name) if p.name.startswith("run") else "shapes"
            for p in command.params if p.param_type_name == "argument"]
    return args + [a for p in command.params if p.param_type_name == "option" and p.required
                   for a in (p.opts[0], str(tmp / p.name))]


def _value(command: Any, param: Any, tmp: Path) -> list[str]:
    """A valid value other than the default, as command-line words."""
    name, default, kind = param.name, param.default, _kind(command, param)
    if param.is_flag:
        return [param.secondary_opts[0] if default and param.secondary_opts else param.opts[0]]
    if name in VALUES:
        value: Any = VALUES[name]
    elif _choices(kind):
        value = [c for c in _choices(kind) if c != str(getattr(default, "value", default))][-1]  # not a dataset's
    elif kind is Path:
        value = tmp / f"given-{name}"
    elif kind is int:  # the least valid size is 16 (pixels)
        value = (default if isinstance(default, int) else 16 if "size" in name else 1) + 1
    elif kind is float:
        value = default / 2 if isinstance(default, float) and default else 0.5
    else:
        value = "x"
    return [param.opts[0], str(value)]


def _request(command: str, args: list[str]) -> Any:
    return ROOT.main([*command.split(), *args], standalone_mode=False)


def _cases() -> list[tuple[str, str]]:
    return [(name, p.name) for name, command in _commands() for p in _options(command) if not p.required]


def _contexts(command: Any, tmp: Path) -> list[list[str]]:
    """Options under which another may apply: each of the command's switches and named values, a recurrent
    architecture, and every dataset (with and without a root)."""
    from nvcli.data.registry import readable

    own = [_value(command, p, tmp) for p in _options(command) if not p.required and (p.is_flag or p.name in VALUES)]
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
    base, given = _arguments(cmd, tmp), _value(cmd, param, tmp)
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
        ctx.params["image_size"] = None  # training_request reads the dataset settings from the parsed options
        return real(ctx, **values)

    monkeypatch.setattr(multiview, "training_request", drop_image_size)
    with pytest.raises(AssertionError, match="did not reach the request"):
        check_option("multiview", "image_size", tmp_path)
    check_option("train", "image_size", tmp_path)  # the other command still passes


def _refusal(command: str, args: list[str]) -> Any:
    """The request `nv command args` parses into, or the NvError or usage error that refuses it."""
    try:
        return _request(command, args)
    except (NvError, typer.BadParameter) as refused:
        return refused


def test_every_integer_option_has_an_upper_bound(tmp_path: Path) -> None:
    """Issue 31: `--threads 99999` started 32,364 threads. Where an integer option applies (a context in which a valid
    value of it parses), a huge value is refused while the command line is parsed, by the CLI's bound on the option
    or by the core's check of the request, unless UNBOUNDED says why none is needed. (With --resume, a value must
    equal the run's record instead: that context alone may take any.)"""
    huge = str(2**62)
    checked, wrong = [], []
    for name, command in _commands():
        base = _arguments(command, tmp_path)
        for param in [p for p in _options(command) if _kind(command, p) is int]:
            applies = [c for c in [[], *_contexts(command, tmp_path)]
                       if not isinstance(_outcome(name, [*base, *c, *_value(command, param, tmp_path)]), NvError)]
            outcomes = [_refusal(name, [*base, *c, param.opts[0], huge]) for c in applies]
            refused = [o for o in outcomes if isinstance(o, (NvError, typer.BadParameter))
                       and (huge in str(o) or getattr(o, "param", None) is not None and o.param.name == param.name)]
            where = f"nv {name} {param.opts[0]} {huge}"
            if f"{name} {param.opts[0]}" in UNBOUNDED or param.opts[0] in UNBOUNDED:
                wrong += [f"{where} is refused: take it off UNBOUNDED ({refused[0]})"] if refused or not applies else []
            elif not refused:
                wrong.append(f"{where} is not refused where the option applies")
            checked.append(param.name)
    assert not wrong, "\n".join(wrong)
    assert {"threads", "batch_size", "epochs", "steps", "top", "seed"} <= set(checked)


def test_every_choice_is_refused_with_the_valid_values(tmp_path: Path) -> None:
    """A value outside an option's choices is refused in nv's own words (the valid values, the closest), whatever
    Typer's message for it is."""
    choices = [(name, command, p) for name, command in _commands() for p in _options(command)
               if _choices(_kind(command, p))]
    for name, command, param in choices:
        valid = _choices(_kind(command, param))
        with pytest.raises(NvError, match=rf"unknown {param.opts[0]} value '{valid[0]}x'; valid: "
                                          rf"{', '.join(valid)}\. Did you mean '{valid[0]}'\?"):
            _request(name, [*_arguments(command, tmp_path), param.opts[0], f"{valid[0]}x"])
    assert len(choices) > 20


def test_a_python_parameter_is_one_flag_in_every_subcommand() -> None:
    """An error names `nv data`'s options by their Python parameter; the flag it is spelled as must not depend on the
    subcommand."""
    for name in COMMANDS:
        spelled: dict[str, set[str]] = {}
        for command in getattr(load(name), "commands", {}).values():
            for param in _options(command):
                spelled.setdefault(param.name, set()).add(param.opts[0])
        assert all(len(flags) == 1 for flags in spelled.values()), (name, spelled)
