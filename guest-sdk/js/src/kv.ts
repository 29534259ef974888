// Durable key-value state, kept by the host for this service alone: it
// outlives restarts and hot swaps, and no other service can read it.
//
// Needs the plugin built `--with keyvalue` and `keyvalue = true` in the
// service's [[services]] entry.
//
//     import { kv } from "orizuru-sdk";
//     const bucket = kv.Bucket.open("ports");
//     const port = 5000 + bucket.increment("next", 1);
//     bucket.setJson("instance:orders", { port });
//     const kept = bucket.getJson<{ port: number }>("instance:orders");

import type { Bucket as WitBucket, Error as StoreError } from "wasi:keyvalue/store@0.2.0-draft";
import { Failed } from "./errors.js";
import { capability, importError } from "./internal.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function refused(bucket: string, err: unknown): Failed {
  const error = importError(err) as StoreError;
  const why =
    error.tag === "no-such-store"
      ? "it does not exist"
      : error.tag === "access-denied"
        ? "this service is not granted the key-value store (keyvalue = true)"
        : error.val;
  return new Failed(`the key-value bucket ${JSON.stringify(bucket)} refused: ${why}`);
}

/** A bucket of values by key. */
export class Bucket {
  private constructor(
    private readonly inner: WitBucket,
    /** The bucket's name. */
    readonly name: string,
  ) {}

  /** Opens the bucket `name` (the empty name is the service's default bucket). */
  static open(name: string): Bucket {
    const { store } = capability("keyvalue");
    try {
      return new Bucket(store.open(name), name);
    } catch (err) {
      throw refused(name, err);
    }
  }

  private call<T>(op: () => T): T {
    try {
      return op();
    } catch (err) {
      throw refused(this.name, err);
    }
  }

  /** The value of `key`, or `undefined`. */
  get(key: string): Uint8Array | undefined {
    return this.call(() => this.inner.get(key));
  }

  /** The value of `key` as UTF-8 text, or `undefined`. */
  getText(key: string): string | undefined {
    const bytes = this.get(key);
    return bytes === undefined ? undefined : decoder.decode(bytes);
  }

  /** The value of `key` read as JSON, or `undefined`. */
  getJson<T = unknown>(key: string): T | undefined {
    const text = this.getText(key);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new Failed(
        `the value of ${JSON.stringify(key)} in bucket ${JSON.stringify(this.name)} is not the JSON expected: ${(err as Error).message}`,
      );
    }
  }

  /** Sets `key` to `value` (text is stored as UTF-8). */
  set(key: string, value: Uint8Array | string): void {
    const bytes = typeof value === "string" ? encoder.encode(value) : value;
    this.call(() => this.inner.set(key, bytes));
  }

  /** Sets `key` to `value` written with `JSON.stringify`. */
  setJson(key: string, value: unknown): void {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw new Failed(`the value for ${JSON.stringify(key)} cannot be written as JSON: ${(err as Error).message}`);
    }
    if (text === undefined) {
      throw new Failed(`the value for ${JSON.stringify(key)} (${typeof value}) cannot be written as JSON`);
    }
    this.set(key, text);
  }

  /** Removes `key` (removing a missing key is no error). */
  delete(key: string): void {
    this.call(() => this.inner.delete(key));
  }

  /** Whether `key` has a value. */
  exists(key: string): boolean {
    return this.call(() => this.inner.exists(key));
  }

  /** Every key of the bucket, in order. */
  keys(): string[] {
    const keys: string[] = [];
    let cursor: bigint | undefined;
    for (;;) {
      const page = this.call(() => this.inner.listKeys(cursor));
      keys.push(...page.keys);
      if (page.cursor === undefined) return keys;
      cursor = page.cursor;
    }
  }

  /**
   * Adds `delta` (a whole number) to the number at `key` (0 when missing)
   * in one step no other call can split, and answers the new number.
   */
  increment(key: string, delta: number): number {
    if (!Number.isSafeInteger(delta)) {
      throw new Failed(
        `bucket ${JSON.stringify(this.name)} can only increment ${JSON.stringify(key)} by a whole number, not ${delta}`,
      );
    }
    const { atomics } = capability("keyvalue");
    const total = this.call(() => atomics.increment(this.inner, key, BigInt(delta)));
    if (total > BigInt(Number.MAX_SAFE_INTEGER) || total < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new Failed(
        `the number at ${JSON.stringify(key)} in bucket ${JSON.stringify(this.name)} is ${total}, beyond what a JavaScript number holds exactly`,
      );
    }
    return Number(total);
  }
}
