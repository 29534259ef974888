"""Durable key-value state, kept by the host for this service alone: it
outlives restarts and hot swaps, and no other service can read it.

Build with ``--with keyvalue``; the operator grants it with
``keyvalue = true`` in the service's ``[[services]]`` entry (a plugin
importing this module is refused at load without it).

    from orizuru.kv import Bucket
    bucket = Bucket.open("ports")
    port = 5000 + bucket.increment("next")
    bucket.set_json("instance:orders", port)
    kept = bucket.get_json("instance:orders")
"""

from __future__ import annotations

import json
from typing import Any, Optional, Union

from ._capability import Err, bindings, outside
from ._errors import Failed
from ._parameters import shown
from ._types import to_json

_store = bindings("wasi_keyvalue_store_0_2_0_draft", "kv", "keyvalue", "`keyvalue = true`")
_atomics = bindings("wasi_keyvalue_atomics_0_2_0_draft", "kv", "keyvalue", "`keyvalue = true`")


def _refused(bucket: str, err: Err) -> Failed:
    case = type(err.value).__name__
    if case.endswith("NoSuchStore"):
        why = "it does not exist"
    elif case.endswith("AccessDenied"):
        why = "this service is not granted the key-value store (keyvalue = true)"
    else:
        why = str(getattr(err.value, "value", err.value))
    return Failed(f"the key-value bucket {shown(bucket)} refused: {why}")


class Bucket:
    """A bucket of values (bytes) by key."""

    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self.name = name

    @classmethod
    def open(cls, name: str = "") -> "Bucket":
        """Opens the bucket ``name`` (the empty name is the service's default bucket)."""
        if _store is None:
            raise outside("kv")
        try:
            return cls(_store.open(name), name)
        except Err as err:
            raise _refused(name, err) from None

    def get(self, key: str) -> Optional[bytes]:
        """The value of ``key``, or ``None``."""
        try:
            return self._inner.get(key)
        except Err as err:
            raise _refused(self.name, err) from None

    def get_json(self, key: str) -> Any:
        """The value of ``key`` read as JSON, or ``None`` when it has none."""
        raw = self.get(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as err:
            raise Failed(
                f"the value of {shown(key)} in bucket {shown(self.name)} is not the JSON expected: {err}"
            ) from None

    def set(self, key: str, value: Union[bytes, str]) -> None:
        """Sets ``key`` to ``value`` (text is stored as UTF-8)."""
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        try:
            self._inner.set(key, data)
        except Err as err:
            raise _refused(self.name, err) from None

    def set_json(self, key: str, value: Any) -> None:
        """Sets ``key`` to ``value`` written as JSON (dataclasses as objects)."""
        try:
            text = to_json(value)
        except (TypeError, ValueError) as err:
            raise Failed(f"the value for {shown(key)} cannot be written as JSON: {err}") from None
        self.set(key, text)

    def delete(self, key: str) -> None:
        """Removes ``key`` (removing a missing key is no error)."""
        try:
            self._inner.delete(key)
        except Err as err:
            raise _refused(self.name, err) from None

    def exists(self, key: str) -> bool:
        """Whether ``key`` has a value."""
        try:
            return self._inner.exists(key)
        except Err as err:
            raise _refused(self.name, err) from None

    def keys(self) -> list[str]:
        """Every key of the bucket, in order."""
        keys: list[str] = []
        cursor: Optional[int] = None
        while True:
            try:
                page = self._inner.list_keys(cursor)
            except Err as err:
                raise _refused(self.name, err) from None
            keys.extend(page.keys)
            if page.cursor is None:
                return keys
            cursor = page.cursor

    def increment(self, key: str, delta: int = 1) -> int:
        """Adds ``delta`` to the number at ``key`` (0 when missing) in one
        step no other call can split, and answers the new number."""
        try:
            return _atomics.increment(self._inner, key, delta)
        except Err as err:
            raise _refused(self.name, err) from None
