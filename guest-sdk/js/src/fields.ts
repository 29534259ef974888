// Typed decoding of an instance's or a binding's parameters (and of the
// plugin's own instance data), the counterpart of Rust's
// `#[derive(Deserialize)]` structs: describe the shape once, get a typed
// value or a sentence that says what is wrong and where, worded exactly as
// the Rust SDK words it (serde_json's messages).
//
//     const Parameters = fields.struct("Parameters", {
//       size: fields.optional(fields.u64()),
//       region: fields.optional(fields.string()),
//     }, { denyUnknownFields: true });
//     type Parameters = fields.Infer<typeof Parameters>;

import { type Content, JsonError, Reader, unexpectedContent, unexpectedNumber } from "./json.js";

/** Describes how to read one JSON value into a `T`. */
export interface Decoder<T> {
  /** What serde says it expected ("a string", "u64", "struct Parameters"). */
  readonly expecting: string;
  /** Reads the value at the reader, as serde_json reads it. @internal */
  read(reader: Reader): T;
  /** Reads a value already held whole (inside `untagged`). @internal */
  fromContent(content: Content): T;
  /** Whether a struct field of this type may be left out (Option, default). @internal */
  readonly missing?: { value: () => T };
}

/** The type a decoder produces. */
export type Infer<D> = D extends Decoder<infer T> ? T : never;

/**
 * Thrown from a `map` function: the value has the right type but is not
 * acceptable. The message becomes the sentence (serde's `Error::custom`).
 */
export class Mismatch extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Mismatch";
  }
}

function mismatch(content: Content, expected: string): JsonError {
  return new JsonError(`invalid type: ${unexpectedContent(content)}, expected ${expected}`);
}

function scalar<T>(
  expecting: string,
  read: (reader: Reader) => T,
  fromContent: (content: Content) => T,
): Decoder<T> {
  return {
    expecting,
    read(reader) {
      if (reader.ws() === undefined) throw reader.peekError("EOF while parsing a value");
      try {
        return read(reader);
      } catch (err) {
        throw reader.fix(err);
      }
    },
    fromContent,
  };
}

/** A string. */
export function string(): Decoder<string> {
  const expecting = "a string";
  return scalar(
    expecting,
    (reader) => {
      if (reader.peek() !== 0x22) throw reader.invalidType(expecting);
      reader.eat();
      return reader.parseStr();
    },
    (content) => {
      if (content.kind === "string") return content.value;
      throw mismatch(content, expecting);
    },
  );
}

/** `true` or `false`. */
export function bool(): Decoder<boolean> {
  const expecting = "a boolean";
  return scalar(
    expecting,
    (reader) => {
      const byte = reader.peek();
      if (byte === 0x74) {
        reader.eat();
        reader.parseIdent("rue");
        return true;
      }
      if (byte === 0x66) {
        reader.eat();
        reader.parseIdent("alse");
        return false;
      }
      throw reader.invalidType(expecting);
    },
    (content) => {
      if (content.kind === "bool") return content.value;
      throw mismatch(content, expecting);
    },
  );
}

function numeric<T>(expecting: string, accept: (n: Exclude<Content, { kind: "null" | "bool" | "string" | "seq" | "map" }>) => T): Decoder<T> {
  return scalar(
    expecting,
    (reader) => {
      const byte = reader.peek()!;
      if (byte === 0x2d) {
        reader.eat();
        return accept(reader.parseInteger(false));
      }
      if (byte >= 0x30 && byte <= 0x39) return accept(reader.parseInteger(true));
      throw reader.invalidType(expecting);
    },
    (content) => {
      if (content.kind === "u64" || content.kind === "i64" || content.kind === "f64") return accept(content);
      throw mismatch(content, expecting);
    },
  );
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MAX = (1n << 63n) - 1n;

/** A whole number from 0 to 2^64-1, exact (Rust's `u64`). */
export function u64(): Decoder<bigint> {
  return numeric("u64", (n) => {
    if (n.kind === "f64") throw new JsonError(`invalid type: ${unexpectedNumber(n)}, expected u64`);
    if (n.value < 0n || n.value > U64_MAX) throw new JsonError(`invalid value: ${unexpectedNumber(n)}, expected u64`);
    return n.value;
  });
}

/** A whole number from -2^63 to 2^63-1, exact (Rust's `i64`). */
export function i64(): Decoder<bigint> {
  return numeric("i64", (n) => {
    if (n.kind === "f64") throw new JsonError(`invalid type: ${unexpectedNumber(n)}, expected i64`);
    if (n.value > I64_MAX) throw new JsonError(`invalid value: ${unexpectedNumber(n)}, expected i64`);
    return n.value;
  });
}

/** Any number, as a JavaScript number (Rust's `f64`). */
export function f64(): Decoder<number> {
  return numeric("f64", (n) => Number(n.value));
}

/** `null` or absent reads as `undefined`; anything else as `inner` (Rust's `Option`). */
export function optional<T>(inner: Decoder<T>): Decoder<T | undefined> {
  return {
    expecting: inner.expecting,
    read(reader) {
      if (reader.ws() === 0x6e) {
        reader.eat();
        reader.parseIdent("ull");
        return undefined;
      }
      return inner.read(reader);
    },
    fromContent(content) {
      return content.kind === "null" ? undefined : inner.fromContent(content);
    },
    missing: { value: () => undefined },
  };
}

/** A struct field that reads as `value()` when left out (`#[serde(default)]`). */
export function withDefault<T>(inner: Decoder<T>, value: () => T): Decoder<T> {
  return { ...inner, read: inner.read.bind(inner), fromContent: inner.fromContent.bind(inner), missing: { value } };
}

/**
 * `inner`, then `convert` on the value. A `Mismatch` thrown by `convert`
 * becomes the sentence (placed as serde places a custom error).
 */
export function map<T, U>(inner: Decoder<T>, convert: (value: T) => U): Decoder<U> {
  const apply = (value: T): U => {
    try {
      return convert(value);
    } catch (err) {
      if (err instanceof Mismatch) throw new JsonError(err.message);
      throw err;
    }
  };
  return {
    expecting: inner.expecting,
    read: (reader) => apply(inner.read(reader)),
    fromContent: (content) => apply(inner.fromContent(content)),
  };
}

type Variants<T extends readonly Decoder<unknown>[]> = Infer<T[number]>;

/**
 * The first of `variants` that reads the value (serde's `#[serde(untagged)]`
 * enum called `name`); "data did not match any variant of untagged enum
 * NAME" when none does.
 */
export function untagged<const T extends readonly Decoder<unknown>[]>(name: string, variants: T): Decoder<Variants<T>> {
  const pick = (content: Content): Variants<T> => {
    for (const variant of variants) {
      try {
        return variant.fromContent(content) as Variants<T>;
      } catch (err) {
        if (!(err instanceof JsonError) && !(err instanceof Mismatch)) throw err;
      }
    }
    throw new JsonError(`data did not match any variant of untagged enum ${name}`);
  };
  return {
    expecting: `untagged enum ${name}`,
    read: (reader) => pick(reader.parseContent()),
    fromContent: pick,
  };
}

/** A list of values (Rust's `Vec`). */
export function list<T>(item: Decoder<T>): Decoder<T[]> {
  const expecting = "a sequence";
  return {
    expecting,
    read(reader) {
      const peek = reader.ws();
      if (peek === undefined) throw reader.peekError("EOF while parsing a value");
      if (peek !== 0x5b) throw reader.fix(reader.invalidType(expecting));
      reader.eat();
      const items: T[] = [];
      let failure: unknown;
      try {
        let first = true;
        for (;;) {
          let byte = reader.ws();
          if (byte === 0x5d) break;
          if (byte === undefined) throw reader.peekError("EOF while parsing a list");
          if (!first) {
            if (byte !== 0x2c) throw reader.peekError("expected `,` or `]`");
            reader.eat();
            byte = reader.ws();
            if (byte === 0x5d) throw reader.peekError("trailing comma");
          }
          first = false;
          items.push(item.read(reader));
        }
      } catch (err) {
        failure = err;
      }
      const end = endOf(reader, 0x5d, "EOF while parsing a list");
      if (failure !== undefined) throw reader.fix(failure);
      if (end !== undefined) throw reader.fix(end);
      return items;
    },
    fromContent(content) {
      if (content.kind !== "seq") throw mismatch(content, expecting);
      return content.items.map((c) => item.fromContent(c));
    },
  };
}

/** serde_json's `end_seq` and `end_map`: eats the closing bracket, or says what is there. */
function endOf(reader: Reader, close: number, eof: string): JsonError | undefined {
  const byte = reader.ws();
  if (byte === close) {
    reader.eat();
    return undefined;
  }
  if (byte === 0x2c) {
    if (close === 0x5d) {
      reader.eat();
      return reader.ws() === 0x5d ? reader.peekError("trailing comma") : reader.peekError("trailing characters");
    }
    return reader.peekError("trailing comma");
  }
  if (byte === undefined) return reader.peekError(eof);
  return reader.peekError("trailing characters");
}

type Shape = Record<string, Decoder<unknown>>;

/** The object a struct decoder produces: fields that may be left out are optional. */
export type StructOf<S extends Shape> = {
  [K in keyof S as undefined extends Infer<S[K]> ? never : K]: Infer<S[K]>;
} & {
  [K in keyof S as undefined extends Infer<S[K]> ? K : never]?: Infer<S[K]>;
};

export interface StructOptions {
  /** Refuse fields the shape does not name (`#[serde(deny_unknown_fields)]`). */
  denyUnknownFields?: boolean;
}

function oneOf(names: string[]): string {
  if (names.length === 1) return `\`${names[0]}\``;
  if (names.length === 2) return `\`${names[0]}\` or \`${names[1]}\``;
  return `one of ${names.map((n) => `\`${n}\``).join(", ")}`;
}

/**
 * A JSON object with the fields of `shape`, in that order (Rust's
 * `#[derive(Deserialize)] struct NAME`). A field that is neither `optional`
 * nor `withDefault` must be given.
 */
export function struct<S extends Shape>(name: string, shape: S, options: StructOptions = {}): Decoder<StructOf<S>> {
  const names = Object.keys(shape);
  const expecting = `struct ${name}`;
  const deny = options.denyUnknownFields === true;

  const unknown = (key: string): JsonError =>
    new JsonError(names.length === 0 ? `unknown field \`${key}\`, there are no fields` : `unknown field \`${key}\`, expected ${oneOf(names)}`);

  const finish = (seen: Map<string, unknown>): StructOf<S> => {
    const out: Record<string, unknown> = {};
    for (const field of names) {
      if (seen.has(field)) {
        out[field] = seen.get(field);
      } else {
        const missing = shape[field].missing;
        if (!missing) throw new JsonError(`missing field \`${field}\``);
        const value = missing.value();
        if (value !== undefined) out[field] = value;
      }
    }
    return out as StructOf<S>;
  };

  const visitMap = (reader: Reader): StructOf<S> => {
    const seen = new Map<string, unknown>();
    let first = true;
    for (;;) {
      let byte = reader.ws();
      if (byte === 0x7d) break;
      if (byte === undefined) throw reader.peekError("EOF while parsing an object");
      if (!first) {
        if (byte !== 0x2c) throw reader.peekError("expected `,` or `}`");
        reader.eat();
        byte = reader.ws();
      }
      first = false;
      if (byte === 0x7d) throw reader.peekError("trailing comma");
      if (byte === undefined) throw reader.peekError("EOF while parsing a value");
      if (byte !== 0x22) throw reader.peekError("key must be a string");
      reader.eat();
      const key = reader.parseStr();
      const known = Object.prototype.hasOwnProperty.call(shape, key);
      if (!known) {
        if (deny) throw unknown(key);
        reader.parseObjectColon();
        reader.parseContent();
        continue;
      }
      if (seen.has(key)) throw new JsonError(`duplicate field \`${key}\``);
      reader.parseObjectColon();
      seen.set(key, shape[key].read(reader));
    }
    return finish(seen);
  };

  return {
    expecting,
    read(reader) {
      const peek = reader.ws();
      if (peek === undefined) throw reader.peekError("EOF while parsing a value");
      if (peek !== 0x7b) throw reader.fix(reader.invalidType(expecting));
      reader.eat();
      let value: StructOf<S> | undefined;
      let failure: unknown;
      try {
        value = visitMap(reader);
      } catch (err) {
        failure = err;
      }
      const end = endOf(reader, 0x7d, "EOF while parsing an object");
      if (failure !== undefined) throw reader.fix(failure);
      if (end !== undefined) throw reader.fix(end);
      return value!;
    },
    fromContent(content) {
      if (content.kind !== "map") throw mismatch(content, expecting);
      const seen = new Map<string, unknown>();
      for (const [key, item] of content.entries) {
        if (!Object.prototype.hasOwnProperty.call(shape, key)) {
          if (deny) throw unknown(key);
          continue;
        }
        if (seen.has(key)) throw new JsonError(`duplicate field \`${key}\``);
        seen.set(key, shape[key].fromContent(item));
      }
      return finish(seen);
    },
  };
}

/** Any JSON value, as `JSON.parse` gives it. */
export function any(): Decoder<unknown> {
  const plain = (content: Content): unknown => {
    switch (content.kind) {
      case "null": return null;
      case "seq": return content.items.map(plain);
      case "map": return Object.fromEntries(content.entries.map(([k, v]) => [k, plain(v)]));
      case "u64":
      case "i64":
      case "f64": return Number(content.value);
      default: return content.value;
    }
  };
  return { expecting: "any valid JSON value", read: (reader) => plain(reader.parseContent()), fromContent: plain };
}

/**
 * Reads `text` whole with `decoder`; throws the sentence serde_json would
 * give (as a string) when it does not fit.
 * @internal
 */
export function decodeText<T>(text: string, decoder: Decoder<T>): { ok: true; value: T } | { ok: false; reason: string } {
  const reader = new Reader(text);
  try {
    const value = decoder.read(reader);
    reader.end();
    return { ok: true, value };
  } catch (err) {
    if (err instanceof JsonError) return { ok: false, reason: err.toString() };
    throw err;
  }
}
