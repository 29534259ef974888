"""Why a plugin refuses a call: one exception per case of the WIT `error`."""

from __future__ import annotations

from typing import Iterable


class Error(Exception):
    """A refusal tsuru shows its user word for word, with an HTTP status.

    Raise one of the subclasses; each carries one sentence that names the
    thing and says what to do.
    """

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = str(message)

    def __str__(self) -> str:
        return self.message


class Invalid(Error):
    """The request is wrong: a bad parameter, an unknown plan (400)."""

    status = 400


class NotFound(Error):
    """Something the request names does not exist (404)."""

    status = 404


class Conflict(Error):
    """The request clashes with something that exists (409)."""

    status = 409


class NotReady(Error):
    """The instance is still being provisioned; try again later (412)."""

    status = 412


class Failed(Error):
    """The service could not do it (500)."""

    status = 500


class Unsupported(Error):
    """This service does not offer this action.

    The host answers as tsuru expects for that action: a status of 404, or
    success for an undo (an unbind of a service that never binds).
    """

    status = 404

    def __init__(self) -> None:
        super().__init__("this service does not offer this action")


class MissingParams(Error):
    """Parameters the caller must give, by name.

    The host answers 400 with ``{"missing_params": [...]}``, which tsuru
    turns into a question (raise it from ``plans`` to ask for a pool).
    """

    status = 400

    def __init__(self, *names: str | Iterable[str]) -> None:
        flat: list[str] = []
        for name in names:
            if isinstance(name, str):
                flat.append(name)
            else:
                flat.extend(str(item) for item in name)
        super().__init__("missing parameters: " + ", ".join(flat))
        self.names = flat
