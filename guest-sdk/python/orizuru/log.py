"""Lines into the host's log, at a level, tagged by the host with the
service, the instance, the request id and tsuru's event id.

Build with ``--with logging``; the operator grants it with ``logging = true``
in the service's ``[[services]]`` entry (a plugin importing this module is
refused at load without it). What a plugin prints to stdout or stderr reaches
the log too, without a level. Outside a component (unit tests under plain
CPython) the lines go to stderr.

    from orizuru import log
    log.info("creating the queue")
"""

from __future__ import annotations

import sys

from ._capability import bindings

_wit = bindings("wasi_logging_logging_0_1_0_draft", "log", "logging", "`logging = true`")


def _log(level: str, message: str) -> None:
    if _wit is None:
        print(f"[{level}] {message}", file=sys.stderr)
        return
    _wit.log(getattr(_wit.Level, level.upper()), "", str(message))


def trace(message: str) -> None:
    """Logs at the trace level."""
    _log("trace", message)


def debug(message: str) -> None:
    """Logs at the debug level."""
    _log("debug", message)


def info(message: str) -> None:
    """Logs at the info level."""
    _log("info", message)


def warn(message: str) -> None:
    """Logs at the warn level."""
    _log("warn", message)


def error(message: str) -> None:
    """Logs at the error level."""
    _log("error", message)
