"""A message-queue service, the stateful example, in Python: two plans,
parameters decoded into a dataclass, the instance's own data kept by the
host, a large plan that provisions in the background (pending, then up),
per-app credentials, info lines and a proxied backup call.

It answers tsuru exactly as the Rust example (plugins/queue) does, byte for
byte, so either can serve the same service. It provisions nothing real; a
real service would call its broker where this one only computes names and
credentials.

Build: guest-sdk/python/build plugins/queue-python queue-python.wasm
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Optional

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

PLANS = [
    ("small", "One queue, 100 messages a second"),
    ("large", "Ten queues, 10,000 messages a second; provisioning takes a while"),
]

# What Rust's str::trim takes off (Unicode White_Space).
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_U64_MAX = 2**64 - 1


def whole_number(value: Any) -> Optional[int]:
    """Form-encoded parameters arrive as text, JSON ones as numbers: take both."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX:
        return value
    if isinstance(value, str):
        digits = value.strip(_WHITE_SPACE)
        digits = digits[1:] if digits.startswith("+") else digits
        if digits and digits.isascii() and digits.isdigit() and int(digits) <= _U64_MAX:
            return int(digits)
        raise ValueError(f'"{value}" is not a whole number')
    # The sentence serde gives the Rust example for anything else.
    raise ValueError("data did not match any variant of untagged enum NumberOrText")


@dataclass
class Parameters:
    """What `tsuru service instance add queue NAME -p KEY=VALUE` may set."""

    # How long messages are kept, in hours (1 to 720; 24 by default).
    retention_hours: Optional[int] = orizuru.parse_with(whole_number)
    # How long provisioning takes, in seconds (the large plan's default is 5).
    provision_seconds: Optional[int] = orizuru.parse_with(whole_number)
    # Makes `status` report a broken broker, to show how tsuru displays it.
    simulate: Optional[str] = None


@dataclass
class BindParameters:
    prefix: Optional[str] = None


@dataclass
class Data:
    """What the plugin remembers about an instance, in the host's ledger."""

    vhost: str
    retention_hours: int
    ready_at: int
    simulate: Optional[str]


def now() -> int:
    return int(time.time())


def check_plan(plan: Optional[str]) -> str:
    plan = plan if plan is not None else "small"
    if plan not in (name for name, _ in PLANS):
        raise Invalid(f'plan "{plan}" does not exist; choose small or large')
    return plan


def provision(instance: Instance, delay: Optional[int]) -> Provisioned:
    """Provisions (on paper) and answers what to remember; `delay`
    overrides how long provisioning takes."""
    plan = check_plan(instance.plan)
    parameters = instance.parameters_as(Parameters)
    retention_hours = parameters.retention_hours if parameters.retention_hours is not None else 24
    if not 1 <= retention_hours <= 720:
        raise Invalid(f"retention_hours is {retention_hours}; give a number of hours from 1 to 720")
    if delay is None:
        delay = parameters.provision_seconds
    if delay is None:
        delay = 5 if plan == "large" else 0
    data = Data(
        vhost=f"/{instance.name}",
        retention_hours=retention_hours,
        # u64 arithmetic, wrapping as the Rust example's release build does.
        ready_at=(now() + delay) & _U64_MAX,
        simulate=parameters.simulate,
    )
    return Provisioned.pending(data) if delay > 0 else Provisioned.ready(data)


def data(instance: Instance) -> Data:
    kept = instance.data_as(Data)
    if kept is None:
        raise Failed(f'instance "{instance.name}" has no queue data; remove it and create it again')
    return kept


def password(instance: str, client: str) -> str:
    """A password only this instance and client share (FNV-1a, 64 bits; a
    real service would generate one at bind and store it in the broker)."""
    hash_ = 0xCBF29CE484222325
    for byte in instance.encode() + b"/" + client.encode():
        hash_ ^= byte
        hash_ = (hash_ * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{hash_:016x}"


def credentials(instance: Instance, user: str) -> dict[str, str]:
    kept = data(instance)
    secret = password(instance.name, user)
    return {
        "QUEUE_URL": f"amqp://{user}:{secret}@queue.example.com:5672{kept.vhost}",
        "QUEUE_HOST": "queue.example.com",
        "QUEUE_PORT": "5672",
        "QUEUE_VHOST": kept.vhost,
        "QUEUE_USER": user,
        "QUEUE_PASSWORD": secret,
    }


class Queue(orizuru.Service):
    def plans(self, context: Context) -> list[Plan]:
        return [Plan(name, description) for name, description in PLANS]

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
        if kept.simulate == "down":
            return Status.down("the broker does not answer")
        if kept.simulate == "degraded":
            return Status.custom("degraded: 1 of 2 nodes up")
        if kept.ready_at > now():
            return Status.pending(f"provisioning, about {kept.ready_at - now()}s left")
        return Status.UP

    def info(self, instance: Instance, context: Context) -> list[InfoItem]:
        kept = data(instance)
        return [
            InfoItem("Plan", instance.plan if instance.plan is not None else "small"),
            InfoItem("Virtual host", kept.vhost),
            InfoItem("Retention", f"{kept.retention_hours} hours"),
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

    def proxy(self, instance: Optional[Instance], request: ProxyRequest) -> ProxyResponse:
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
        # serde_json writes an object's keys sorted, without spaces.
        body = json.dumps(echo, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return (
            ProxyResponse(202, body)
            .header("content-type", "application/json")
            .header("x-queue-backup", "started")
        )


orizuru.export(Queue)
