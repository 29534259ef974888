// Reads a tsuru parameters object with the author's zod schema.
//
// tsuru's CLI sends every value as text (`-p size_mb=128` arrives as "128"),
// so before zod sees the object, each value is read as the type its schema
// declares: text that reads as a whole number, a number or a boolean becomes
// one, and anything else is refused with the sentence of Orizuru's SDK
// contract (guest-sdk/CONTRACT.md in its repository).
// Objects are strict unless the author opened one (z.looseObject,
// .catchall), so a mistyped `-p` never passes silently. What zod still finds
// (the author's own checks: .min(1), .max(720), .refine) is turned into a
// sentence naming the parameter.
//
// The schema is walked through `_zod.def`, zod 4's documented surface for
// libraries, so schemas from zod and zod/mini, and from another copy of zod
// than the SDK's, are all read alike; nothing of zod is imported at run time.

import type * as z from "zod/v4/core";
import { Invalid } from "./errors.js";

/** A value the user gave that the schema refuses, with the sentence to answer. */
class Refusal extends Error {}

type Schema = z.$ZodType;

/** The ranges of zod's whole-number formats, for the contract's range sentence. */
const WHOLE_NUMBER_RANGES: Record<string, [number, number]> = {
  safeint: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
};

const BIGINT_RANGES: Record<string, [bigint, bigint]> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
};

const WHOLE_NUMBER_TEXT = /^[+-]?[0-9]+$/;
const DECIMAL_TEXT = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;

function def(schema: Schema): z.$ZodTypes["_zod"]["def"] {
  return (schema as z.$ZodTypes)._zod.def;
}

/** A value as the contract shows it: text quoted and escaped, anything else as its JSON. */
function show(value: unknown): string {
  if (typeof value === "bigint") return value.toString();
  return JSON.stringify(value) ?? String(value);
}

/** A nested parameter's name as the user types it: `p2.complex1`. */
function dotted(group: string, name: string): string {
  return group === "" ? name : `${group}.${name}`;
}

function isGroup(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The whole-number format a number schema declares (z.int(), .int(), z.int32()...), if any. */
function wholeNumberFormat(schema: z.$ZodNumber): string | undefined {
  const own = schema._zod.def as { format?: string };
  if (own.format !== undefined && own.format in WHOLE_NUMBER_RANGES) return own.format;
  for (const check of schema._zod.def.checks ?? []) {
    const checkDef = check._zod.def as { check: string; format?: string };
    if (checkDef.check === "number_format" && checkDef.format !== undefined && checkDef.format in WHOLE_NUMBER_RANGES) {
      return checkDef.format;
    }
  }
  return undefined;
}

/** The schema under optional, default and other wrappers that do not change what a value must be. */
function unwrap(schema: Schema): Schema {
  const d = def(schema);
  switch (d.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "nonoptional":
    case "readonly":
    case "catch":
      return unwrap(d.innerType);
    case "pipe":
      return unwrap(d.in);
    case "lazy":
      return unwrap(d.getter());
    default:
      return schema;
  }
}

/** What a value of `schema` must be, in the contract's words (`a whole number`...). */
function expected(schema: Schema): string | undefined {
  const inner = unwrap(schema);
  const d = def(inner);
  switch (d.type) {
    case "number":
      return wholeNumberFormat(inner as z.$ZodNumber) === undefined ? "a number" : "a whole number";
    case "bigint":
      return "a whole number";
    case "boolean":
      return "true or false";
    case "string":
    case "template_literal":
      return "text";
    case "object":
    case "record":
      return "a group of parameters";
    case "array":
    case "tuple":
    case "set":
      return "a list";
    case "enum":
      return `one of ${Object.values(d.entries).join(", ")}`;
    case "literal":
      return d.values.length === 1 ? String(d.values[0]) : `one of ${d.values.map(String).join(", ")}`;
    case "union": {
      const each = d.options.map(expected);
      return each.every((e) => e !== undefined) ? each.join(" or ") : undefined;
    }
    default:
      return undefined;
  }
}

/** The parameters a schema declares, dotted for nested groups, in declared order. */
function declaredNames(schema: Schema, prefix = ""): string[] {
  const inner = unwrap(schema);
  const d = def(inner);
  if (d.type !== "object") return prefix === "" ? [] : [prefix];
  return Object.entries(d.shape).flatMap(([name, field]) => declaredNames(field, dotted(prefix, name)));
}

/** Reads a parameters object for `schema`; `of` names whose they are (`instance "orders"`). */
class ParameterReader {
  constructor(
    private readonly root: Schema,
    private readonly of: string,
  ) {}

  private refuse(key: string, value: unknown, schema: Schema): never {
    const what = key === "" ? `the parameters of ${this.of}` : `parameter ${JSON.stringify(key)} of ${this.of}`;
    if (value === undefined) throw new Refusal(`${what} is missing`);
    const wanted = expected(schema);
    // A schema kind the contract has no word for (a date, a custom check) still gets a sentence.
    if (wanted === undefined) throw new Refusal(`${what} does not take ${show(value)}`);
    throw new Refusal(`${what} must be ${wanted}, not ${show(value)}`);
  }

  private unknown(key: string): string {
    const names = declaredNames(this.root);
    return (
      `${this.of} has no parameter ${JSON.stringify(key)}; ` +
      (names.length === 0 ? "it takes no parameters" : `the parameters are: ${names.join(", ")}`)
    );
  }

  /** `value` with every text the schema types read as that type; throws a {@link Refusal}. */
  read(schema: Schema, value: unknown, key: string): unknown {
    const d = def(schema);
    switch (d.type) {
      case "optional":
      case "default":
      case "prefault":
        // Absent and null both leave the parameter unset (its default, if any).
        return value === undefined || value === null ? undefined : this.read(d.innerType, value, key);
      case "nullable":
        return value === null ? null : this.read(d.innerType, value, key);
      case "nonoptional":
      case "readonly":
        return this.read(d.innerType, value, key);
      case "catch":
        // The author takes any value (its catch value replaces a bad one).
        try {
          return this.read(d.innerType, value, key);
        } catch (err) {
          if (err instanceof Refusal) return value;
          throw err;
        }
      case "pipe":
        // A transform reads what its input schema declares.
        return this.read(d.in, value, key);
      case "lazy":
        return this.read(d.getter(), value, key);
      case "number":
        return this.number(schema as z.$ZodNumber, value, key);
      case "bigint":
        return this.bigint(schema as z.$ZodBigInt, value, key);
      case "boolean":
        if (typeof value === "boolean") return value;
        if (typeof value === "string" && /^(true|false)$/i.test(value.trim())) {
          return value.trim().toLowerCase() === "true";
        }
        return this.refuse(key, value, schema);
      case "string":
        return typeof value === "string" ? value : this.refuse(key, value, schema);
      case "enum":
        return this.option(Object.values(d.entries), schema, value, key);
      case "literal":
        return this.option(d.values, schema, value, key);
      case "object":
        return this.group(schema as z.$ZodObject, value, key);
      case "array":
        if (!Array.isArray(value)) return this.refuse(key, value, schema);
        return value.map((item, index) => this.read(d.element, item, dotted(key, String(index))));
      case "record":
        if (!isGroup(value)) return this.refuse(key, value, schema);
        return Object.fromEntries(
          Object.entries(value).map(([name, item]) => [name, this.read(d.valueType, item, dotted(key, name))]),
        );
      case "union": {
        for (const option of d.options) {
          try {
            return this.read(option, value, key);
          } catch (err) {
            if (!(err instanceof Refusal)) throw err;
          }
        }
        return this.refuse(key, value, schema);
      }
      default:
        // Any other schema (unknown, date, custom...) takes the value
        // as it came; zod judges it.
        return value;
    }
  }

  /** The parameters object itself, or a nested group of it. */
  group(schema: z.$ZodObject, value: unknown, key: string): Record<string, unknown> {
    if (!isGroup(value)) return this.refuse(key, value, schema);
    const { shape, catchall } = schema._zod.def;
    const strict = catchall === undefined || def(catchall).type === "never";
    const read: Record<string, unknown> = {};
    for (const [name, item] of Object.entries(value)) {
      if (Object.hasOwn(shape, name)) continue;
      if (strict) throw new Refusal(this.unknown(dotted(key, name)));
      read[name] = this.read(catchall!, item, dotted(key, name));
    }
    for (const [name, field] of Object.entries(shape)) {
      const given = this.read(field, value[name], dotted(key, name));
      if (given !== undefined) read[name] = given;
    }
    return read;
  }

  /** One of an enumeration's values; text reads as a numeric one (`"2"` as 2). */
  private option(options: readonly unknown[], schema: Schema, value: unknown, key: string): unknown {
    if (options.includes(value)) return value;
    const found = options.find(
      (option) => typeof value === "string" && typeof option !== "string" && String(option) === value,
    );
    return found !== undefined ? found : this.refuse(key, value, schema);
  }

  private number(schema: z.$ZodNumber, value: unknown, key: string): number {
    const format = wholeNumberFormat(schema);
    let number: number;
    if (typeof value === "number") {
      number = value;
    } else if (
      typeof value === "string" &&
      (format === undefined ? DECIMAL_TEXT : WHOLE_NUMBER_TEXT).test(value.trim())
    ) {
      number = Number(value.trim());
    } else {
      return this.refuse(key, value, schema);
    }
    if (!Number.isFinite(number)) return this.refuse(key, value, schema);
    if (format !== undefined) {
      if (!Number.isInteger(number)) return this.refuse(key, value, schema);
      const [min, max] = WHOLE_NUMBER_RANGES[format];
      if (number < min || number > max) {
        throw new Refusal(
          `parameter ${JSON.stringify(key)} of ${this.of} must be a whole number from ${min} to ${max}, not ${show(value)}`,
        );
      }
    }
    return number;
  }

  private bigint(schema: z.$ZodBigInt, value: unknown, key: string): bigint {
    let number: bigint;
    if (typeof value === "number" && Number.isInteger(value)) {
      number = BigInt(value);
    } else if (typeof value === "string" && WHOLE_NUMBER_TEXT.test(value.trim())) {
      number = BigInt(value.trim());
    } else {
      return this.refuse(key, value, schema);
    }
    const range = BIGINT_RANGES[(schema._zod.def as { format?: string }).format ?? ""];
    if (range !== undefined && (number < range[0] || number > range[1])) {
      throw new Refusal(
        `parameter ${JSON.stringify(key)} of ${this.of} must be a whole number from ${range[0]} to ${range[1]}, not ${show(value)}`,
      );
    }
    return number;
  }

  /** The sentence for what zod found in the values `read` answered. */
  explain(issue: z.$ZodIssue, input: unknown): string {
    const key = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") return this.unknown(dotted(key, issue.keys[0]));
    if (key === "") return `the parameters of ${this.of} are not valid: ${issue.message}`;
    const value = issue.path.reduce<unknown>(
      (at, step) => (typeof at === "object" && at !== null ? (at as Record<PropertyKey, unknown>)[step] : undefined),
      input,
    );
    const parameter = `parameter ${JSON.stringify(key)} of ${this.of}`;
    const not = `not ${show(value)}`;
    switch (issue.code) {
      case "invalid_type":
        if (value === undefined) return `${parameter} is missing`;
        return `${parameter} must be ${EXPECTED_TYPES[issue.expected] ?? issue.expected}, ${not}`;
      case "too_small":
      case "too_big": {
        const limit = issue.code === "too_small" ? issue.minimum : issue.maximum;
        const inclusive = issue.inclusive ?? true;
        const bound = issue.code === "too_small" ? (inclusive ? "at least" : "above") : inclusive ? "at most" : "below";
        if (issue.origin === "string") return `${parameter} must be ${bound} ${limit} characters long, ${not}`;
        if (issue.origin === "array" || issue.origin === "set")
          return `${parameter} must hold ${bound} ${limit} items, ${not}`;
        if (issue.origin === "number" || issue.origin === "int" || issue.origin === "bigint") {
          return `${parameter} must be ${bound} ${limit}, ${not}`;
        }
        break;
      }
      case "not_multiple_of":
        return `${parameter} must be a multiple of ${issue.divisor}, ${not}`;
      case "invalid_value":
        return `${parameter} must be ${issue.values.length === 1 ? String(issue.values[0]) : `one of ${issue.values.map(String).join(", ")}`}, ${not}`;
      case "invalid_format":
        if (issue.format === "regex" && "pattern" in issue)
          return `${parameter} must match ${String(issue.pattern)}, ${not}`;
        return `${parameter} must be a valid ${issue.format.replaceAll("_", " ")}, ${not}`;
    }
    return `${parameter} is not valid: ${issue.message}`;
  }
}

const EXPECTED_TYPES: Record<string, string> = {
  number: "a number",
  int: "a whole number",
  bigint: "a whole number",
  boolean: "true or false",
  string: "text",
  object: "a group of parameters",
  record: "a group of parameters",
  array: "a list",
  tuple: "a list",
};

/**
 * The parameters in `json` read with `schema`; what the user got wrong is
 * thrown as {@link Invalid} with the contract's sentence.
 */
export function readParameters<S extends Schema>(json: string, of: string, schema: S): z.output<S> {
  let given: unknown;
  try {
    given = JSON.parse(json);
  } catch (err) {
    throw new Invalid(`the parameters of ${of} are not valid JSON: ${(err as Error).message}`);
  }
  const reader = new ParameterReader(schema, of);
  let read: unknown;
  try {
    read = reader.read(schema, given, "");
  } catch (err) {
    if (err instanceof Refusal) throw new Invalid(err.message);
    throw err;
  }
  const result = schema["~standard"].validate(read);
  if (result instanceof Promise) {
    result.catch(() => {});
    throw new TypeError(
      "parametersAs takes a schema whose checks all run synchronously; this one has an async refine or transform, so check that value in the action instead",
    );
  }
  if (result.issues !== undefined) throw new Invalid(reader.explain(result.issues[0] as z.$ZodIssue, read));
  return result.value as z.output<S>;
}
