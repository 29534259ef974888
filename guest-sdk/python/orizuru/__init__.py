"""Write a tsuru service API as an Orizuru plugin, in Python.

Orizuru serves tsuru's service API over HTTP, keeps the instance ledger (so
duplicate creates, unknown instances and retried events are answered without
your code) and calls your plugin once per tsuru action, each time in a fresh
sandbox. A plugin subclasses :class:`Service`, overriding the actions it
offers, and exports it::

    import orizuru

    class Fake(orizuru.Service):
        def bind_app(self, instance, app):
            return {"SOMEVAR": "somevalue"}

    orizuru.export(Fake)

Build it with ``orizuru-build PLUGIN_DIR plugin.wasm``.

Parameters are declared as a dataclass and read with
``instance.parameters_as(Parameters)``: a field typed ``int``, ``float`` or
``bool`` also takes the text tsuru's CLI sends (``-p size_mb=128``).

Every error you raise becomes the body tsuru shows its user word for word,
so write it as one sentence that names the thing and what to do. Another
exception (a bug) is answered 500 with a sentence naming its type and
message, and its traceback goes to the host's log.

Capabilities, each granted per service by the operator and built in with
``--with``: :mod:`orizuru.log`, :mod:`orizuru.config`, :mod:`orizuru.kv`,
:mod:`orizuru.sql`.
"""

from ._errors import Conflict, Error, Failed, Invalid, MissingParams, NotFound, NotReady, Unsupported
from ._service import Service, export
from ._types import (
    AppBinding,
    Context,
    CreateRequest,
    Env,
    InfoItem,
    Instance,
    JobBinding,
    Plan,
    Provisioned,
    ProxyRequest,
    ProxyResponse,
    Status,
    UpdateRequest,
)

__all__ = [
    "AppBinding",
    "Conflict",
    "Context",
    "CreateRequest",
    "Env",
    "Error",
    "Failed",
    "InfoItem",
    "Instance",
    "Invalid",
    "JobBinding",
    "MissingParams",
    "NotFound",
    "NotReady",
    "Plan",
    "Provisioned",
    "ProxyRequest",
    "ProxyResponse",
    "Service",
    "Status",
    "Unsupported",
    "UpdateRequest",
    "export",
]
