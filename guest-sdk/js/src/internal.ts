// What the build wires: the capabilities the plugin was built with, and the
// service `exportService` registered. Not part of the API.

import { Failed } from "./errors.js";

type Logging = typeof import("wasi:logging/logging@0.1.0-draft");
type ConfigStore = typeof import("wasi:config/store@0.2.0-rc.1");
type KeyValueStore = typeof import("wasi:keyvalue/store@0.2.0-draft");
type KeyValueAtomics = typeof import("wasi:keyvalue/atomics@0.2.0-draft");
type Sql = typeof import("orizuru:service/sql@0.1.0");

/** The WIT imports of the world the plugin was built for. */
export interface Capabilities {
  logging?: Logging;
  config?: ConfigStore;
  keyvalue?: { store: KeyValueStore; atomics: KeyValueAtomics };
  sql?: Sql;
}

const GRANTS: Record<keyof Capabilities, string> = {
  logging: "`logging = true`",
  config: "a [services.config] or [services.secrets] table",
  keyvalue: "`keyvalue = true`",
  sql: "a [services.sql.NAME] table",
};

let capabilities: Capabilities = {};

/** Called by the build's entry module with the imports of its world. */
export function registerCapabilities(granted: Capabilities): void {
  capabilities = granted;
}

/** The imports of a capability, or a sentence saying how to build with it. */
export function capability<K extends keyof Capabilities>(name: K): NonNullable<Capabilities[K]> {
  const found = capabilities[name];
  if (found === undefined) {
    throw new Failed(
      `this plugin was built without the ${name} capability; build it with \`orizuru-build PLUGIN_DIR OUT.wasm --with ${name}\` and grant it with ${GRANTS[name]} in its [[services]] entry`,
    );
  }
  return found as NonNullable<Capabilities[K]>;
}

/**
 * The payload of an error a WIT import threw for its `result`'s error case
 * (componentize-js throws an object whose `payload` is the error variant).
 */
export function importError(err: unknown): unknown {
  if (err !== null && typeof err === "object" && "payload" in err) return (err as { payload: unknown }).payload;
  throw err;
}
