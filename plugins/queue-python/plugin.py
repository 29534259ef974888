"""A message-queue service, the stateful example, in Python: two plans,
typed parameters read into a dataclass, the instance's own data kept by the
host, a large plan that provisions in the background (pending, then up),
per-app credentials, info lines and a proxied backup call.

It answers tsuru as the Rust example (plugins/queue) does, so either can
serve the same service. It provisions nothing real; a real service would
call its broker where this one only computes names and credentials.

Build: guest-sdk/python/build plugins/queue-python queue-python.wasm
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass

import orizuru
from orizuru import (
    AppBinding,
    Context,
    CreateRequest,
    Failed,
    InfoItem,
    Instance,
    Invalid,
    JobBinding,
    NotFound,
    Plan,
    Provisioned,
    ProxyRequest,
    ProxyResponse,
    Status,
    UpdateRequest,
)

PLANS = {
    "small": "One queue, 100 messages a second",
    "large": "Ten queues, 10,000 messages a second; provisioning takes a while",
}


@dataclass
class Parameters:
    """What `tsuru service instance add queue NAME -p KEY=VALUE` may set."""

    # How long messages are kept, in hours (1 to 720).
    retention_hours: int = 24
    # How long provisioning takes, in seconds (5 on the large plan, else 0).
    provision_seconds: int | None = None
    # Makes `status` report a broken broker, to show how tsuru displays it.
    simulate: str | None = None
    # Whether messages survive a broker restart.
    durable: bool = True
    # Messages a second at most; none means unlimited.
    max_rate: float | None = None


@dataclass
class BindParameters:
    """What `tsuru service instance bind queue NAME -p KEY=VALUE` may set."""

    prefix: str | None = None


@dataclass
class Data:
    """What the plugin remembers about an instance, in the host's ledger."""

    vhost: str
    # When provisioning is done, in seconds since the epoch.
    ready_at: int
    parameters: Parameters


def now() -> int:
    return int(time.time())


def number(value: float) -> str:
    """The shortest text that reads back as ``value``, without ".0"."""
    return str(int(value)) if value.is_integer() else repr(value)


def provision(instance: Instance, delay: int | None) -> Provisioned:
    """Provisions (on paper) and answers what to remember; ``delay``
    overrides how long provisioning takes."""
    plan = instance.plan or "small"
    if plan not in PLANS:
        raise Invalid(f'plan "{plan}" does not exist; choose small or large')
    parameters = instance.parameters_as(Parameters)
    if not 1 <= parameters.retention_hours <= 720:
        raise Invalid(f"retention_hours is {parameters.retention_hours}; give a number of hours from 1 to 720")
    rate = parameters.max_rate
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise Invalid(f"max_rate is {number(rate)}; give a number of messages a second above 0")
    if delay is None:
        delay = parameters.provision_seconds
    if delay is None:
        delay = 5 if plan == "large" else 0
    data = Data(vhost=f"/{instance.name}", ready_at=now() + delay, parameters=parameters)
    return Provisioned.pending(data) if delay > 0 else Provisioned.ready(data)


def data(instance: Instance) -> Data:
    kept = instance.data_as(Data)
    if kept is None:
        raise Failed(f'instance "{instance.name}" has no queue data; remove it and create it again')
    return kept


def credentials(instance: Instance, user: str) -> dict[str, str]:
    vhost = data(instance).vhost
    # New at every bind: a real service would set it in its broker.
    password = secrets.token_hex(16)
    return {
        "QUEUE_URL": f"amqp://{user}:{password}@queue.example.com:5672{vhost}",
        "QUEUE_HOST": "queue.example.com",
        "QUEUE_PORT": "5672",
        "QUEUE_VHOST": vhost,
        "QUEUE_USER": user,
        "QUEUE_PASSWORD": password,
    }


class Queue(orizuru.Service):
    def plans(self, context: Context) -> list[Plan]:
        return [Plan(name, description) for name, description in PLANS.items()]

    def create(self, request: CreateRequest) -> Provisioned:
        return provision(request.instance, None)

    def update(self, request: UpdateRequest) -> Provisioned:
        current = data(request.current)
        next_ = request.next
        if next_.parameters == "{}":
            next_.parameters = request.current.parameters
        # A change finishes what provisioning had left, and nothing more.
        return provision(next_, max(current.ready_at - now(), 0))

    def status(self, instance: Instance, context: Context) -> Status:
        kept = data(instance)
        left = kept.ready_at - now()
        if kept.parameters.simulate == "down":
            return Status.down("the broker does not answer")
        if kept.parameters.simulate == "degraded":
            return Status.custom("degraded: 1 of 2 nodes up")
        if left > 0:
            return Status.pending(f"provisioning, about {left}s left")
        return Status.UP

    def info(self, instance: Instance, context: Context) -> list[InfoItem]:
        kept = data(instance)
        rate = kept.parameters.max_rate
        return [
            InfoItem("Plan", instance.plan or "small"),
            InfoItem("Virtual host", kept.vhost),
            InfoItem("Retention", f"{kept.parameters.retention_hours} hours"),
            InfoItem("Durable", "yes" if kept.parameters.durable else "no"),
            InfoItem("Max rate", "unlimited" if rate is None else f"{number(rate)} messages a second"),
        ]

    def bind_app(self, instance: Instance, app: AppBinding) -> dict[str, str]:
        parameters = app.parameters_as(BindParameters)
        env = credentials(instance, app.app_name)
        if parameters.prefix is not None:
            env["QUEUE_PREFIX"] = parameters.prefix
        return env

    def unbind_app(self, instance: Instance, app: AppBinding) -> None:
        return None

    def bind_job(self, instance: Instance, job: JobBinding) -> dict[str, str]:
        return credentials(instance, f"job-{job.job_name}")

    def proxy(self, instance: Instance | None, request: ProxyRequest) -> ProxyResponse:
        if instance is None:
            raise NotFound(f"the queue service has no service-level route {request.path}")
        if request.method != "POST" or request.path != "/backup":
            raise NotFound(
                f'instance "{instance.name}" has no route {request.method} {request.path}; try POST /backup'
            )
        context = request.context
        echo = {
            "instance": instance.name,
            "method": request.method,
            "path": request.path,
            "names": request.query_values("names"),
            "header": request.header("x-backup-note"),
            "body": request.text(),
            "user": context.user,
            "event_id": context.event_id,
            "request_id": context.request_id,
            "pool": context.pool_name,
            "cluster": context.cluster_name,
            "cluster_addresses": context.cluster_addresses,
        }
        return ProxyResponse.json(202, echo).header("x-queue-backup", "started")


orizuru.export(Queue)
