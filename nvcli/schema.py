"""Typed dataclasses from JSON or command-line values: every key known, every value of its field's type.

config.json sections, dataset options and `-D KEY=VALUE` settings all go through `typed_values`, so a
wrong key or type is refused with a message that names it, whatever its source.
"""
from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, Mapping

from .errors import NvError

_SCALARS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _fits(value: Any, hint: str) -> tuple[bool, Any]:
    """Whether `value` fits one type written as a string ('int', 'tuple[str, ...]'), and the value to keep."""
    if hint == "None":
        return value is None, None
    if hint.startswith(("tuple", "list")):
        inner = hint[hint.index("[") + 1:].split(",")[0].strip(" ]")
        if isinstance(value, str):  # a single name where several may be given
            value = [value]
        if isinstance(value, (list, tuple)):
            kept = [_fits(v, inner) for v in value]
            if all(ok for ok, _ in kept):
                items = [v for _, v in kept]
                return True, tuple(items) if hint.startswith("tuple") else items
        return False, value
    kinds = _SCALARS.get(hint)
    if kinds is None:
        raise TypeError(f"unsupported field type {hint!r}")
    ok = isinstance(value, kinds) and (hint == "bool" or not isinstance(value, bool))
    if ok and hint == "float":
        value = float(value)
    return ok, value


def typed_values(cls: type, values: Mapping[str, Any], where: str, *, complete: bool = False) -> dict[str, Any]:
    """`values` checked against the fields of dataclass `cls` (types written as strings); `where` names the source.

    Unknown keys, missing keys (every key when `complete`, as in a config.json nv wrote) and values of the
    wrong type are refused, naming the key.
    """
    if not isinstance(values, Mapping):
        raise NvError(f"{where} must be a JSON object")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise NvError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    missing = sorted(name for name, f in known.items()
                     if name not in values and (complete or (f.default is MISSING and f.default_factory is MISSING)))
    if missing:
        raise NvError(f"{where}: missing key(s) {', '.join(missing)}")
    out = {}
    for key, value in values.items():
        hint = str(known[key].type)
        for option in (part.strip() for part in hint.split("|")):
            ok, kept = _fits(value, option)
            if ok:
                out[key] = kept
                break
        else:
            raise NvError(f"{where}: '{key}' is {value!r}; expected {hint}")
    return out
