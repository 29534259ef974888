// A JSON reader that reports mistakes exactly as serde_json does (same
// sentences, same "at line L column C"), so that a plugin written with this
// SDK answers tsuru with the same words as the same plugin written in Rust;
// and a JSON writer that keeps 64-bit integers (bigint) exact.

const utf8 = new TextEncoder();

/** A decoding mistake; `line` 0 means serde_json has not placed it yet. */
export class JsonError {
  constructor(
    readonly reason: string,
    public line = 0,
    public column = 0,
  ) {}

  toString(): string {
    return this.line === 0 ? this.reason : `${this.reason} at line ${this.line} column ${this.column}`;
  }
}

/** A JSON number as serde_json reads it: unsigned, negative, or floating. */
export type ParsedNumber = { kind: "u64"; value: bigint } | { kind: "i64"; value: bigint } | { kind: "f64"; value: number };

/** A JSON value held whole, as serde's `Content` holds it for untagged enums. */
export type Content =
  | { kind: "null" }
  | { kind: "bool"; value: boolean }
  | ParsedNumber
  | { kind: "string"; value: string }
  | { kind: "seq"; items: Content[] }
  | { kind: "map"; entries: [string, Content][] };

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

const WS = new Set([0x20, 0x0a, 0x09, 0x0d]);

/** 1e0 to 1e308, each the f64 nearest to it (as Rust's literals are). */
const POW10: number[] = Array.from({ length: 309 }, (_, i) => Number(`1e${i}`));

/** serde_json's `Deserializer` over a byte slice. */
export class Reader {
  readonly bytes: Uint8Array;
  index = 0;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(text: string) {
    this.bytes = utf8.encode(text);
  }

  peek(): number | undefined {
    return this.index < this.bytes.length ? this.bytes[this.index] : undefined;
  }

  eat(): void {
    this.index += 1;
  }

  next(): number | undefined {
    const byte = this.peek();
    if (byte !== undefined) this.index += 1;
    return byte;
  }

  /** Skips whitespace and answers the next byte, not eaten. */
  ws(): number | undefined {
    for (;;) {
      const byte = this.peek();
      if (byte === undefined || !WS.has(byte)) return byte;
      this.eat();
    }
  }

  private positionOf(i: number): [number, number] {
    let startOfLine = 0;
    let line = 1;
    for (let k = 0; k < i; k++) {
      if (this.bytes[k] === 0x0a) {
        line += 1;
        startOfLine = k + 1;
      }
    }
    return [line, i - startOfLine];
  }

  /** An error placed where the reader is. */
  error(reason: string): JsonError {
    const [line, column] = this.positionOf(this.index);
    return new JsonError(reason, line, column);
  }

  /** An error placed at the byte being looked at. */
  peekError(reason: string): JsonError {
    const [line, column] = this.positionOf(Math.min(this.bytes.length, this.index + 1));
    return new JsonError(reason, line, column);
  }

  /** Places an error that has no place yet where the reader is. */
  fix(err: unknown): unknown {
    if (err instanceof JsonError && err.line === 0) {
      const [line, column] = this.positionOf(this.index);
      err.line = line;
      err.column = column;
    }
    return err;
  }

  parseIdent(rest: string): void {
    for (let k = 0; k < rest.length; k++) {
      const byte = this.next();
      if (byte === undefined) throw this.error("EOF while parsing a value");
      if (byte !== rest.charCodeAt(k)) throw this.error("expected ident");
    }
  }

  /** A string whose opening quote was eaten. */
  parseStr(): string {
    const parts: string[] = [];
    let start = this.index;
    for (;;) {
      const byte = this.peek();
      if (byte === undefined) throw this.error("EOF while parsing a string");
      if (byte === 0x22) {
        parts.push(this.text(start, this.index));
        this.eat();
        return parts.join("");
      }
      if (byte === 0x5c) {
        parts.push(this.text(start, this.index));
        this.eat();
        parts.push(this.parseEscape());
        start = this.index;
        continue;
      }
      if (byte < 0x20) {
        this.eat();
        throw this.error("control character (\\u0000-\\u001F) found while parsing a string");
      }
      this.eat();
    }
  }

  private text(from: number, to: number): string {
    try {
      return this.decoder.decode(this.bytes.subarray(from, to));
    } catch {
      throw this.error("invalid unicode code point");
    }
  }

  private parseEscape(): string {
    const byte = this.next();
    if (byte === undefined) throw this.error("EOF while parsing a string");
    switch (byte) {
      case 0x22: return '"';
      case 0x5c: return "\\";
      case 0x2f: return "/";
      case 0x62: return "\b";
      case 0x66: return "\f";
      case 0x6e: return "\n";
      case 0x72: return "\r";
      case 0x74: return "\t";
      case 0x75: {
        const first = this.hex4();
        if (first >= 0xd800 && first <= 0xdbff) {
          if (this.peek() !== 0x5c) throw this.error("lone leading surrogate in hex escape");
          this.eat();
          if (this.next() !== 0x75) throw this.error("unexpected end of hex escape");
          const second = this.hex4();
          if (second < 0xdc00 || second > 0xdfff) throw this.error("lone leading surrogate in hex escape");
          return String.fromCharCode(first, second);
        }
        if (first >= 0xdc00 && first <= 0xdfff) throw this.error("lone leading surrogate in hex escape");
        return String.fromCharCode(first);
      }
      default:
        throw this.error("invalid escape");
    }
  }

  private hex4(): number {
    let value = 0;
    for (let k = 0; k < 4; k++) {
      const byte = this.next();
      if (byte === undefined) throw this.error("EOF while parsing a string");
      const digit = hexDigit(byte);
      if (digit < 0) throw this.error("invalid escape");
      value = value * 16 + digit;
    }
    return value;
  }

  /** A number; the '-' of a negative one was eaten (serde_json's `parse_integer`). */
  parseInteger(positive: boolean): ParsedNumber {
    const first = this.next();
    if (first === undefined) throw this.error("EOF while parsing a value");
    if (first === 0x30) {
      const after = this.peek();
      if (after !== undefined && isDigit(after)) throw this.peekError("invalid number");
      return this.parseNumberTail(positive, 0n);
    }
    if (first < 0x31 || first > 0x39) throw this.error("invalid number");
    let significand = BigInt(first - 0x30);
    for (;;) {
      const byte = this.peek();
      if (byte === undefined || !isDigit(byte)) return this.parseNumberTail(positive, significand);
      const next = significand * 10n + BigInt(byte - 0x30);
      if (next > U64_MAX) return { kind: "f64", value: this.parseLongInteger(positive, significand) };
      this.eat();
      significand = next;
    }
  }

  private parseNumberTail(positive: boolean, significand: bigint): ParsedNumber {
    const byte = this.peek();
    if (byte === 0x2e) return { kind: "f64", value: this.parseDecimal(positive, significand, 0) };
    if (byte === 0x65 || byte === 0x45) return { kind: "f64", value: this.parseExponent(positive, significand, 0) };
    if (positive) return { kind: "u64", value: significand };
    const negative = -significand;
    if (significand === 0n || negative < I64_MIN) return { kind: "f64", value: -Number(significand) };
    return { kind: "i64", value: negative };
  }

  // serde_json's float reading (without its float_roundtrip feature), step
  // for step, so that a float reads as the very same f64 it reads.

  private parseDecimal(positive: boolean, significand: bigint, before: number): number {
    this.eat();
    let after = 0;
    for (;;) {
      const byte = this.peek();
      if (byte === undefined || !isDigit(byte)) break;
      const next = significand * 10n + BigInt(byte - 0x30);
      if (next > U64_MAX) return this.parseDecimalOverflow(positive, significand, before + after);
      this.eat();
      significand = next;
      after -= 1;
    }
    if (after === 0) {
      if (this.peek() !== undefined) throw this.peekError("invalid number");
      throw this.peekError("EOF while parsing a value");
    }
    const exponent = before + after;
    const byte = this.peek();
    if (byte === 0x65 || byte === 0x45) return this.parseExponent(positive, significand, exponent);
    return this.f64FromParts(positive, significand, exponent);
  }

  private parseExponent(positive: boolean, significand: bigint, starting: number): number {
    this.eat();
    let positiveExp = true;
    if (this.peek() === 0x2b) this.eat();
    else if (this.peek() === 0x2d) {
      this.eat();
      positiveExp = false;
    }
    const next = this.next();
    if (next === undefined) throw this.error("EOF while parsing a value");
    if (!isDigit(next)) throw this.error("invalid number");
    let exp = next - 0x30;
    for (;;) {
      const byte = this.peek();
      if (byte === undefined || !isDigit(byte)) break;
      this.eat();
      const digit = byte - 0x30;
      if (exp * 10 + digit > 2147483647) {
        if (significand !== 0n && positiveExp) throw this.error("number out of range");
        while (this.peek() !== undefined && isDigit(this.peek()!)) this.eat();
        return positive ? 0 : -0;
      }
      exp = exp * 10 + digit;
    }
    const clamp = (n: number) => Math.max(-2147483648, Math.min(2147483647, n));
    return this.f64FromParts(positive, significand, clamp(positiveExp ? starting + exp : starting - exp));
  }

  private parseDecimalOverflow(positive: boolean, significand: bigint, exponent: number): number {
    while (this.peek() !== undefined && isDigit(this.peek()!)) this.eat();
    const byte = this.peek();
    if (byte === 0x65 || byte === 0x45) return this.parseExponent(positive, significand, exponent);
    return this.f64FromParts(positive, significand, exponent);
  }

  private parseLongInteger(positive: boolean, significand: bigint): number {
    let exponent = 0;
    for (;;) {
      const byte = this.peek();
      if (byte !== undefined && isDigit(byte)) {
        this.eat();
        exponent += 1;
      } else if (byte === 0x2e) {
        return this.parseDecimal(positive, significand, exponent);
      } else if (byte === 0x65 || byte === 0x45) {
        return this.parseExponent(positive, significand, exponent);
      } else {
        return this.f64FromParts(positive, significand, exponent);
      }
    }
  }

  private f64FromParts(positive: boolean, significand: bigint, exponent: number): number {
    let f = Number(significand);
    for (;;) {
      const abs = Math.abs(exponent);
      if (abs <= 308) {
        if (exponent >= 0) {
          f *= POW10[abs];
          if (!Number.isFinite(f)) throw this.error("number out of range");
        } else {
          f /= POW10[abs];
        }
        break;
      }
      if (f === 0) break;
      if (exponent >= 0) throw this.error("number out of range");
      f /= 1e308;
      exponent += 308;
    }
    return positive ? f : -f;
  }

  /** serde_json's `deserialize_any` into `Content`. */
  parseContent(): Content {
    const peek = this.ws();
    if (peek === undefined) throw this.peekError("EOF while parsing a value");
    switch (peek) {
      case 0x6e:
        this.eat();
        this.parseIdent("ull");
        return { kind: "null" };
      case 0x74:
        this.eat();
        this.parseIdent("rue");
        return { kind: "bool", value: true };
      case 0x66:
        this.eat();
        this.parseIdent("alse");
        return { kind: "bool", value: false };
      case 0x2d:
        this.eat();
        return this.parseInteger(false);
      case 0x22:
        this.eat();
        return { kind: "string", value: this.parseStr() };
      case 0x5b: {
        this.eat();
        const items: Content[] = [];
        let first = true;
        for (;;) {
          let byte = this.ws();
          if (byte === 0x5d) break;
          if (!first) {
            if (byte !== 0x2c) {
              if (byte === undefined) throw this.peekError("EOF while parsing a list");
              throw this.peekError("expected `,` or `]`");
            }
            this.eat();
            byte = this.ws();
            if (byte === 0x5d) throw this.peekError("trailing comma");
          }
          first = false;
          items.push(this.parseContent());
        }
        this.eat();
        return { kind: "seq", items };
      }
      case 0x7b: {
        this.eat();
        const entries: [string, Content][] = [];
        let first = true;
        for (;;) {
          let byte = this.ws();
          if (byte === 0x7d) break;
          if (!first) {
            if (byte !== 0x2c) {
              if (byte === undefined) throw this.peekError("EOF while parsing an object");
              throw this.peekError("expected `,` or `}`");
            }
            this.eat();
            byte = this.ws();
          }
          first = false;
          if (byte === 0x7d) throw this.peekError("trailing comma");
          if (byte === undefined) throw this.peekError("EOF while parsing a value");
          if (byte !== 0x22) throw this.peekError("key must be a string");
          this.eat();
          const key = this.parseStr();
          this.parseObjectColon();
          entries.push([key, this.parseContent()]);
        }
        this.eat();
        return { kind: "map", entries };
      }
      default:
        if (isDigit(peek)) return this.parseInteger(true);
        throw this.peekError("expected value");
    }
  }

  parseObjectColon(): void {
    const byte = this.ws();
    if (byte === 0x3a) {
      this.eat();
      return;
    }
    if (byte === undefined) throw this.peekError("EOF while parsing an object");
    throw this.peekError("expected `:`");
  }

  /**
   * serde_json's `peek_invalid_type`: "invalid type: X, expected Y", placed
   * after the value for scalars and at it for lists and objects.
   */
  invalidType(expected: string): unknown {
    const byte = this.ws() ?? 0;
    let found: string;
    switch (byte) {
      case 0x6e:
        this.eat();
        this.parseIdent("ull");
        found = "null";
        break;
      case 0x74:
        this.eat();
        this.parseIdent("rue");
        found = "boolean `true`";
        break;
      case 0x66:
        this.eat();
        this.parseIdent("alse");
        found = "boolean `false`";
        break;
      case 0x2d:
        this.eat();
        found = unexpectedNumber(this.parseInteger(false));
        break;
      case 0x22:
        this.eat();
        found = `string ${debugString(this.parseStr())}`;
        break;
      case 0x5b:
        found = "sequence";
        break;
      case 0x7b:
        found = "map";
        break;
      default:
        if (isDigit(byte)) {
          found = unexpectedNumber(this.parseInteger(true));
          break;
        }
        return this.peekError("expected value");
    }
    return this.fix(new JsonError(`invalid type: ${found}, expected ${expected}`));
  }

  /** serde_json's `end`: only whitespace may follow the value. */
  end(): void {
    if (this.ws() !== undefined) throw this.peekError("trailing characters");
  }
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

function hexDigit(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  return -1;
}

/** serde's `Unexpected` for a number. */
export function unexpectedNumber(n: ParsedNumber): string {
  return n.kind === "f64" ? `floating point \`${rustFloat(n.value)}\`` : `integer \`${n.value}\``;
}

/** serde's `Unexpected` for any value held whole. */
export function unexpectedContent(c: Content): string {
  switch (c.kind) {
    case "null": return "null";
    case "bool": return `boolean \`${c.value}\``;
    case "string": return `string ${debugString(c.value)}`;
    case "seq": return "sequence";
    case "map": return "map";
    default: return unexpectedNumber(c);
  }
}

/**
 * A float as serde_json writes it in a message: shortest round-trip digits,
 * plain from 1e-5 to below 1e16 (with ".0" when whole), else `1.5e+16`.
 */
export function rustFloat(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
  const sign = value < 0 || Object.is(value, -0) ? "-" : "";
  if (value === 0) return `${sign}0.0`;
  const [mantissa, exponentText] = Math.abs(value).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const exponent = Number(exponentText);
  if (exponent < -5 || exponent >= 16) {
    const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${head}e${exponent < 0 ? "-" : "+"}${Math.abs(exponent)}`;
  }
  let text: string;
  if (exponent >= digits.length - 1) {
    text = `${digits}${"0".repeat(exponent - (digits.length - 1))}.0`;
  } else if (exponent >= 0) {
    text = `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
  } else {
    text = `0.${"0".repeat(-exponent - 1)}${digits}`;
  }
  return sign + text;
}

/** A string as Rust's `Debug` writes it. */
export function debugString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\0") out += "\\0";
    else if (code < 0x20 || (code >= 0x7f && code < 0xa0)) out += `\\u{${code.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

/**
 * Writes `value` as compact JSON, as serde_json writes the same data:
 * bigints as exact integers, `undefined` object fields left out, Maps as objects.
 */
export function writeJson(value: unknown): string {
  const parts: string[] = [];
  write(value, parts, "the value");
  return parts.join("");
}

function write(value: unknown, out: string[], where: string): void {
  if (value === null || value === undefined) {
    out.push("null");
  } else if (typeof value === "bigint") {
    out.push(value.toString());
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) out.push("null");
    else out.push(JSON.stringify(value));
  } else if (typeof value === "string" || typeof value === "boolean") {
    out.push(JSON.stringify(value));
  } else if (Array.isArray(value)) {
    out.push("[");
    value.forEach((item, i) => {
      if (i > 0) out.push(",");
      write(item, out, `${where}[${i}]`);
    });
    out.push("]");
  } else if (value instanceof Map) {
    writeEntries([...value.entries()], out, where);
  } else if (typeof value === "object") {
    const json = (value as { toJSON?: () => unknown }).toJSON;
    if (typeof json === "function") {
      write(json.call(value), out, where);
      return;
    }
    writeEntries(Object.entries(value as Record<string, unknown>), out, where);
  } else {
    throw new TypeError(`${where} is a ${typeof value}, which JSON cannot hold`);
  }
}

function writeEntries(entries: [unknown, unknown][], out: string[], where: string): void {
  out.push("{");
  let first = true;
  for (const [key, item] of entries) {
    if (item === undefined) continue;
    if (!first) out.push(",");
    first = false;
    out.push(JSON.stringify(String(key)), ":");
    write(item, out, `${where}.${String(key)}`);
  }
  out.push("}");
}
