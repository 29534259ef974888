"""JSON objects into dataclasses, refusing what does not fit.

A plugin's parameters arrive as a JSON object. ``decode_object`` builds the
author's dataclass from it and, when something does not fit, answers the
sentence the Rust SDK (serde_json, ``#[serde(deny_unknown_fields)]``) gives
for the same text, position included, so a service answers tsuru the same
whichever SDK it was written with:

    unknown field `size`, expected one of `retention_hours`, `simulate` at line 1 column 7
    invalid type: integer `5`, expected a string at line 1 column 14

Field types: ``str``, ``bool``, ``int`` (a 64-bit signed integer), ``float``,
``Optional[...]`` of those, and ``Any`` (the JSON value as ``json`` reads
it). A field with ``metadata={"orizuru.parse": fn}`` (see
``orizuru.parse_with``) is read by ``fn`` from the JSON value; ``fn`` raises
``ValueError(sentence)`` to refuse it. A field without a default is required.
"""

from __future__ import annotations

import dataclasses
import json
import typing
import unicodedata
from decimal import Decimal
from typing import Any, Callable

PARSE_KEY = "orizuru.parse"

U64_MAX = 2**64 - 1
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

_WHITESPACE = " \t\n\r"
_scan_value = json.JSONDecoder().scan_once


class DecodeError(Exception):
    """A JSON text that does not fit the type asked for; ``str`` is the sentence."""


def parse_with(fn: Callable[[Any], Any], default: Any = None) -> Any:
    """A dataclass field read by ``fn`` from its JSON value.

    ``fn`` gets the value as ``json`` reads it (``None`` for null) and
    answers the field's value, or raises ``ValueError(sentence)``.
    """
    return dataclasses.field(default=default, metadata={PARSE_KEY: fn})


# --- how serde writes what it found ---------------------------------------


def rust_debug(text: str) -> str:
    """``text`` quoted as Rust's ``{:?}`` writes a string."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif ch.isprintable() and unicodedata.category(ch) not in ("Mn", "Me"):
            out.append(ch)
        else:
            out.append("\\u{%x}" % ord(ch))
    out.append('"')
    return "".join(out)


def rust_float(value: float) -> str:
    """``value`` as serde writes a float: the shortest digits that read back
    as it, in plain notation from 1e-5 to below 1e16 (with ``.0`` when it has
    no point) and in scientific notation (``1e+16``, ``2.5e-10``) outside."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    sign = "-" if str(value).startswith("-") else ""
    if value == 0:
        return sign + "0.0"
    digits_tuple = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    exponent = len(digits) - 1 + int(digits_tuple.exponent)
    if -5 <= exponent < 16:
        text = format(Decimal(repr(abs(value))).normalize(), "f")
        return sign + (text if "." in text else text + ".0")
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


class _Number:
    """A JSON number as serde_json reads it: u64, i64, or f64."""

    def __init__(self, literal: str) -> None:
        self.kind: str
        self.value: int | float
        if any(c in literal for c in ".eE"):
            self.kind, self.value = "f64", float(literal)
        elif literal.startswith("-"):
            number = int(literal)
            if number == 0:
                self.kind, self.value = "f64", -0.0
            elif number >= I64_MIN:
                self.kind, self.value = "i64", number
            else:
                self.kind, self.value = "f64", float(literal)
        else:
            number = int(literal)
            if number <= U64_MAX:
                self.kind, self.value = "u64", number
            else:
                self.kind, self.value = "f64", float(literal)

    def unexpected(self) -> str:
        if self.kind == "f64":
            return f"floating point `{rust_float(float(self.value))}`"
        return f"integer `{self.value}`"


def _unexpected(text: str, start: int, end: int, value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, (int, float)):
        return _Number(text[start:end]).unexpected()
    if isinstance(value, str):
        return f"string {rust_debug(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


# --- the decoder --------------------------------------------------------------


class _Field:
    def __init__(self, field: dataclasses.Field, hint: Any) -> None:
        self.name = field.name
        self.parse = field.metadata.get(PARSE_KEY)
        self.optional, self.type = _unwrap_optional(hint)
        if self.parse is None and self.type not in (str, bool, int, float, Any, object):
            raise TypeError(
                f"field {field.name!r} is declared as {hint!r}, which orizuru cannot read from "
                "JSON; declare it as str, bool, int, float, Optional[...] of those or Any, "
                "or read it with orizuru.parse_with"
            )
        self.required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )


def _unwrap_optional(hint: Any) -> tuple[bool, Any]:
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return True, args[0]
        return False, Any
    return False, hint


_FIELDS_CACHE: dict[type, list[_Field]] = {}


def _fields_of(cls: type) -> list[_Field]:
    fields = _FIELDS_CACHE.get(cls)
    if fields is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass; decorate it with @dataclasses.dataclass")
        hints = typing.get_type_hints(cls)
        fields = [_Field(field, hints.get(field.name, Any)) for field in dataclasses.fields(cls) if field.init]
        _FIELDS_CACHE[cls] = fields
    return fields


def _expected(kind: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "i64", float: "f64"}[kind]


def _skip_ws(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


class _Positions:
    """Byte columns of a one-line JSON text, as serde_json counts them."""

    def __init__(self, text: str) -> None:
        self.text = text

    def at(self, index: int) -> str:
        before = self.text[:index]
        line = before.count("\n") + 1
        column = len(before[before.rfind("\n") + 1 :].encode("utf-8"))
        return f" at line {line} column {column}"


def decode_object(text: str, cls: type, *, deny_unknown: bool = True) -> Any:
    """Builds ``cls`` (a dataclass) from the JSON object ``text``.

    Raises ``DecodeError`` with serde_json's sentence when it does not fit,
    and ``TypeError`` when ``cls`` declares a field type it cannot read.
    """
    fields = _fields_of(cls)
    by_name = {field.name: field for field in fields}
    try:
        json.loads(text)
    except ValueError as err:
        raise DecodeError(f"it is not JSON ({err})") from None
    where = _Positions(text)
    index = _skip_ws(text, 0)
    if index >= len(text) or text[index] != "{":
        value, end = _scan_value(text, index)
        consumed = index if isinstance(value, (list, dict)) else end
        raise DecodeError(
            f"invalid type: {_unexpected(text, index, end, value)}, expected struct {cls.__name__}"
            + where.at(consumed)
        )
    index += 1
    values: dict[str, Any] = {}
    struct_error: str | None = None
    while True:
        index = _skip_ws(text, index)
        if text[index] == "}":
            index += 1
            break
        if text[index] == ",":
            index = _skip_ws(text, index + 1)
        key, index = json.decoder.scanstring(text, index + 1)
        key_end = index
        index = _skip_ws(text, index)
        index = _skip_ws(text, index + 1)  # the colon
        start = index
        value, index = _scan_value(text, index)
        field = by_name.get(key)
        if field is None:
            if deny_unknown:
                raise DecodeError(_unknown_field(key, fields) + where.at(key_end))
            continue
        if key in values:
            struct_error = f"duplicate field `{key}`"
            break
        if field.parse is not None:
            try:
                values[key] = field.parse(value)
            except ValueError as err:
                struct_error = str(err)
                break
            continue
        if value is None and field.optional:
            values[key] = None
            continue
        checked, message = _check(text, start, index, value, field.type)
        if message is not None:
            consumed = start if isinstance(value, (list, dict)) else index
            raise DecodeError(message + where.at(consumed))
        values[key] = checked
    if struct_error is not None:
        # serde_json places an error raised while reading a field where the
        # object's end was looked for: after its `}`, or at the next `,`.
        index = _skip_ws(text, index)
        if index < len(text) and text[index] == "}":
            index += 1
        raise DecodeError(struct_error + where.at(index))
    for field in fields:
        if field.required and field.name not in values:
            raise DecodeError(f"missing field `{field.name}`" + where.at(index))
    return cls(**values)


def _unknown_field(key: str, fields: list[_Field]) -> str:
    names = [f"`{field.name}`" for field in fields]
    if not names:
        return f"unknown field `{key}`, there are no fields"
    if len(names) == 1:
        expected = names[0]
    elif len(names) == 2:
        expected = f"{names[0]} or {names[1]}"
    else:
        expected = "one of " + ", ".join(names)
    return f"unknown field `{key}`, expected {expected}"


def _check(text: str, start: int, end: int, value: Any, kind: Any) -> tuple[Any, str | None]:
    if kind in (Any, object):
        return value, None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str and isinstance(value, str):
        return value, None
    if kind is bool and isinstance(value, bool):
        return value, None
    if kind is int and is_number:
        number = _Number(text[start:end])
        if number.kind == "u64" and number.value > I64_MAX:
            return None, f"invalid value: integer `{number.value}`, expected i64"
        if number.kind != "f64":
            return number.value, None
    if kind is float and is_number:
        return float(value), None
    return None, f"invalid type: {_unexpected(text, start, end, value)}, expected {_expected(kind)}"
