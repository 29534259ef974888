"""The ``Service`` base class and ``export``."""

from __future__ import annotations

from typing import Optional

from ._errors import Unsupported
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


class Service:
    """A tsuru service. Every action has a default, so a plugin writes only
    the ones its service offers:

    - ``plans``: no plans; ``info``: nothing to add; ``status``: up;
    - ``create``: ready, with nothing to remember (a service with nothing to
      provision); ``remove``, ``unbind_app``, ``unbind_job``: nothing to undo;
    - ``update``, ``bind_app``, ``bind_job``, ``proxy``: :class:`Unsupported`,
      which the host answers as tsuru expects ("this service does not
      support ...").

    Each call runs in a fresh sandbox: attributes set during one call are
    gone at the next. The instance is made once, when the plugin is built,
    so ``__init__`` must not use capabilities (log, config, kv, sql).
    """

    def plans(self, context: Context) -> list[Plan]:
        """The plans offered, for ``tsuru service info`` and ``service-instance-add -p``."""
        return []

    def create(self, request: CreateRequest) -> Provisioned:
        """Provision a new instance.

        The host has already checked that the name is free; answer
        ``Provisioned.pending()`` when provisioning finishes later and
        ``status`` will report when it is up.
        """
        return Provisioned.ready()

    def update(self, request: UpdateRequest) -> Provisioned:
        """Change an instance's plan, description, tags or parameters."""
        raise Unsupported()

    def remove(self, instance: Instance, context: Context) -> None:
        """Tear an instance down. Also called for an instance whose creation
        did not finish, so take half-made things in your stride."""

    def info(self, instance: Instance, context: Context) -> list[InfoItem]:
        """Extra lines for ``tsuru service instance info``."""
        return []

    def status(self, instance: Instance, context: Context) -> Status:
        """The instance's health, for ``tsuru service instance status``."""
        return Status.UP

    def bind_app(self, instance: Instance, app: AppBinding) -> Env:
        """Bind an app: answer the env vars it gets."""
        raise Unsupported()

    def unbind_app(self, instance: Instance, app: AppBinding) -> None:
        """Undo ``bind_app``. Also called after a bind that failed half-way."""

    def bind_job(self, instance: Instance, job: JobBinding) -> Env:
        """Bind a job: answer the env vars it gets."""
        raise Unsupported()

    def unbind_job(self, instance: Instance, job: JobBinding) -> None:
        """Undo ``bind_job``."""

    def proxy(self, instance: Optional[Instance], request: ProxyRequest) -> ProxyResponse:
        """A request tsuru forwards as it came (``tsuru service instance
        proxy``); ``instance`` is ``None`` for a service-level call."""
        raise Unsupported()


_exported: Optional[Service] = None


def export(service: type) -> type:
    """Makes ``service`` (a subclass of :class:`Service`) the plugin's
    implementation of the Orizuru contract. Call it once, in the plugin's
    module; it also works as a class decorator (``@orizuru.export``)."""
    global _exported
    if not (isinstance(service, type) and issubclass(service, Service)):
        raise TypeError(
            f"orizuru.export takes a subclass of orizuru.Service, not {service!r}; "
            "declare your class as `class MyService(orizuru.Service):`"
        )
    if _exported is not None and type(_exported) is not service:
        raise TypeError(
            f"orizuru.export was called for {type(_exported).__name__} and again for "
            f"{service.__name__}; a plugin exports one service"
        )
    _exported = service()
    return service


def exported() -> Optional[Service]:
    """The service given to :func:`export`, made once."""
    return _exported
