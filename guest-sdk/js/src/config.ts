// The service's settings and secrets, as its operator wrote them under
// [services.config] (values) and [services.secrets] (read by the host from
// the environment or a file; the plugin gets the value, the host's log and
// admin API never show it).
//
// Needs the plugin built `--with config` and one of those tables in the
// service's [[services]] entry.
//
//     import { config } from "orizuru-sdk";
//     const region = config.require("region");
//     const tier = config.get("tier") ?? "standard";

import type { Error as StoreError } from "wasi:config/store@0.2.0-rc.1";
import { Failed } from "./errors.js";
import { capability, importError } from "./internal.js";

function unreadable(err: unknown): Failed {
  const error = importError(err) as StoreError;
  return new Failed(`the service's config could not be read: ${error.val}`);
}

/** The value of `key`, or `undefined` when the operator did not set it. */
export function get(key: string): string | undefined {
  const store = capability("config");
  try {
    return store.get(key);
  } catch (err) {
    throw unreadable(err);
  }
}

/** The value of `key`, or a `Failed` saying which key to set. */
export function require(key: string): string {
  const value = get(key);
  if (value === undefined) {
    throw new Failed(
      `the service's config has no "${key}"; its operator must set it under [services.config] or [services.secrets]`,
    );
  }
  return value;
}

/** Every value and secret, by key, in key order. */
export function all(): Map<string, string> {
  const store = capability("config");
  let pairs: [string, string][];
  try {
    pairs = store.getAll();
  } catch (err) {
    throw unreadable(err);
  }
  return new Map([...pairs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
