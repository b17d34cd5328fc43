"""Typed dataclasses from JSON or command-line values: every key known, every value of its field's type.

config.json sections, dataset options and `-D KEY=VALUE` settings all go through `typed_values`, so a
wrong key or type, or a number that is not finite (NaN, infinity), is refused with a message that names it,
whatever its source; `typed_record` also names the source in the record's own range checks. `JsonRecord` is
the base of records nv writes as JSON and reads back (results.json settings, heads/<name>.json, metrics rows).
"""
from __future__ import annotations

import math
import types
from dataclasses import MISSING, fields
from typing import (
    Annotated,
    Any,
    Callable,
    ClassVar,
    Literal,
    Mapping,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from .errors import NvError

T = TypeVar("T")
_SCALARS: dict[type, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}
_NAN = "NaN where nothing was measured"
Measure = Annotated[float, _NAN]  # a measured number, NaN where there was nothing to measure (a class without samples)


def _fits(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether `value` fits type `hint` (a scalar, a Literal, a union, a tuple or list of one kind), and the value."""
    origin = get_origin(hint)
    if hint is type(None):
        return value is None, None
    if hint is object:  # any JSON value: an object whose keys its writer chose (a fingerprint, dataset options)
        return True, value
    if origin is Annotated:
        base, *marks = get_args(hint)
        if _NAN in marks and isinstance(value, float) and math.isnan(value):
            return True, value
        return _fits(value, base)
    if isinstance(hint, type) and issubclass(hint, JsonRecord):
        if not isinstance(value, Mapping):
            return False, value
        return True, hint.from_json(value, f"an entry ({hint.__name__})")
    if origin is dict:
        key_hint, value_hint = get_args(hint)
        if not isinstance(value, Mapping):
            return False, value
        kept = {k: _fits(v, value_hint) for k, v in value.items()}
        ok = all(_fits(k, key_hint)[0] and fit for k, (fit, _) in kept.items())
        return ok, {k: v for k, (_, v) in kept.items()}
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
        if len(get_args(hint)) > 1 and get_args(hint)[1] is not Ellipsis:
            raise TypeError(f"unsupported field type {hint!r}")
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
    if get_origin(hint) is Annotated:
        return _spelled(get_args(hint)[0])
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint)) if not get_args(hint) else str(hint)


def typed_values(cls: type, values: Mapping[str, Any], where: str, *, complete: bool = False,
                 written: Callable[[str], str] = str) -> dict[str, Any]:
    """`values` checked against the fields of dataclass `cls`, each under its key `written(field)`; `where` names the
    source. Returns the values by field name.

    Unknown keys, missing keys (every key when `complete`, as in a config.json nv wrote) and values of the
    wrong type are refused, naming the key.
    """
    if not isinstance(values, Mapping):
        raise NvError(f"{where} must be a JSON object")
    known = {written(f.name): f for f in fields(cls)}
    hints = {written(name): hint for name, hint in get_type_hints(cls, include_extras=True).items()}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise NvError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    missing = sorted(name for name, f in known.items()
                     if name not in values and (complete or (f.default is MISSING and f.default_factory is MISSING)))
    if missing:
        raise NvError(f"{where}: missing key(s) {', '.join(missing)}")
    out = {}
    for key, value in values.items():
        try:
            ok, kept = _fits(value, hints[key])
        except NvError as exc:  # in a record inside this one
            raise NvError(f"{where}: '{key}': {exc}") from None
        if not ok and nonfinite(value) is not None:  # worded as the datasets' own checks word it
            what = "a finite number" if isinstance(value, float) else "finite numbers"
            raise NvError(f"{where}: {key} must be {what}, got {value!r}")
        if not ok:
            raise NvError(f"{where}: '{key}' is {value!r}; expected {_spelled(hints[key])}")
        out[known[key].name] = kept
    return out


def typed_record(cls: type[T], values: Mapping[str, Any], where: str, *, complete: bool = False,
                 written: Callable[[str], str] = str) -> T:
    """An instance of dataclass `cls` from `values` checked by `typed_values`; an error of its own checks (a value
    out of range) names `where` and the key(s) at fault too."""
    typed = typed_values(cls, values, where, complete=complete, written=written)
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


R = TypeVar("R", bound="JsonRecord")


class JsonRecord:
    """A frozen dataclass that nv writes as a JSON object and reads back checked (`typed_record`).

    `to_json` writes its fields in order, each under its name without a trailing '_' (`class_` is "class"), leaving
    out a field named in `OMITTED` while it holds its default (so a record written before the field existed reads
    the same); values that are records are written as their own objects, tuples as lists, and a record field named
    in `FLATTENED` as its keys among this record's own.
    """

    OMITTED: ClassVar[tuple[str, ...]] = ()
    FLATTENED: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, object]:
        """This record as the JSON object nv writes."""
        out: dict[str, object] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self.FLATTENED:
                out.update(value.to_json())
            elif f.name not in self.OMITTED or value != f.default:
                out[_written(f.name)] = _plain(value)
        return out

    @classmethod
    def from_json(cls: type[R], values: Mapping[str, Any], where: str) -> R:
        """The record from a JSON object as `to_json` writes it; an NvError naming `where` and the key when a key is
        unknown or missing, or a value is of the wrong type or out of range."""
        if not isinstance(values, Mapping):
            raise NvError(f"{where} must be a JSON object")
        hints = get_type_hints(cls)
        values = dict(values)
        for name in cls.FLATTENED:  # its own keys gathered back into one object
            own = {_written(f.name) for f in fields(hints[name])}
            values[_written(name)] = {k: values.pop(k) for k in list(values) if k in own}
        return typed_record(cls, values, where, written=_written)


def _written(field: str) -> str:
    """A record's field as its JSON key: without a trailing '_' (`class_` is "class", `lambda_` "lambda")."""
    return field.removesuffix("_")


def _plain(value: Any) -> Any:
    """A field's value as JSON holds it: records as objects, tuples as lists, at any depth."""
    if isinstance(value, JsonRecord):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
