// The parameter reader against guest-sdk/CONTRACT.md's table and sentences.
// Run with `npm test` (it prepares dist/ first).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import * as mini from "zod/mini";
import { Invalid } from "../dist/errors.js";
import { readParameters } from "../dist/parameters.js";

const OF = 'instance "orders"';
const Queue = z.object({
  retention_hours: z.int().min(1).max(720).default(24),
  provision_seconds: z.int().optional(),
  simulate: z.string().optional(),
  durable: z.boolean().default(true),
  max_rate: z.number().optional(),
});

const read = (parameters, schema = Queue, of = OF) => readParameters(JSON.stringify(parameters), of, schema);

function refused(parameters, sentence, schema = Queue, of = OF) {
  assert.throws(
    () => read(parameters, schema, of),
    (err) => {
      assert.ok(err instanceof Invalid, `${err} is an Invalid`);
      assert.equal(err.payload.tag, "invalid");
      assert.equal(err.message, sentence);
      return true;
    },
  );
}

describe("a whole number", () => {
  const Size = z.object({ n: z.int().optional() });
  it("takes JSON integers and the text of one, spaces around ignored", () => {
    for (const [given, wanted] of [
      [128, 128],
      ["128", 128],
      ["+5", 5],
      ["-3", -3],
      [" 42 ", 42],
      ["007", 7],
    ]) {
      assert.deepEqual(read({ n: given }, Size), { n: wanted });
    }
  });
  it("refuses anything else", () => {
    for (const [given, shown] of [
      ["lots", '"lots"'],
      ["1.5", '"1.5"'],
      ["", '""'],
      [1.5, "1.5"],
      [true, "true"],
      ["1e3", '"1e3"'],
      [" ", '" "'],
    ]) {
      refused({ n: given }, `parameter "n" of ${OF} must be a whole number, not ${shown}`, Size);
    }
  });
  it("names its type's range when outside it", () => {
    refused(
      { n: "99999999999999999999" },
      `parameter "n" of ${OF} must be a whole number from -9007199254740991 to 9007199254740991, not "99999999999999999999"`,
      Size,
    );
    refused(
      { n: 3000000000 },
      `parameter "n" of ${OF} must be a whole number from -2147483648 to 2147483647, not 3000000000`,
      z.object({ n: z.int32() }),
    );
    refused(
      { n: "-1" },
      `parameter "n" of ${OF} must be a whole number from 0 to 4294967295, not "-1"`,
      z.object({ n: z.uint32() }),
    );
  });
  it("is whole also when declared z.number().int()", () => {
    assert.deepEqual(read({ n: "12" }, z.object({ n: z.number().int() })), { n: 12 });
    refused(
      { n: "1.5" },
      `parameter "n" of ${OF} must be a whole number, not "1.5"`,
      z.object({ n: z.number().int() }),
    );
  });
  it("reads as a bigint for z.bigint()", () => {
    assert.deepEqual(read({ n: "18446744073709551615" }, z.object({ n: z.bigint() })), { n: 18446744073709551615n });
    refused(
      { n: "-1" },
      `parameter "n" of ${OF} must be a whole number from 0 to 18446744073709551615, not "-1"`,
      z.object({ n: z.uint64() }),
    );
  });
});

describe("a number", () => {
  const Rate = z.object({ r: z.number() });
  it("takes JSON numbers and decimal text", () => {
    for (const [given, wanted] of [
      [12.5, 12.5],
      ["1.5", 1.5],
      ["2", 2],
      ["-0.25", -0.25],
      ["1e3", 1000],
      [".5", 0.5],
      [" 3 ", 3],
      ["2.", 2],
    ]) {
      assert.deepEqual(read({ r: given }, Rate), { r: wanted });
    }
  });
  it("refuses other text", () => {
    for (const given of ["fast", "nan", "NaN", "inf", "Infinity", "1_000", "", "0x10", "1e999"]) {
      refused({ r: given }, `parameter "r" of ${OF} must be a number, not ${JSON.stringify(given)}`, Rate);
    }
    refused({ r: false }, `parameter "r" of ${OF} must be a number, not false`, Rate);
  });
});

describe("a bool", () => {
  const Flag = z.object({ b: z.boolean() });
  it("takes true, false and their text in any case", () => {
    for (const [given, wanted] of [
      [true, true],
      [false, false],
      ["true", true],
      ["FALSE", false],
      ["True", true],
    ]) {
      assert.deepEqual(read({ b: given }, Flag), { b: wanted });
    }
  });
  it("refuses anything else", () => {
    for (const [given, shown] of [
      ["yes", '"yes"'],
      ["1", '"1"'],
      [1, "1"],
      ["", '""'],
    ]) {
      refused({ b: given }, `parameter "b" of ${OF} must be true or false, not ${shown}`, Flag);
    }
  });
});

describe("text", () => {
  it("takes a JSON string only", () => {
    assert.deepEqual(read({ simulate: "down" }), { simulate: "down", retention_hours: 24, durable: true });
    refused({ simulate: 5 }, `parameter "simulate" of ${OF} must be text, not 5`);
    refused({ simulate: { a: "1" } }, `parameter "simulate" of ${OF} must be text, not {"a":"1"}`);
  });
  it("shows a value JSON-escaped", () => {
    refused({ durable: 'say "hi"\n' }, `parameter "durable" of ${OF} must be true or false, not "say \\"hi\\"\\n"`);
  });
});

describe("optional and default", () => {
  it("take absent and null", () => {
    assert.deepEqual(read({}), { retention_hours: 24, durable: true });
    assert.deepEqual(read({ max_rate: null, durable: null }), { retention_hours: 24, durable: true });
  });
  it("nullable keeps null", () => {
    assert.deepEqual(read({ a: null }, z.object({ a: z.string().nullable() })), { a: null });
  });
  it("a required parameter absent is missing", () => {
    refused({}, `parameter "size_mb" of ${OF} is missing`, z.object({ size_mb: z.int() }));
    refused(
      { size_mb: null },
      `parameter "size_mb" of ${OF} must be a whole number, not null`,
      z.object({ size_mb: z.int() }),
    );
  });
});

describe("parameters not declared", () => {
  it("are refused, naming the declared ones in order", () => {
    refused(
      { colour: "red" },
      `${OF} has no parameter "colour"; the parameters are: retention_hours, provision_seconds, simulate, durable, max_rate`,
    );
    refused(
      { prefx: "a" },
      'the binding of app "web" has no parameter "prefx"; the parameters are: prefix',
      z.object({ prefix: z.string().optional() }),
      'the binding of app "web"',
    );
  });
  it("say so when none are taken", () => {
    refused({ a: "1" }, `${OF} has no parameter "a"; it takes no parameters`, z.object({}));
  });
  it("are kept by an object the author opened", () => {
    assert.deepEqual(read({ a: "1", b: "x" }, z.looseObject({ a: z.int() })), { a: 1, b: "x" });
    assert.deepEqual(read({ a: "1", b: "2" }, z.object({}).catchall(z.int())), { a: 1, b: 2 });
  });
});

describe("nested groups", () => {
  const Nested = z.object({ p1: z.string(), p2: z.object({ complex1: z.int(), complex2: z.boolean().optional() }) });
  it("read as form and JSON send them", () => {
    assert.deepEqual(read({ p1: "v1", p2: { complex1: "3", complex2: "true" } }, Nested), {
      p1: "v1",
      p2: { complex1: 3, complex2: true },
    });
  });
  it("name a parameter dotted", () => {
    refused(
      { p1: "v", p2: { complex1: "x" } },
      `parameter "p2.complex1" of ${OF} must be a whole number, not "x"`,
      Nested,
    );
    refused(
      { p1: "v", p2: { complex3: "x" } },
      `${OF} has no parameter "p2.complex3"; the parameters are: p1, p2.complex1, p2.complex2`,
      Nested,
    );
    refused({ p1: "v", p2: "x" }, `parameter "p2" of ${OF} must be a group of parameters, not "x"`, Nested);
    refused({ p1: "v", p2: {} }, `parameter "p2.complex1" of ${OF} is missing`, Nested);
  });
});

describe("lists and enumerations", () => {
  it("read their items", () => {
    assert.deepEqual(read({ ports: ["80", 443] }, z.object({ ports: z.array(z.int()) })), { ports: [80, 443] });
    refused(
      { ports: "80" },
      `parameter "ports" of ${OF} must be a list, not "80"`,
      z.object({ ports: z.array(z.int()) }),
    );
    refused(
      { ports: ["80", "x"] },
      `parameter "ports.1" of ${OF} must be a whole number, not "x"`,
      z.object({ ports: z.array(z.int()) }),
    );
  });
  it("name an enumeration's values", () => {
    const Tier = z.object({ tier: z.enum(["small", "large"]) });
    assert.deepEqual(read({ tier: "large" }, Tier), { tier: "large" });
    refused({ tier: "huge" }, `parameter "tier" of ${OF} must be one of small, large, not "huge"`, Tier);
  });
  it("take a union's first reading", () => {
    const Either = z.object({ v: z.union([z.int(), z.boolean()]) });
    assert.deepEqual(read({ v: "7" }, Either), { v: 7 });
    assert.deepEqual(read({ v: "true" }, Either), { v: true });
    refused({ v: "x" }, `parameter "v" of ${OF} must be a whole number or true or false, not "x"`, Either);
  });
});

describe("the author's own checks", () => {
  it("name the parameter and the limit", () => {
    refused({ retention_hours: "1000" }, `parameter "retention_hours" of ${OF} must be at most 720, not 1000`);
    refused({ retention_hours: 0 }, `parameter "retention_hours" of ${OF} must be at least 1, not 0`);
    refused({ r: "0" }, `parameter "r" of ${OF} must be above 0, not 0`, z.object({ r: z.number().positive() }));
    refused(
      { s: "ab" },
      `parameter "s" of ${OF} must be at least 3 characters long, not "ab"`,
      z.object({ s: z.string().min(3) }),
    );
  });
  it("keep the author's message", () => {
    const Even = z.object({ n: z.int().refine((n) => n % 2 === 0, "give an even number") });
    refused({ n: "3" }, `parameter "n" of ${OF} is not valid: give an even number`, Even);
  });
  it("run transforms on the value read", () => {
    assert.deepEqual(read({ mb: "2" }, z.object({ mb: z.int().transform((n) => n * 1024) })), { mb: 2048 });
  });
});

describe("zod/mini schemas", () => {
  it("read alike", () => {
    const Mini = mini.object({ n: mini.optional(mini.int()), b: mini._default(mini.boolean(), true) });
    assert.deepEqual(read({ n: "5" }, Mini), { n: 5, b: true });
    refused({ n: "x" }, `parameter "n" of ${OF} must be a whole number, not "x"`, Mini);
    refused({ m: "x" }, `${OF} has no parameter "m"; the parameters are: n, b`, Mini);
  });
});

describe("records", () => {
  it("read their values", () => {
    const Limits = z.object({ limits: z.record(z.string(), z.int()) });
    assert.deepEqual(read({ limits: { a: "1", b: 2 } }, Limits), { limits: { a: 1, b: 2 } });
    refused({ limits: { a: "x" } }, `parameter "limits.a" of ${OF} must be a whole number, not "x"`, Limits);
  });
});
