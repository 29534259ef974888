"""Reading a JSON object into the author's dataclass, field by field.

tsuru's CLI sends every parameter value as text (``-p size_mb=128`` arrives
as ``"128"``), so a typed field takes the text that reads as its type as well
as the JSON value itself. What does not fit raises :class:`Mismatch` or
:class:`Unknown`, which :mod:`orizuru._types` words as guest-sdk/CONTRACT.md
says.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import types
import typing
from typing import Any, Callable

# 64-bit, as the other SDKs read a whole number, so a value means the same to all.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
# int() and float() alone would also take "1_000", "nan", "inf" and non-ASCII digits.
_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

Read = Callable[[Any, str], Any]


class Mismatch(ValueError):
    """The value at ``key`` (dotted) does not fit: ``problem`` says how."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f'"{key}" {problem}')
        self.key = key
        self.problem = problem


class Unknown(ValueError):
    """A key (dotted) the dataclass does not declare."""

    def __init__(self, key: str) -> None:
        super().__init__(f'there is no "{key}"')
        self.key = key


def shown(value: Any) -> str:
    """A value as the user gave it: its JSON (text in double quotes)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def must_be(expected: str, value: Any, key: str) -> Mismatch:
    return Mismatch(key, f"must be {expected}, not {shown(value)}")


def read(cls: type, value: Any, *, strict: bool = True) -> Any:
    """``cls`` (a dataclass) built from the JSON object ``value``.

    ``strict`` refuses keys the dataclass does not declare.
    """
    return _reader(cls, strict)(value, "")


def warm(cls: type) -> None:
    """Reads ``cls``'s type hints now (the build snapshots the result)."""
    _reader(cls, True)
    _reader(cls, False)
    names(cls)


@functools.cache
def _reader(cls: type, strict: bool) -> Read:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass; decorate it with @dataclasses.dataclass")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {}
    for field in dataclasses.fields(cls):
        if field.init:
            fields[field.name] = (field, _read_as(hints.get(field.name, Any), cls, field.name, strict))

    def read_object(value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            raise must_be("a group of parameters", value, key)
        prefix = f"{key}." if key else ""
        values = {}
        for name, item in value.items():
            if name not in fields:
                if strict:
                    raise Unknown(prefix + name)
                continue
            values[name] = fields[name][1](item, prefix + name)
        for name, (field, read_field) in fields.items():
            if name in values or _has_default(field):
                continue
            hint = hints.get(name, Any)
            if _optional(hint):
                values[name] = None
            elif dataclasses.is_dataclass(_strip(hint)):
                # An absent group reads as an empty one: its defaults, or its missing fields named.
                values[name] = read_field({}, prefix + name)
            else:
                raise Mismatch(prefix + name, "is missing")
        return cls(**values)

    return read_object


def _read_as(hint: Any, owner: type, name: str, strict: bool) -> Read:
    """How to read a value declared as ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        custom = next((item for item in hint.__metadata__ if callable(item)), None)
        if custom is None:
            return _read_as(args[0], owner, name, strict)
        return _custom(custom)
    if _optional(hint):
        inner = _read_as(_strip(hint), owner, name, strict)
        return lambda value, key: None if value is None else inner(value, key)
    if hint is int:
        return _whole
    if hint is float:
        return _number
    if hint is bool:
        return _bool
    if hint is str:
        return _text
    if hint in (Any, object):
        return lambda value, key: value
    if origin is typing.Literal and all(isinstance(choice, str) for choice in args):
        return _choice(args)
    if dataclasses.is_dataclass(hint):
        return _reader(hint, strict)
    if hint is dict or (origin is dict and args[:1] == (str,)):
        item = _read_as(args[1], owner, name, strict) if args else (lambda value, key: value)
        return _group(item)
    if hint is list or origin is list:
        item = _read_as(args[0], owner, name, strict) if args else (lambda value, key: value)
        return _list(item)
    raise TypeError(
        f"{owner.__name__}.{name} is declared as {hint!r}, which orizuru cannot read; declare it as "
        "int, float, bool, str, a Literal of texts, a dataclass, dict, list[...], Any, Optional[...] "
        "of those, or Annotated[T, reader] with your own reader"
    )


def _optional(hint: Any) -> bool:
    args = typing.get_args(hint)
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args


def _strip(hint: Any) -> Any:
    """``hint`` without ``Optional``."""
    if _optional(hint):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _has_default(field: dataclasses.Field) -> bool:
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


@functools.cache
def names(cls: type) -> tuple[str, ...]:
    """The keys ``cls`` (a dataclass) declares, in order, a nested group's dotted."""
    hints = typing.get_type_hints(cls)
    found: list[str] = []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        group = _strip(hints.get(field.name, Any))
        if dataclasses.is_dataclass(group):
            found.extend(f"{field.name}.{inner}" for inner in names(group))
        else:
            found.append(field.name)
    return tuple(found)


def _whole(value: Any, key: str) -> int:
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        try:
            number = int(value)
        except ValueError:  # more digits than int() converts: far out of range anyway
            number = INT_MAX + 1
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise must_be("a whole number", value, key)
    if not INT_MIN <= number <= INT_MAX:
        raise must_be(f"a whole number from {INT_MIN} to {INT_MAX}", value, key)
    return number


def _number(value: Any, key: str) -> float:
    if (isinstance(value, str) and _DECIMAL.fullmatch(value.strip())) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    ):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):  # "1e999" would read as infinity
            return number
    raise must_be("a number", value, key)


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise must_be("true or false", value, key)


def _text(value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    raise must_be("text", value, key)


def _choice(choices: tuple[str, ...]) -> Read:
    def read_choice(value: Any, key: str) -> str:
        if isinstance(value, str) and value in choices:
            return value
        raise must_be("one of " + ", ".join(choices), value, key)

    return read_choice


def _group(item: Read) -> Read:
    def read_group(value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise must_be("a group of parameters", value, key)
        return {name: item(inner, f"{key}.{name}") for name, inner in value.items()}

    return read_group


def _list(item: Read) -> Read:
    def read_list(value: Any, key: str) -> list[Any]:
        if not isinstance(value, list):
            raise must_be("a list", value, key)
        return [item(inner, f"{key}[{index}]") for index, inner in enumerate(value)]

    return read_list


def _custom(reader: Callable[[Any], Any]) -> Read:
    """``Annotated[T, reader]``: ``reader`` takes the JSON value and raises
    ``ValueError("what it must be")`` to refuse it."""

    def read_custom(value: Any, key: str) -> Any:
        try:
            return reader(value)
        except ValueError as err:
            raise must_be(str(err), value, key) from None

    return read_custom
