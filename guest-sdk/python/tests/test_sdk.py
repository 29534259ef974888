"""The SDK's logic under plain CPython: `python3 -m unittest discover guest-sdk/python/tests`.

The decoding sentences were taken from serde_json 1.0.154 deserializing the
Rust queue's parameter structs (plugins/queue/src/lib.rs) from the same text.
"""

import dataclasses
import os
import sys
import unittest
from typing import Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import orizuru  # noqa: E402
from orizuru._decode import DecodeError, decode_object, rust_float  # noqa: E402
from orizuru._types import env_items  # noqa: E402


def _number(value):
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        if value.strip().isdigit():
            return int(value.strip())
        raise ValueError(f'"{value}" is not a whole number')
    raise ValueError("data did not match any variant of untagged enum NumberOrText")


@dataclasses.dataclass
class Parameters:
    retention_hours: Optional[int] = orizuru.parse_with(_number)
    provision_seconds: Optional[int] = orizuru.parse_with(_number)
    simulate: Optional[str] = None


@dataclasses.dataclass
class Bind:
    prefix: Optional[str] = None


@dataclasses.dataclass
class Required:
    name: str
    size: int = 1
    ratio: float = 0.5
    on: bool = False


class Decoding(unittest.TestCase):
    def refused(self, text, cls=Parameters):
        with self.assertRaises(DecodeError) as caught:
            decode_object(text, cls)
        return str(caught.exception)

    def test_fits(self):
        self.assertEqual(decode_object('{"retention_hours":"48"}', Parameters), Parameters(48, None, None))
        self.assertEqual(decode_object('{"simulate":null}', Parameters), Parameters())
        self.assertEqual(decode_object('{"name":"x","on":true,"ratio":2,"size":-3}', Required),
                         Required("x", -3, 2.0, True))

    def test_serde_sentences(self):
        cases = {
            '{"retention_hours":"abc"}': '"abc" is not a whole number at line 1 column 25',
            '{"retention_hours":"abc","simulate":"down"}': '"abc" is not a whole number at line 1 column 24',
            '{"retention_hours":-1}': "data did not match any variant of untagged enum NumberOrText at line 1 column 22",
            '{"retention_hours":{"a":1}}': "data did not match any variant of untagged enum NumberOrText at line 1 column 27",
            '{"simulate":5}': "invalid type: integer `5`, expected a string at line 1 column 13",
            '{"simulate":1e+16}': "invalid type: floating point `1e+16`, expected a string at line 1 column 17",
            '{"simulate":[1,2]}': "invalid type: sequence, expected a string at line 1 column 12",
            '{"simulate":true}': "invalid type: boolean `true`, expected a string at line 1 column 16",
            '{"db":{"size":"1"}}': "unknown field `db`, expected one of `retention_hours`, `provision_seconds`, "
            "`simulate` at line 1 column 5",
            '{"simulate":"é","zz":1}': "unknown field `zz`, expected one of `retention_hours`, `provision_seconds`, "
            "`simulate` at line 1 column 21",
        }
        for text, sentence in cases.items():
            with self.subTest(text=text):
                self.assertEqual(self.refused(text), sentence)
        self.assertEqual(self.refused('{"other":"x"}', Bind), "unknown field `other`, expected `prefix` at line 1 column 8")
        self.assertEqual(self.refused('{}', Required), "missing field `name` at line 1 column 2")
        self.assertEqual(self.refused('{"name":"x","size":1.5}', Required),
                         "invalid type: floating point `1.5`, expected i64 at line 1 column 22")

    def test_floats_as_serde_writes_them(self):
        for value, text in [(1.0, "1.0"), (1e15, "1000000000000000.0"), (1e16, "1e+16"), (1e-5, "0.00001"),
                            (1e-6, "1e-6"), (-0.0, "-0.0"), (2.5e-10, "2.5e-10"), (5e-324, "5e-324")]:
            self.assertEqual(rust_float(value), text)

    def test_unsupported_field_type_names_it(self):
        @dataclasses.dataclass
        class Odd:
            when: bytes = b""

        with self.assertRaisesRegex(TypeError, "field 'when'"):
            decode_object("{}", Odd)


class Types(unittest.TestCase):
    def test_parameters_refusal_is_invalid(self):
        instance = orizuru.Instance("orders", parameters='{"size":1}')
        with self.assertRaises(orizuru.Invalid) as caught:
            instance.parameters_as(Parameters)
        self.assertEqual(
            str(caught.exception),
            'the parameters of instance "orders" are not valid: unknown field `size`, expected one of '
            "`retention_hours`, `provision_seconds`, `simulate` at line 1 column 7",
        )
        app = orizuru.AppBinding("web", parameters='{"x":1}')
        with self.assertRaisesRegex(orizuru.Invalid, '^the parameters of the binding of app "web" are not valid'):
            app.parameters_as(Bind)
        self.assertEqual(instance.parameters_dict(), {"size": 1})

    def test_data_round_trip(self):
        @dataclasses.dataclass
        class Data:
            vhost: str
            ready_at: int
            simulate: Optional[str]

        provisioned = orizuru.Provisioned.pending(Data("/orders", 12, None))
        self.assertTrue(provisioned.is_pending)
        self.assertEqual(provisioned.data, '{"vhost":"/orders","ready_at":12,"simulate":null}')
        self.assertIsNone(orizuru.Provisioned.ready().data)
        instance = orizuru.Instance("orders", data=provisioned.data)
        self.assertEqual(instance.data_as(Data), Data("/orders", 12, None))
        self.assertEqual(instance.data_as(), {"vhost": "/orders", "ready_at": 12, "simulate": None})
        self.assertIsNone(orizuru.Instance("x").data_as(Data))
        with self.assertRaisesRegex(orizuru.Failed, 'the data stored for instance "bad" could not be read'):
            orizuru.Instance("bad", data="{").data_as(Data)
        with self.assertRaisesRegex(orizuru.Failed, "could not be encoded"):
            orizuru.Provisioned.ready(object())

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
        instance = orizuru.Instance("x")
        self.assertEqual(service.plans(context), [])
        self.assertEqual(service.create(orizuru.CreateRequest(instance)), orizuru.Provisioned.ready())
        self.assertEqual(service.status(instance, context), orizuru.Status.UP)
        self.assertEqual(service.info(instance, context), [])
        self.assertIsNone(service.remove(instance, context))
        for call in (lambda: service.update(orizuru.UpdateRequest(instance, instance)),
                     lambda: service.bind_app(instance, orizuru.AppBinding("web")),
                     lambda: service.bind_job(instance, orizuru.JobBinding("nightly")),
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
            self.assertRaisesRegex(orizuru.Failed, "works only inside a plugin", call)


if __name__ == "__main__":
    unittest.main()
