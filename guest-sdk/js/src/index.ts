/// <reference path="../generated/types/plugin-with-capabilities.d.ts" />
/**
 * Write a tsuru service API as an Orizuru plugin, in TypeScript or JavaScript.
 *
 * Orizuru serves tsuru's service API over HTTP, keeps the instance ledger
 * (duplicate creates, unknown instances and retried events are answered
 * without your code) and calls your plugin once per tsuru action, each time
 * in a fresh sandbox. A plugin extends {@link Service}, overriding the
 * actions it offers, and hands an instance to {@link exportService}:
 *
 *     import { Service, exportService, type Env, type Instance, type AppBinding } from "orizuru-sdk";
 *
 *     class Fake extends Service {
 *       override bindApp(_instance: Instance, _app: AppBinding): Env {
 *         return { SOMEVAR: "somevalue" };
 *       }
 *     }
 *
 *     exportService(new Fake());
 *
 * Build it with `orizuru-build PLUGIN_DIR OUT.wasm`. Every error you
 * throw becomes the body tsuru shows its user word for word.
 */

import type * as wit from "orizuru:service/types@0.1.0";
import type * as z from "zod/v4/core";
import { Failed, ServiceError, Unsupported } from "./errors.js";
import { readParameters } from "./parameters.js";

export { ServiceError, Invalid, NotFound, Conflict, NotReady, Failed, Unsupported, MissingParams } from "./errors.js";
export * as log from "./log.js";
export * as config from "./config.js";
export * as kv from "./kv.js";
export * as sql from "./sql.js";

/** Who asked, as tsuru said it in the request's headers. */
export type Context = wit.Context;
/** A plan offered by the service. */
export type Plan = wit.Plan;
/** A line of `tsuru service instance info`. */
export type InfoItem = wit.InfoItem;
/** How far a create or update got: `Provisioned.ready()` or `Provisioned.pending()`. */
export type Provisioned = wit.Provisioned | ProvisionedBuilder;
/** What `tsuru service instance status` shows: see {@link Status}. */
export type Status = wit.InstanceStatus;

/**
 * Environment variables for a bound app or job, by name. They reach tsuru
 * sorted by name, whatever order they were given in.
 */
export type Env = Record<string, string> | Map<string, string>;

/** Anything that may be awaited or not: every action may be `async`. */
export type Answer<T> = T | Promise<T>;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** A zod schema (from `zod` or `zod/mini`) describing parameters or data. */
export type Schema = z.$ZodType;

/** The parsed parameters object, for a plugin that reads it without a schema. */
function parsedParameters(json: string): Record<string, unknown> {
  return JSON.parse(json) as Record<string, unknown>;
}

/** What the host keeps for an instance and hands to every call on it. */
export class Instance implements wit.Instance {
  name: string;
  plan?: string;
  team?: string;
  description?: string;
  tags: string[];
  /** The parameters as a JSON object's text (`{}` when none). */
  parameters: string;
  /** The plugin's own value, as it last returned it from create or update. */
  data?: string;

  constructor(from: wit.Instance) {
    this.name = from.name;
    this.plan = from.plan;
    this.team = from.team;
    this.description = from.description;
    this.tags = from.tags;
    this.parameters = from.parameters;
    this.data = from.data;
  }

  /**
   * The parameters (`tsuru service instance add ... -p KEY=VALUE`) read
   * with a zod schema, typed as it declares them. tsuru sends every value
   * as text; text that reads as a field's type is taken as that type
   * (`"48"` for `z.int()`, `"false"` for `z.boolean()`). A parameter the
   * schema does not declare, or a value it refuses, is the caller's
   * mistake, thrown as {@link Invalid} with a sentence naming it. Without a
   * schema, the parsed object as it came.
   */
  parametersAs(): Record<string, unknown>;
  parametersAs<S extends Schema>(schema: S): z.output<S>;
  parametersAs(schema?: Schema): unknown {
    if (schema === undefined) return parsedParameters(this.parameters);
    return readParameters(this.parameters, `instance ${JSON.stringify(this.name)}`, schema);
  }

  /**
   * The data the plugin returned with {@link ProvisionedBuilder.withData},
   * parsed, and checked with `schema` when one is given; `undefined` when it
   * returned none.
   */
  dataAs<T = unknown>(): T | undefined;
  dataAs<S extends Schema>(schema: S): z.output<S> | undefined;
  dataAs(schema?: Schema): unknown {
    if (this.data === undefined) return undefined;
    const unreadable = (why: string) =>
      new Failed(`the data stored for instance ${JSON.stringify(this.name)} could not be read: ${why}`);
    let data: unknown;
    try {
      data = JSON.parse(this.data);
    } catch (err) {
      throw unreadable((err as Error).message);
    }
    if (schema === undefined) return data;
    const result = schema["~standard"].validate(data);
    if (result instanceof Promise) throw unreadable("its schema has async checks; give dataAs a synchronous one");
    if (result.issues !== undefined) {
      const [issue] = result.issues;
      const at = (issue.path ?? []).map((step) => String(typeof step === "object" ? step.key : step)).join(".");
      throw unreadable(at === "" ? issue.message : `${at}: ${issue.message}`);
    }
    return result.value;
  }
}

export class CreateRequest implements wit.CreateRequest {
  instance: Instance;
  context: Context;

  constructor(from: wit.CreateRequest) {
    this.instance = new Instance(from.instance);
    this.context = from.context;
  }
}

export class UpdateRequest implements wit.UpdateRequest {
  /** The instance as the host has it now. */
  current: Instance;
  /** The instance as tsuru wants it; `data` is the current one. */
  next: Instance;
  context: Context;

  constructor(from: wit.UpdateRequest) {
    this.current = new Instance(from.current);
    this.next = new Instance(from.next);
    this.context = from.context;
  }
}

export class AppBinding implements wit.AppBinding {
  appName: string;
  /** The app's public addresses, first the main one. */
  appHosts: string[];
  appInternalHosts: string[];
  appPoolName?: string;
  appPoolProvisioner?: string;
  appClusterName?: string;
  appClusterProvisioner?: string;
  appClusterAddresses: string[];
  /** The binding's parameters as a JSON object's text (`{}` when none). */
  parameters: string;
  context: Context;

  constructor(from: wit.AppBinding) {
    this.appName = from.appName;
    this.appHosts = from.appHosts;
    this.appInternalHosts = from.appInternalHosts;
    this.appPoolName = from.appPoolName;
    this.appPoolProvisioner = from.appPoolProvisioner;
    this.appClusterName = from.appClusterName;
    this.appClusterProvisioner = from.appClusterProvisioner;
    this.appClusterAddresses = from.appClusterAddresses;
    this.parameters = from.parameters;
    this.context = from.context;
  }

  /** The binding's parameters (`tsuru service instance bind ... -p KEY=VALUE`), read as {@link Instance.parametersAs} reads an instance's. */
  parametersAs(): Record<string, unknown>;
  parametersAs<S extends Schema>(schema: S): z.output<S>;
  parametersAs(schema?: Schema): unknown {
    if (schema === undefined) return parsedParameters(this.parameters);
    return readParameters(this.parameters, `the binding of app ${JSON.stringify(this.appName)}`, schema);
  }
}

export type JobBinding = wit.JobBinding;

/** A call tsuru forwards as it came (`tsuru service instance proxy`). */
export class ProxyRequest implements wit.ProxyRequest {
  method: string;
  /** What follows the instance name, or the whole path for a service-level call. */
  path: string;
  query: [string, string][];
  headers: [string, string][];
  body: Uint8Array;
  context: Context;

  constructor(from: wit.ProxyRequest) {
    this.method = from.method;
    this.path = from.path;
    this.query = from.query;
    this.headers = from.headers;
    this.body = from.body;
    this.context = from.context;
  }

  /** Every value of a query parameter, in order. */
  queryValues(name: string): string[] {
    return this.query.filter(([key]) => key === name).map(([, value]) => value);
  }

  /** The first value of a header, by case-insensitive name. */
  header(name: string): string | undefined {
    const wanted = name.toLowerCase();
    return this.headers.find(([key]) => key.toLowerCase() === wanted)?.[1];
  }

  /** The body as text (invalid UTF-8 replaced by U+FFFD). */
  text(): string {
    return textDecoder.decode(this.body);
  }
}

/** The answer to a proxied call. */
export class ProxyResponse implements wit.ProxyResponse {
  status: number;
  headers: [string, string][] = [];
  body: Uint8Array;

  /** A response with a status, no headers, and `body` (text is sent as UTF-8). */
  constructor(status: number, body: string | Uint8Array = new Uint8Array()) {
    this.status = status;
    this.body = typeof body === "string" ? textEncoder.encode(body) : body;
  }

  /** Adds a header (a name may be given more than once). */
  header(name: string, value: string): this {
    this.headers.push([name, value]);
    return this;
  }
}

/** What create and update answer. */
export const Provisioned = {
  /** Done; `withData` also remembers a value with the instance. */
  ready(): ProvisionedBuilder {
    return new ProvisionedBuilder("ready");
  },
  /** Still provisioning: binds answer 412 until `status` says up. */
  pending(): ProvisionedBuilder {
    return new ProvisionedBuilder("pending");
  },
};

/** A `Provisioned` answer being built: `ready()` or `pending()`, then `withData`. */
export class ProvisionedBuilder {
  readonly tag: "ready" | "pending";
  readonly val?: string;

  constructor(tag: "ready" | "pending", val?: string) {
    this.tag = tag;
    this.val = val;
  }

  /**
   * Remember `data` with the instance, written with `JSON.stringify`; every
   * later call gets it back through {@link Instance.dataAs}.
   */
  withData(data: unknown): ProvisionedBuilder {
    let text: string | undefined;
    try {
      text = JSON.stringify(data);
    } catch (err) {
      throw new Failed(`the plugin's instance data could not be written as JSON: ${(err as Error).message}`);
    }
    if (text === undefined) {
      throw new Failed(
        `the plugin's instance data (${typeof data}) cannot be written as JSON; give an object, array, string, number or boolean`,
      );
    }
    return new ProvisionedBuilder(this.tag, text);
  }
}

/** What `status` answers. */
export const Status = {
  /** Ready (204). */
  up(): Status {
    return { tag: "up" };
  },
  /** Still provisioning, with a note (202). */
  pending(note: string): Status {
    return { tag: "pending", val: note };
  },
  /** Broken, with the reason (500). */
  down(reason: string): Status {
    return { tag: "down", val: reason };
  },
  /** Any other state, shown as written (200). */
  custom(state: string): Status {
    return { tag: "custom", val: state };
  },
};

/**
 * A tsuru service. Every action has a default, so a plugin overrides only
 * the ones its service offers:
 *
 * - `plans`: no plans; `info`: nothing to add; `status`: up;
 * - `create`: ready, with nothing to remember; `remove`, `unbindApp`,
 *   `unbindJob`: nothing to undo;
 * - `update`, `bindApp`, `bindJob`, `proxy`: {@link Unsupported}, which the
 *   host answers as tsuru expects ("this service does not support ...").
 *
 * An action answers its value, or throws `Invalid`, `NotFound`, `Conflict`,
 * `NotReady`, `Failed`, `Unsupported` or `MissingParams`. Any action may be
 * `async`.
 */
export class Service {
  /** The plans offered, for `tsuru service info` and `service-instance-add -p`. */
  plans(_context: Context): Answer<Plan[]> {
    return [];
  }

  /**
   * Provision a new instance. The host already checked that the name is
   * free; answer `Provisioned.pending()` when provisioning finishes later
   * and `status` will report when it is up.
   */
  create(_request: CreateRequest): Answer<Provisioned> {
    return Provisioned.ready();
  }

  /** Change an instance's plan, description, tags or parameters. */
  update(_request: UpdateRequest): Answer<Provisioned> {
    throw new Unsupported();
  }

  /**
   * Tear an instance down. Also called for an instance whose creation did
   * not finish, so take half-made things in your stride.
   */
  remove(_instance: Instance, _context: Context): Answer<void> {}

  /** Extra lines for `tsuru service instance info`. */
  info(_instance: Instance, _context: Context): Answer<InfoItem[]> {
    return [];
  }

  /** The instance's health, for `tsuru service instance status`. */
  status(_instance: Instance, _context: Context): Answer<Status> {
    return Status.up();
  }

  /** Bind an app: answer the env vars it gets. */
  bindApp(_instance: Instance, _app: AppBinding): Answer<Env> {
    throw new Unsupported();
  }

  /** Undo `bindApp`. Also called after a bind that failed half-way. */
  unbindApp(_instance: Instance, _app: AppBinding): Answer<void> {}

  /** Bind a job: answer the env vars it gets. */
  bindJob(_instance: Instance, _job: JobBinding): Answer<Env> {
    throw new Unsupported();
  }

  /** Undo `bindJob`. */
  unbindJob(_instance: Instance, _job: JobBinding): Answer<void> {}

  /**
   * A request tsuru forwards as it came (`tsuru service instance proxy`);
   * `instance` is undefined for a service-level call.
   */
  proxy(_instance: Instance | undefined, _request: ProxyRequest): Answer<ProxyResponse> {
    throw new Unsupported();
  }
}

let exported: Service | undefined;

/**
 * Makes `service` the plugin's implementation of the Orizuru contract.
 * Call it once, at the top level of the plugin's entry module.
 */
export function exportService(service: Service): void {
  if (!(service instanceof Service)) {
    throw new TypeError("exportService takes an instance of a class that extends Service from orizuru-sdk");
  }
  if (exported !== undefined) {
    throw new TypeError("exportService was called twice; a plugin exports one service");
  }
  exported = service;
}

/** Whether `exportService` was called. @internal */
export function __exportedService(): boolean {
  return exported !== undefined;
}

export { registerCapabilities as __registerCapabilities } from "./internal.js";

function envList(env: Env, action: string): wit.Env {
  if (env === null || typeof env !== "object") {
    throw new Failed(
      `the plugin's ${action} answered ${String(env)} where env vars (an object of name: value) were expected`,
    );
  }
  const entries: [string, unknown][] = env instanceof Map ? [...env.entries()] : Object.entries(env);
  const vars = new Map<string, string>();
  for (const [name, value] of entries) {
    if (typeof value !== "string") {
      throw new Failed(
        `the plugin's ${action} answered env var "${name}" as a ${typeof value}; give every value as a string`,
      );
    }
    vars.set(name, value);
  }
  return [...vars.keys()].sort().map((name) => [name, vars.get(name)!]);
}

type WitResult<T> = { tag: "ok"; val: T } | { tag: "err"; val: wit.Error };

async function run<T>(action: string, call: (service: Service) => Answer<T>): Promise<WitResult<T>> {
  if (exported === undefined) {
    return {
      tag: "err",
      val: {
        tag: "failed",
        val: "the plugin exported no service; call exportService(new YourService()) in its entry module",
      },
    };
  }
  try {
    return { tag: "ok", val: await call(exported) };
  } catch (err) {
    if (err instanceof ServiceError) return { tag: "err", val: err.payload };
    const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    console.error(`orizuru-sdk: ${action} threw ${what}${err instanceof Error && err.stack ? `\n${err.stack}` : ""}`);
    return {
      tag: "err",
      val: { tag: "failed", val: `the plugin failed in ${action}: ${what}; its stack trace is in the host's log` },
    };
  }
}

function provisioned(answer: Provisioned, action: string): wit.Provisioned {
  if (answer === null || typeof answer !== "object" || (answer.tag !== "ready" && answer.tag !== "pending")) {
    throw new Failed(
      `the plugin's ${action} answered ${String(answer)}; answer Provisioned.ready() or Provisioned.pending()`,
    );
  }
  return answer.tag === "ready" ? { tag: "ready", val: answer.val } : { tag: "pending", val: answer.val };
}

/** The WIT `handler` export, as componentize-js expects it. @internal */
export const __handler = {
  plans: (ctx: wit.Context) => run("plans", (s) => s.plans(ctx)),
  create: (req: wit.CreateRequest) =>
    run("create", async (s) => provisioned(await s.create(new CreateRequest(req)), "create")),
  update: (req: wit.UpdateRequest) =>
    run("update", async (s) => provisioned(await s.update(new UpdateRequest(req)), "update")),
  remove: (inst: wit.Instance, ctx: wit.Context) => run("remove", (s) => s.remove(new Instance(inst), ctx)),
  info: (inst: wit.Instance, ctx: wit.Context) => run("info", (s) => s.info(new Instance(inst), ctx)),
  status: (inst: wit.Instance, ctx: wit.Context) => run("status", (s) => s.status(new Instance(inst), ctx)),
  bindApp: (inst: wit.Instance, app: wit.AppBinding) =>
    run("bindApp", async (s) => envList(await s.bindApp(new Instance(inst), new AppBinding(app)), "bindApp")),
  unbindApp: (inst: wit.Instance, app: wit.AppBinding) =>
    run("unbindApp", (s) => s.unbindApp(new Instance(inst), new AppBinding(app))),
  bindJob: (inst: wit.Instance, job: wit.JobBinding) =>
    run("bindJob", async (s) => envList(await s.bindJob(new Instance(inst), job), "bindJob")),
  unbindJob: (inst: wit.Instance, job: wit.JobBinding) => run("unbindJob", (s) => s.unbindJob(new Instance(inst), job)),
  proxy: (inst: wit.Instance | undefined, req: wit.ProxyRequest) =>
    run("proxy", (s) => s.proxy(inst === undefined ? undefined : new Instance(inst), new ProxyRequest(req))),
};
