"""What a plugin receives and answers, as plain Python objects."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Optional, TypeVar, Union

from ._errors import Failed, Invalid
from ._parameters import Mismatch, Unknown, names, read, shown

T = TypeVar("T")

#: Environment variables for a bound app or job, by name.
Env = dict


@dataclass
class Context:
    """Who asked, as tsuru said it in the request's headers."""

    #: ``X-Tsuru-User``.
    user: Optional[str] = None
    #: ``X-Tsuru-Eventid``: the tsuru event this call belongs to.
    event_id: Optional[str] = None
    #: ``X-Request-Id``.
    request_id: Optional[str] = None
    #: ``X-Tsuru-Pool-Name``, or the ``pool`` query of a plans call.
    pool_name: Optional[str] = None
    #: ``X-Tsuru-Pool-Provisioner``.
    pool_provisioner: Optional[str] = None
    #: ``X-Tsuru-Cluster-Name``.
    cluster_name: Optional[str] = None
    #: ``X-Tsuru-Cluster-Provisioner``.
    cluster_provisioner: Optional[str] = None
    #: ``X-Tsuru-Cluster-Addresses``, one per header.
    cluster_addresses: list[str] = field(default_factory=list)
    #: ``X-Tsuru-Cluster-Kube-Config``, as sent (base64 JSON).
    cluster_kube_config: Optional[str] = None


def _dict(text: str, of: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise Invalid(f"the parameters of {of} are not JSON: {err}") from None
    if not isinstance(value, dict):
        raise Invalid(f"the parameters of {of} are not a JSON object but {shown(value)}")
    return value


def _parameters(text: str, cls: type[T], of: str) -> T:
    """The parameters in ``text`` read into ``cls``, or :class:`Invalid` in
    the words of guest-sdk/CONTRACT.md."""
    try:
        return read(cls, _dict(text, of))
    except Mismatch as err:
        raise Invalid(f'parameter "{err.key}" of {of} {err.problem}') from None
    except Unknown as err:
        declared = names(cls)
        if not declared:
            raise Invalid(f'{of} has no parameter "{err.key}"; it takes no parameters') from None
        raise Invalid(f'{of} has no parameter "{err.key}"; the parameters are: {", ".join(declared)}') from None


@dataclass
class Instance:
    """What the host keeps for an instance and hands to every call on it."""

    name: str
    plan: Optional[str] = None
    team: Optional[str] = None
    description: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    #: The instance's parameters as a JSON object (``{}`` when none); read
    #: them with :meth:`parameters_dict` or :meth:`parameters_as`.
    parameters: str = "{}"
    #: The plugin's own value, as it last returned it from create or update
    #: (JSON text); read it with :meth:`data_as`.
    data: Optional[str] = None

    def parameters_dict(self) -> dict[str, Any]:
        """The parameters (``tsuru service instance add -p ...``) as a dict.

        Form-encoded keys such as ``parameters.db.size`` arrive nested, and
        their values as text; JSON ones typed.
        """
        return _dict(self.parameters, f'instance "{self.name}"')

    def parameters_as(self, cls: type[T]) -> T:
        """The parameters read into the dataclass ``cls``.

        A field takes its JSON value or the text tsuru's CLI sends for it
        (``"128"`` for an ``int``). A value that does not fit, a parameter
        ``cls`` does not declare or a required one absent is the caller's
        mistake, answered as :class:`Invalid` (400) with a sentence naming it.
        """
        return _parameters(self.parameters, cls, f'instance "{self.name}"')

    def data_as(self, cls: Optional[type[T]] = None) -> Optional[T]:
        """The data returned with ``Provisioned.ready(data=...)``, decoded.

        ``None`` when the plugin returned none. With ``cls`` (a dataclass) it
        is built into one, read as parameters are, ignoring fields ``cls`` no
        longer declares; without, it is the JSON value.
        """
        if self.data is None:
            return None
        try:
            value = json.loads(self.data)
            return value if cls is None else read(cls, value, strict=False)
        except ValueError as err:
            raise Failed(f'the data stored for instance "{self.name}" could not be read: {err}') from None


@dataclass
class CreateRequest:
    instance: Instance
    context: Context = field(default_factory=Context)


@dataclass
class UpdateRequest:
    #: The instance as the host has it now.
    current: Instance
    #: The instance as tsuru wants it: new plan, description, tags,
    #: parameters; ``data`` is the current one.
    next: Instance
    context: Context = field(default_factory=Context)


@dataclass
class AppBinding:
    app_name: str
    #: The app's public addresses, first the main one.
    app_hosts: list[str] = field(default_factory=list)
    app_internal_hosts: list[str] = field(default_factory=list)
    app_pool_name: Optional[str] = None
    app_pool_provisioner: Optional[str] = None
    app_cluster_name: Optional[str] = None
    app_cluster_provisioner: Optional[str] = None
    app_cluster_addresses: list[str] = field(default_factory=list)
    #: The binding's parameters as a JSON object (``{}`` when none).
    parameters: str = "{}"
    context: Context = field(default_factory=Context)

    def parameters_dict(self) -> dict[str, Any]:
        """The binding's parameters as a dict."""
        return _dict(self.parameters, f'the binding of app "{self.app_name}"')

    def parameters_as(self, cls: type[T]) -> T:
        """The binding's parameters read into the dataclass ``cls``, as
        :meth:`Instance.parameters_as` reads an instance's."""
        return _parameters(self.parameters, cls, f'the binding of app "{self.app_name}"')


@dataclass
class JobBinding:
    job_name: str
    job_pool_name: Optional[str] = None
    job_cluster_name: Optional[str] = None
    context: Context = field(default_factory=Context)


@dataclass
class ProxyRequest:
    """A call tsuru forwards as it came (``tsuru service instance proxy``).

    ``path`` is what follows the instance name, or the whole path for a
    service-level call.
    """

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    context: Context = field(default_factory=Context)

    def query_values(self, name: str) -> list[str]:
        """Every value of a query parameter, in order."""
        return [value for key, value in self.query if key == name]

    def header(self, name: str) -> Optional[str]:
        """The first value of a header, by case-insensitive name."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced by U+FFFD)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body read as JSON; a body that is not JSON is answered 400."""
        try:
            return json.loads(self.body)
        except ValueError as err:
            raise Invalid(f"the body of {self.method} {self.path} is not JSON: {err}") from None


@dataclass
class ProxyResponse:
    """What a proxied call answers."""

    status: int = 200
    body: Union[bytes, str] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str, value: str) -> "ProxyResponse":
        """Adds a header (a name may be given more than once); answers ``self``."""
        self.headers.append((name, value))
        return self

    @classmethod
    def json(cls, status: int, value: Any) -> "ProxyResponse":
        """A JSON body, with ``content-type: application/json``."""
        body = to_json(value)
        return cls(status, body).header("content-type", "application/json")


@dataclass(frozen=True)
class Plan:
    """A plan offered by the service."""

    name: str
    description: str = ""


@dataclass(frozen=True)
class InfoItem:
    """A line of ``tsuru service instance info``; ``value`` is written with ``str()``."""

    label: str
    value: Any


class Status:
    """What ``tsuru service instance status`` shows.

    ``Status.UP`` (204), ``Status.pending(note)`` (202),
    ``Status.down(reason)`` (500) or ``Status.custom(text)`` (200).
    """

    UP: ClassVar["Status"]
    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str = "") -> None:
        if kind not in ("up", "pending", "down", "custom"):
            raise ValueError(f"a status is up, pending, down or custom, not {kind!r}")
        self.kind = kind
        self.text = str(text)

    @classmethod
    def up(cls) -> "Status":
        return cls.UP

    @classmethod
    def pending(cls, note: str) -> "Status":
        """Still provisioning, with a note (202)."""
        return cls("pending", note)

    @classmethod
    def down(cls, reason: str) -> "Status":
        """Broken, with the reason (500)."""
        return cls("down", reason)

    @classmethod
    def custom(cls, text: str) -> "Status":
        """Any other state, shown as written (200)."""
        return cls("custom", text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Status) and (self.kind, self.text) == (other.kind, other.text)

    def __hash__(self) -> int:
        return hash((self.kind, self.text))

    def __repr__(self) -> str:
        return "Status.UP" if self.kind == "up" else f"Status.{self.kind}({self.text!r})"


Status.UP = Status("up")


def _jsonable(value: Any) -> Any:
    """What ``json`` writes for a dataclass: a dict of its fields, in order."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"a {type(value).__name__} cannot be written as JSON")


def to_json(value: Any) -> str:
    """``value`` as compact JSON; dataclasses as objects."""
    return json.dumps(value, default=_jsonable, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_KEEP = object()


@dataclass(frozen=True)
class Provisioned:
    """How far a create or update got, and what to remember.

    ``Provisioned.ready(data=...)`` or ``Provisioned.pending(data=...)``:
    ``data`` (a dataclass, or anything ``json`` writes) is kept by the host
    with the instance and comes back in every later call as
    ``instance.data_as(...)``; without it the instance keeps what it had.
    """

    is_pending: bool
    #: The data as JSON text, or ``None`` to keep the instance's.
    data: Optional[str] = None

    @classmethod
    def ready(cls, data: Any = _KEEP) -> "Provisioned":
        """Done."""
        return cls(False, _encode_data(data))

    @classmethod
    def pending(cls, data: Any = _KEEP) -> "Provisioned":
        """Still provisioning: binds answer 412 until ``status`` says up."""
        return cls(True, _encode_data(data))


def _encode_data(data: Any) -> Optional[str]:
    if data is _KEEP or data is None:
        return None
    try:
        return to_json(data)
    except (TypeError, ValueError) as err:
        raise Failed(f"the plugin's instance data could not be encoded: {err}") from None


def env_items(env: Any, action: str) -> list[tuple[str, str]]:
    """A bind's answer as WIT wants it: pairs sorted by name, values as text."""
    if isinstance(env, dict):
        pairs: Iterable[Any] = env.items()
    elif isinstance(env, (list, tuple)):
        pairs = env
    else:
        raise Failed(
            f"the plugin's {action} returned {type(env).__name__}; return a dict of env var names to values"
        )
    out: dict[str, str] = {}
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise Failed(f"the plugin's {action} returned {pair!r} as an env var; give (name, value) pairs") from None
        if not isinstance(name, str):
            raise Failed(f"the plugin's {action} returned an env var named {name!r}; names are text")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise Failed(
                f"the plugin's {action} returned env var {name} as {type(value).__name__}; values are text"
            )
        out[name] = str(value)
    return sorted(out.items())
