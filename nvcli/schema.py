"""Typed dataclasses from JSON or command-line values: every key known, every value of its field's type.

config.json sections, dataset options and `-D KEY=VALUE` settings all go through `typed_values`, so a
wrong key or type, or a number that is not finite (NaN, infinity), is refused with a message that names it,
whatever its source; `typed_record` also names the source in the record's own range checks.
"""
from __future__ import annotations

import math
import types
from dataclasses import MISSING, fields
from typing import Any, Literal, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

from .errors import NvError

T = TypeVar("T")
_SCALARS: dict[type, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


def _fits(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether `value` fits type `hint` (a scalar, a Literal, a union, a tuple or list of one kind), and the value."""
    origin = get_origin(hint)
    if hint is type(None):
        return value is None, None
    if origin is Literal:
        return value in get_args(hint) and not isinstance(value, bool), value
    if origin in (Union, types.UnionType):
        for option in get_args(hint):
            ok, kept = _fits(value, option)
            if ok:
                return True, kept
        return False, value
    if origin in (tuple, list):
        inner = get_args(hint)[0]
        if isinstance(value, str):  # a single name where several may be given
            value = [value]
        if isinstance(value, (list, tuple)):
            kept = [_fits(v, inner) for v in value]
            if all(ok for ok, _ in kept):
                items = [v for _, v in kept]
                return True, tuple(items) if origin is tuple else items
        return False, value
    kinds = _SCALARS.get(hint)
    if kinds is None:
        raise TypeError(f"unsupported field type {hint!r}")
    ok = isinstance(value, kinds) and (hint is bool or not isinstance(value, bool))
    if ok and hint is float:
        return math.isfinite(value), float(value)
    return ok, value


def _spelled(hint: Any) -> str:
    """A type as a user reads it: 'int | None', \"'soft' | 'hard'\"."""
    if get_origin(hint) is Literal:
        return " | ".join(repr(v) for v in get_args(hint))
    if get_origin(hint) in (Union, types.UnionType):
        return " | ".join(_spelled(h) for h in get_args(hint))
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint)) if not get_args(hint) else str(hint)


def typed_values(cls: type, values: Mapping[str, Any], where: str, *, complete: bool = False) -> dict[str, Any]:
    """`values` checked against the fields of dataclass `cls`; `where` names the source.

    Unknown keys, missing keys (every key when `complete`, as in a config.json nv wrote) and values of the
    wrong type are refused, naming the key.
    """
    if not isinstance(values, Mapping):
        raise NvError(f"{where} must be a JSON object")
    known = {f.name: f for f in fields(cls)}
    hints = get_type_hints(cls)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise NvError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    missing = sorted(name for name, f in known.items()
                     if name not in values and (complete or (f.default is MISSING and f.default_factory is MISSING)))
    if missing:
        raise NvError(f"{where}: missing key(s) {', '.join(missing)}")
    out = {}
    for key, value in values.items():
        ok, kept = _fits(value, hints[key])
        if not ok and nonfinite(value) is not None:  # worded as the datasets' own checks word it
            what = "a finite number" if isinstance(value, float) else "finite numbers"
            raise NvError(f"{where}: {key} must be {what}, got {value!r}")
        if not ok:
            raise NvError(f"{where}: '{key}' is {value!r}; expected {_spelled(hints[key])}")
        out[key] = kept
    return out


def typed_record(cls: type[T], values: Mapping[str, Any], where: str, *, complete: bool = False) -> T:
    """An instance of dataclass `cls` from `values` checked by `typed_values`; an error of its own checks (a value
    out of range) names `where` and the key(s) at fault too."""
    typed = typed_values(cls, values, where, complete=complete)
    try:
        return cls(**typed)
    except NvError as exc:
        keys = f" ('{', '.join(exc.params)}')" if exc.params else ""
        raise NvError(f"{where}{keys}: {exc}") from None


def nonfinite(value: Any, at: str = "") -> str | None:
    """Where `value` is or holds (in lists and objects, at any depth) a NaN or infinite float: its key path from
    `at` ('data.info.mean[0]'), or None when every number in it is finite."""
    if isinstance(value, float):
        return None if math.isfinite(value) else at
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, (list, tuple)) \
        else ()
    for key, item in items:
        found = nonfinite(item, f"{at}[{key}]" if isinstance(key, int) else f"{at}.{key}" if at else str(key))
        if found is not None:
            return found
    return None
