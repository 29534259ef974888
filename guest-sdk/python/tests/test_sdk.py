"""The SDK's logic under plain CPython: `python3 -m unittest discover -s guest-sdk/python/tests`.

The parameter sentences are guest-sdk/CONTRACT.md's ("Parameters").
"""

import dataclasses
import json
import os
import sys
import unittest
from datetime import date
from typing import Annotated, Any, Literal, Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import orizuru  # noqa: E402
from orizuru._types import env_items  # noqa: E402


@dataclasses.dataclass
class Parameters:
    retention_hours: int = 24
    provision_seconds: Optional[int] = None
    simulate: "str | None" = None
    durable: bool = True
    max_rate: Optional[float] = None


@dataclasses.dataclass
class Bind:
    prefix: Optional[str] = None


@dataclasses.dataclass
class Group:
    complex1: str
    complex2: str = "c2"


@dataclasses.dataclass
class Nested:
    p1: str = ""
    p2: Group = dataclasses.field(default_factory=lambda: Group("c1"))
    size: Literal["small", "large"] = "small"
    extra: dict = dataclasses.field(default_factory=dict)
    ports: list[int] = dataclasses.field(default_factory=list)


def _iso_date(value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError("a date such as 2024-05-01") from None


@dataclasses.dataclass
class Custom:
    starts: Annotated[date, _iso_date]
    note: Annotated[str, "free text"] = ""


@dataclasses.dataclass
class Nothing:
    pass


def instance(parameters: str) -> orizuru.Instance:
    return orizuru.Instance("orders", parameters=parameters)


class Parameters_(unittest.TestCase):
    def refused(self, text: str, cls: type = Parameters) -> str:
        with self.assertRaises(orizuru.Invalid) as caught:
            instance(text).parameters_as(cls)
        return str(caught.exception)

    def test_text_from_tsuru_reads_as_the_declared_type(self):
        self.assertEqual(
            instance('{"retention_hours":"48","durable":"false","max_rate":"12.5","simulate":"down"}').parameters_as(
                Parameters
            ),
            Parameters(48, None, "down", False, 12.5),
        )
        for text, value in [("128", 128), ("+5", 5), ("-3", -3), (" 7 ", 7), ("\t42\n", 42)]:
            self.assertEqual(instance(json.dumps({"retention_hours": text})).parameters_as(Parameters).retention_hours,
                             value, text)
        for text, value in [("1.5", 1.5), ("2", 2.0), ("-0.25", -0.25), ("1e3", 1000.0), (".5", 0.5), (" 3. ", 3.0)]:
            self.assertEqual(instance(json.dumps({"max_rate": text})).parameters_as(Parameters).max_rate, value, text)
        for text, value in [("true", True), ("FALSE", False), ("True", True)]:
            self.assertIs(instance(json.dumps({"durable": text})).parameters_as(Parameters).durable, value, text)

    def test_json_values_read_as_themselves(self):
        self.assertEqual(
            instance('{"retention_hours":48,"provision_seconds":null,"durable":false,"max_rate":3}').parameters_as(
                Parameters
            ),
            Parameters(48, None, None, False, 3.0),
        )
        self.assertIsInstance(instance('{"max_rate":3}').parameters_as(Parameters).max_rate, float)
        self.assertEqual(instance("{}").parameters_as(Parameters), Parameters())

    def test_wrong_values_get_the_contracts_sentences(self):
        of = 'of instance "orders"'
        cases = {
            '{"retention_hours":"lots"}': f'parameter "retention_hours" {of} must be a whole number, not "lots"',
            '{"retention_hours":"1.5"}': f'parameter "retention_hours" {of} must be a whole number, not "1.5"',
            '{"retention_hours":""}': f'parameter "retention_hours" {of} must be a whole number, not ""',
            '{"retention_hours":1.5}': f'parameter "retention_hours" {of} must be a whole number, not 1.5',
            '{"retention_hours":"1_000"}': f'parameter "retention_hours" {of} must be a whole number, not "1_000"',
            '{"retention_hours":null}': f'parameter "retention_hours" {of} must be a whole number, not null',
            '{"retention_hours":true}': f'parameter "retention_hours" {of} must be a whole number, not true',
            '{"retention_hours":"9223372036854775808"}': f'parameter "retention_hours" {of} must be a whole number '
            'from -9223372036854775808 to 9223372036854775807, not "9223372036854775808"',
            '{"retention_hours":-9223372036854775809}': f'parameter "retention_hours" {of} must be a whole number '
            "from -9223372036854775808 to 9223372036854775807, not -9223372036854775809",
            '{"max_rate":"fast"}': f'parameter "max_rate" {of} must be a number, not "fast"',
            '{"max_rate":"nan"}': f'parameter "max_rate" {of} must be a number, not "nan"',
            '{"max_rate":"inf"}': f'parameter "max_rate" {of} must be a number, not "inf"',
            '{"max_rate":"1_000"}': f'parameter "max_rate" {of} must be a number, not "1_000"',
            '{"max_rate":""}': f'parameter "max_rate" {of} must be a number, not ""',
            '{"max_rate":"1e999"}': f'parameter "max_rate" {of} must be a number, not "1e999"',
            '{"durable":"yes"}': f'parameter "durable" {of} must be true or false, not "yes"',
            '{"durable":"1"}': f'parameter "durable" {of} must be true or false, not "1"',
            '{"durable":1}': f'parameter "durable" {of} must be true or false, not 1',
            '{"simulate":5}': f'parameter "simulate" {of} must be text, not 5',
            '{"simulate":["a",{"b":"\\u00e9\\n"}]}': f'parameter "simulate" {of} must be text, not ["a",{{"b":"é\\n"}}]',
        }
        for text, sentence in cases.items():
            with self.subTest(text=text):
                self.assertEqual(self.refused(text), sentence)

    def test_undeclared_parameters_are_refused_naming_the_declared(self):
        self.assertEqual(
            self.refused('{"colour":"red"}'),
            'instance "orders" has no parameter "colour"; the parameters are: '
            "retention_hours, provision_seconds, simulate, durable, max_rate",
        )
        self.assertEqual(
            self.refused('{"a":1}', Nothing), 'instance "orders" has no parameter "a"; it takes no parameters'
        )
        with self.assertRaises(orizuru.Invalid) as caught:
            orizuru.AppBinding("web", parameters='{"prefx":"a"}').parameters_as(Bind)
        self.assertEqual(
            str(caught.exception), 'the binding of app "web" has no parameter "prefx"; the parameters are: prefix'
        )

    def test_nested_groups_are_named_dotted(self):
        self.assertEqual(
            instance('{"p1":"v1","p2":{"complex1":"c1","complex2":"x"}}').parameters_as(Nested),
            Nested("v1", Group("c1", "x")),
        )
        self.assertEqual(
            self.refused('{"p2":{"complex1":"c1","colour":"red"}}', Nested),
            'instance "orders" has no parameter "p2.colour"; the parameters are: '
            "p1, p2.complex1, p2.complex2, size, extra, ports",
        )
        self.assertEqual(
            self.refused('{"p2":"c1"}', Nested),
            'parameter "p2" of instance "orders" must be a group of parameters, not "c1"',
        )
        self.assertEqual(
            self.refused('{"p2":{}}', Nested), 'parameter "p2.complex1" of instance "orders" is missing'
        )

    def test_choices_groups_and_lists(self):
        self.assertEqual(
            instance('{"size":"large","extra":{"a":{"b":"1"}},"ports":["80",443]}').parameters_as(Nested),
            Nested(size="large", extra={"a": {"b": "1"}}, ports=[80, 443]),
        )
        self.assertEqual(
            self.refused('{"size":"huge"}', Nested),
            'parameter "size" of instance "orders" must be one of small, large, not "huge"',
        )
        self.assertEqual(
            self.refused('{"extra":"x"}', Nested),
            'parameter "extra" of instance "orders" must be a group of parameters, not "x"',
        )
        self.assertEqual(
            self.refused('{"ports":"80"}', Nested), 'parameter "ports" of instance "orders" must be a list, not "80"'
        )
        self.assertEqual(
            self.refused('{"ports":[80,"x"]}', Nested),
            'parameter "ports[1]" of instance "orders" must be a whole number, not "x"',
        )

    def test_required_parameters_and_custom_readers(self):
        self.assertEqual(
            instance('{"starts":"2024-05-01"}').parameters_as(Custom), Custom(date(2024, 5, 1))
        )
        self.assertEqual(self.refused("{}", Custom), 'parameter "starts" of instance "orders" is missing')
        self.assertEqual(
            self.refused('{"starts":"tomorrow"}', Custom),
            'parameter "starts" of instance "orders" must be a date such as 2024-05-01, not "tomorrow"',
        )
        self.assertEqual(
            self.refused('{"starts":"2024-05-01","note":3}', Custom),
            'parameter "note" of instance "orders" must be text, not 3',
        )

    def test_a_type_the_sdk_cannot_read_names_the_field(self):
        @dataclasses.dataclass
        class Odd:
            when: bytes = b""

        with self.assertRaisesRegex(TypeError, r"Odd\.when is declared as <class 'bytes'>"):
            instance("{}").parameters_as(Odd)
        with self.assertRaisesRegex(TypeError, "is not a dataclass"):
            instance("{}").parameters_as(dict)

    def test_parameters_dict(self):
        self.assertEqual(instance('{"size":1,"a":{"b":"2"}}').parameters_dict(), {"size": 1, "a": {"b": "2"}})
        with self.assertRaisesRegex(orizuru.Invalid, r'^the parameters of instance "orders" are not a JSON object'):
            instance("[1]").parameters_dict()


class Types(unittest.TestCase):
    def test_data_round_trip(self):
        @dataclasses.dataclass
        class Data:
            vhost: str
            ready_at: int
            parameters: Parameters

        provisioned = orizuru.Provisioned.pending(Data("/orders", 12, Parameters(max_rate=2.5)))
        self.assertTrue(provisioned.is_pending)
        kept = orizuru.Instance("orders", data=provisioned.data)
        self.assertEqual(kept.data_as(Data), Data("/orders", 12, Parameters(max_rate=2.5)))
        self.assertEqual(kept.data_as()["vhost"], "/orders")
        self.assertIsNone(orizuru.Provisioned.ready().data)
        self.assertIsNone(orizuru.Instance("x").data_as(Data))
        # A field an older version wrote and this one dropped is passed over.
        older = orizuru.Instance("orders", data='{"vhost":"/o","ready_at":1,"parameters":{},"gone":true}')
        self.assertEqual(older.data_as(Data), Data("/o", 1, Parameters()))
        with self.assertRaisesRegex(orizuru.Failed, '^the data stored for instance "bad" could not be read: '):
            orizuru.Instance("bad", data="{").data_as(Data)
        with self.assertRaisesRegex(
            orizuru.Failed, 'could not be read: "ready_at" must be a whole number, not "soon"$'
        ):
            orizuru.Instance("bad", data='{"vhost":"/o","ready_at":"soon","parameters":{}}').data_as(Data)
        with self.assertRaisesRegex(orizuru.Failed, "could not be encoded"):
            orizuru.Provisioned.ready(object())
        with self.assertRaisesRegex(orizuru.Failed, "could not be encoded"):
            orizuru.Provisioned.ready(float("nan"))

    def test_proxy_json_answer(self):
        answer = orizuru.ProxyResponse.json(202, {"names": ["a"], "group": Group("x")})
        self.assertEqual(answer.body, '{"names":["a"],"group":{"complex1":"x","complex2":"c2"}}')
        self.assertEqual(answer.headers, [("content-type", "application/json")])

    def test_env_sorted_and_checked(self):
        self.assertEqual(env_items({"B": "2", "A": 1}, "bind_app"), [("A", "1"), ("B", "2")])
        with self.assertRaisesRegex(orizuru.Failed, "env var A as NoneType"):
            env_items({"A": None}, "bind_app")

    def test_status_and_errors(self):
        self.assertEqual(orizuru.Status.up(), orizuru.Status.UP)
        self.assertEqual(orizuru.Status.pending("soon"), orizuru.Status("pending", "soon"))
        self.assertEqual(orizuru.MissingParams("a", ["b", "c"]).names, ["a", "b", "c"])
        self.assertEqual(orizuru.NotFound("gone").status, 404)

    def test_proxy_request_helpers(self):
        request = orizuru.ProxyRequest("POST", "/backup", [("n", "a"), ("m", "x"), ("n", "b")],
                                       [("X-Note", "hi")], b"\xff{}")
        self.assertEqual(request.query_values("n"), ["a", "b"])
        self.assertEqual(request.header("x-note"), "hi")
        self.assertIsNone(request.header("x-none"))
        self.assertEqual(request.text(), "\ufffd{}")

    def test_service_defaults(self):
        service = orizuru.Service()
        context = orizuru.Context()
        inst = orizuru.Instance("x")
        self.assertEqual(service.plans(context), [])
        self.assertEqual(service.create(orizuru.CreateRequest(inst)), orizuru.Provisioned.ready())
        self.assertEqual(service.status(inst, context), orizuru.Status.UP)
        self.assertEqual(service.info(inst, context), [])
        self.assertIsNone(service.remove(inst, context))
        for call in (lambda: service.update(orizuru.UpdateRequest(inst, inst)),
                     lambda: service.bind_app(inst, orizuru.AppBinding("web")),
                     lambda: service.bind_job(inst, orizuru.JobBinding("nightly")),
                     lambda: service.proxy(None, orizuru.ProxyRequest("GET", "/"))):
            self.assertRaises(orizuru.Unsupported, call)

    def test_export_takes_one_service(self):
        with self.assertRaisesRegex(TypeError, "subclass of orizuru.Service"):
            orizuru.export(object)

    def test_capabilities_outside_a_component(self):
        from orizuru import config, kv, log, sql

        log.info("to stderr")
        for call in (lambda: config.get("x"), lambda: kv.Bucket.open("b"),
                     lambda: sql.Connection("admin").query("SELECT 1")):
            self.assertRaisesRegex(orizuru.Failed, "works only inside a plugin built by orizuru-build", call)


if __name__ == "__main__":
    unittest.main()
