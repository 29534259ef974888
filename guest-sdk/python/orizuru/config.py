"""The service's settings and secrets, as its operator wrote them under
``[services.config]`` (values) and ``[services.secrets]`` (read by the host
from the environment or a file; the plugin gets the value, the host's log and
admin API never show it).

Build with ``--with config``; the operator grants it with one of those
tables in the service's ``[[services]]`` entry (a plugin importing this
module is refused at load without one).

    from orizuru import config
    region = config.require("region")
    tier = config.get("tier") or "standard"
"""

from __future__ import annotations

from typing import Optional

from ._capability import Err, bindings, outside
from ._errors import Failed

_wit = bindings(
    "wasi_config_store_0_2_0_rc_1", "config", "config", "a [services.config] or [services.secrets] table"
)


def _store():
    if _wit is None:
        raise outside("config")
    return _wit


def _unreadable(err: Err) -> Failed:
    return Failed(f"the service's config could not be read: {getattr(err.value, 'value', err.value)}")


def get(key: str) -> Optional[str]:
    """The value of ``key``, or ``None`` when the operator did not set it."""
    store = _store()
    try:
        return store.get(key)
    except Err as err:
        raise _unreadable(err) from None


def require(key: str) -> str:
    """The value of ``key``, or a :class:`Failed` saying which key to set."""
    value = get(key)
    if value is None:
        raise Failed(
            f'the service\'s config has no "{key}"; its operator must set it under '
            "[services.config] or [services.secrets]"
        )
    return value


def all() -> dict[str, str]:  # noqa: A001 - mirrors the Rust SDK's config::all
    """Every value and secret, by key (sorted)."""
    store = _store()
    try:
        return dict(sorted(store.get_all()))
    except Err as err:
        raise _unreadable(err) from None
