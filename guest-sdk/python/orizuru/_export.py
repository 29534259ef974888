"""The glue between componentize-py's generated bindings and :class:`Service`.

Imported only by the module the build generates; authors never see it.
Every answer is checked and converted here, and every exception turned into
the WIT ``error`` the host answers tsuru with.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from typing import Any, Callable

from componentize_py_types import Err
from orizuru_wit.imports import orizuru_service_types_0_1_0 as wit

from ._errors import Conflict, Error, Failed, Invalid, MissingParams, NotFound, NotReady, Unsupported
from ._parameters import warm
from ._service import Service, exported
from ._types import (
    AppBinding,
    Context,
    CreateRequest,
    InfoItem,
    Instance,
    JobBinding,
    Plan,
    Provisioned,
    ProxyRequest,
    ProxyResponse,
    Status,
    UpdateRequest,
    env_items,
)


def _context(c: Any) -> Context:
    return Context(
        c.user,
        c.event_id,
        c.request_id,
        c.pool_name,
        c.pool_provisioner,
        c.cluster_name,
        c.cluster_provisioner,
        c.cluster_addresses,
        c.cluster_kube_config,
    )


def _instance(i: Any) -> Instance:
    return Instance(i.name, i.plan, i.team, i.description, i.tags, i.parameters, i.data)


def _app(a: Any) -> AppBinding:
    return AppBinding(
        a.app_name,
        a.app_hosts,
        a.app_internal_hosts,
        a.app_pool_name,
        a.app_pool_provisioner,
        a.app_cluster_name,
        a.app_cluster_provisioner,
        a.app_cluster_addresses,
        a.parameters,
        _context(a.context),
    )


def _job(j: Any) -> JobBinding:
    return JobBinding(j.job_name, j.job_pool_name, j.job_cluster_name, _context(j.context))


def _wit_error(error: Error) -> Any:
    if isinstance(error, Unsupported):
        return wit.Error_Unsupported()
    if isinstance(error, MissingParams):
        return wit.Error_MissingParams(list(error.names))
    for kind, case in (
        (Invalid, wit.Error_Invalid),
        (NotFound, wit.Error_NotFound),
        (Conflict, wit.Error_Conflict),
        (NotReady, wit.Error_NotReady),
    ):
        if isinstance(error, kind):
            return case(error.message)
    return wit.Error_Failed(error.message)


def _call(action: Callable[[], Any]) -> Any:
    """Runs an action; an exception becomes the WIT error the host answers.

    An :class:`orizuru.Error` is the author's refusal and goes as it is. Any
    other exception is a bug: its traceback goes to stderr (the host's log,
    tagged with the service and the call) and tsuru gets a 500 whose sentence
    names its type and message, as a Rust panic gets one (the sandbox is
    discarded after every call either way).
    """
    try:
        return action()
    except Error as error:
        raise Err(_wit_error(error)) from None
    except Exception as error:  # a bug in the plugin: answer it, log the traceback
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        what = type(error).__name__
        detail = str(error)
        raise Err(
            wit.Error_Failed(
                f"the plugin failed on an unexpected {what}"
                + (f" ({detail})" if detail else "")
                + "; its traceback is in the host's log"
            )
        ) from None


def _provisioned(value: Any, action: str) -> Any:
    if not isinstance(value, Provisioned):
        raise Failed(
            f"the plugin's {action} returned {value!r}; return orizuru.Provisioned.ready() "
            "or orizuru.Provisioned.pending()"
        )
    return (wit.Provisioned_Pending if value.is_pending else wit.Provisioned_Ready)(value.data)


def _plans(value: Any) -> list[Any]:
    out = []
    for plan in _listed(value, "plans", "orizuru.Plan(name, description)"):
        if isinstance(plan, Plan):
            out.append(wit.Plan(str(plan.name), str(plan.description)))
        elif isinstance(plan, tuple) and len(plan) == 2:
            out.append(wit.Plan(str(plan[0]), str(plan[1])))
        else:
            raise Failed(f"the plugin's plans returned {plan!r} as a plan; give orizuru.Plan(name, description)")
    return out


def _info(value: Any) -> list[Any]:
    if isinstance(value, dict):
        value = list(value.items())
    out = []
    for item in _listed(value, "info", "orizuru.InfoItem(label, value)"):
        if isinstance(item, InfoItem):
            out.append(wit.InfoItem(str(item.label), str(item.value)))
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(wit.InfoItem(str(item[0]), str(item[1])))
        else:
            raise Failed(f"the plugin's info returned {item!r} as a line; give orizuru.InfoItem(label, value)")
    return out


def _listed(value: Any, action: str, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise Failed(f"the plugin's {action} returned {type(value).__name__}; return a list of {what}")
    return list(value)


def _status(value: Any) -> Any:
    if not isinstance(value, Status):
        raise Failed(
            f"the plugin's status returned {value!r}; return orizuru.Status.UP, Status.pending(note), "
            "Status.down(reason) or Status.custom(text)"
        )
    if value.kind == "up":
        return wit.InstanceStatus_Up()
    case = {"pending": wit.InstanceStatus_Pending, "down": wit.InstanceStatus_Down}.get(
        value.kind, wit.InstanceStatus_Custom
    )
    return case(value.text)


def _proxy_response(value: Any) -> Any:
    if not isinstance(value, ProxyResponse):
        raise Failed(f"the plugin's proxy returned {value!r}; return an orizuru.ProxyResponse(status, body)")
    body = value.body.encode("utf-8") if isinstance(value.body, str) else bytes(value.body)
    status = value.status
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise Failed(f"the plugin's proxy answered status {status!r}; give a number from 100 to 599")
    headers = [(str(name), str(header)) for name, header in value.headers]
    return wit.ProxyResponse(status, headers, body)


def _ignored(value: Any) -> None:
    return None


def _warm(module_name: str) -> None:
    """Reads the field types of the dataclasses of the author's module now,
    at build time, so the snapshot holds them and no call pays for it (every
    call starts from that snapshot)."""
    module = sys.modules.get(module_name)
    for value in list(vars(module).values()) if module is not None else []:
        if isinstance(value, type) and dataclasses.is_dataclass(value):
            try:
                warm(value)
            except (TypeError, NameError):
                pass  # not one the SDK reads (its data, say): if it is used, the call says why


def handler() -> type:
    """The class componentize-py exports as ``orizuru:service/handler``."""
    service = exported()
    if service is None:
        raise RuntimeError(
            "the plugin exports no service; end its module with `orizuru.export(YourService)`, "
            "YourService being a subclass of orizuru.Service"
        )
    s: Service = service
    _warm(type(service).__module__)

    class Handler:
        def plans(self, ctx: Any) -> Any:
            return _call(lambda: _plans(s.plans(_context(ctx))))

        def create(self, req: Any) -> Any:
            return _call(
                lambda: _provisioned(s.create(CreateRequest(_instance(req.instance), _context(req.context))), "create")
            )

        def update(self, req: Any) -> Any:
            return _call(
                lambda: _provisioned(
                    s.update(UpdateRequest(_instance(req.current), _instance(req.next), _context(req.context))),
                    "update",
                )
            )

        def remove(self, inst: Any, ctx: Any) -> None:
            return _call(lambda: _ignored(s.remove(_instance(inst), _context(ctx))))

        def info(self, inst: Any, ctx: Any) -> Any:
            return _call(lambda: _info(s.info(_instance(inst), _context(ctx))))

        def status(self, inst: Any, ctx: Any) -> Any:
            return _call(lambda: _status(s.status(_instance(inst), _context(ctx))))

        def bind_app(self, inst: Any, app: Any) -> Any:
            return _call(lambda: env_items(s.bind_app(_instance(inst), _app(app)), "bind_app"))

        def unbind_app(self, inst: Any, app: Any) -> None:
            return _call(lambda: _ignored(s.unbind_app(_instance(inst), _app(app))))

        def bind_job(self, inst: Any, job: Any) -> Any:
            return _call(lambda: env_items(s.bind_job(_instance(inst), _job(job)), "bind_job"))

        def unbind_job(self, inst: Any, job: Any) -> None:
            return _call(lambda: _ignored(s.unbind_job(_instance(inst), _job(job))))

        def proxy(self, inst: Any, req: Any) -> Any:
            def run() -> Any:
                request = ProxyRequest(
                    req.method, req.path, req.query, req.headers, bytes(req.body), _context(req.context)
                )
                return _proxy_response(s.proxy(None if inst is None else _instance(inst), request))

            return _call(run)

    return Handler
