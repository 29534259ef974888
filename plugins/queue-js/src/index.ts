// A message-queue service, the stateful example, in TypeScript: the same
// plugin as plugins/queue (Rust), answering tsuru word for word as it does.
// Two plans, parameters decoded into a typed struct, the instance's own data
// kept by the host, a large plan that provisions in the background (pending,
// then up), per-app credentials, info lines and a proxied backup call.
//
// It provisions nothing real; a real service would call its broker where
// this one only computes names and credentials.
//
// Build: guest-sdk/js/build plugins/queue-js queue-js.wasm

import {
  type AppBinding,
  type Context,
  type CreateRequest,
  type Env,
  type InfoItem,
  type Instance,
  type JobBinding,
  type Plan,
  type ProxyRequest,
  type UpdateRequest,
  Failed,
  Invalid,
  NotFound,
  Provisioned,
  ProxyResponse,
  Service,
  Status,
  exportService,
  fields,
} from "orizuru-sdk";

const PLANS: [string, string][] = [
  ["small", "One queue, 100 messages a second"],
  ["large", "Ten queues, 10,000 messages a second; provisioning takes a while"],
];

const U64 = 1n << 64n;

/** Rust's u64 arithmetic in a release build: it wraps. */
const wrap = (n: bigint): bigint => ((n % U64) + U64) % U64;

/** What Rust's `str::trim` removes (Unicode White_Space), at either end. */
const RUST_TRIM = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/** Form-encoded parameters arrive as text, JSON ones as numbers: take both. */
const wholeNumber = fields.optional(
  fields.map(fields.untagged("NumberOrText", [fields.u64(), fields.string()]), (value): bigint => {
    if (typeof value === "bigint") return value;
    const text = value.replace(RUST_TRIM, "");
    const digits = text.startsWith("+") ? text.slice(1) : text;
    if (/^[0-9]+$/.test(digits) && BigInt(digits) < U64) return BigInt(digits);
    throw new fields.Mismatch(`"${value}" is not a whole number`);
  }),
);

/** What `tsuru service instance add queue NAME -p KEY=VALUE` may set. */
const Parameters = fields.struct(
  "Parameters",
  {
    /** How long messages are kept, in hours (1 to 720; 24 by default). */
    retention_hours: wholeNumber,
    /** How long provisioning takes, in seconds (the large plan's default is 5). */
    provision_seconds: wholeNumber,
    /** Makes `status` report a broken broker, to show how tsuru displays it. */
    simulate: fields.optional(fields.string()),
  },
  { denyUnknownFields: true },
);

/** What the plugin remembers about an instance, in the host's ledger. */
const Data = fields.struct("Data", {
  vhost: fields.string(),
  retention_hours: fields.u64(),
  ready_at: fields.u64(),
  simulate: fields.optional(fields.string()),
});
type Data = fields.Infer<typeof Data>;

const BindParameters = fields.struct("BindParameters", { prefix: fields.optional(fields.string()) }, { denyUnknownFields: true });

function now(): bigint {
  return BigInt(Math.floor(Date.now() / 1000));
}

function checkPlan(plan: string | undefined): string {
  const name = plan ?? "small";
  if (!PLANS.some(([known]) => known === name)) {
    throw new Invalid(`plan "${name}" does not exist; choose small or large`);
  }
  return name;
}

/** Provisions (on paper) and answers what to remember; `delay` overrides how long provisioning takes. */
function provision(instance: Instance, delay: bigint | undefined): Provisioned {
  const plan = checkPlan(instance.plan);
  const parameters = instance.parametersAs(Parameters);
  const retentionHours = parameters.retention_hours ?? 24n;
  if (retentionHours < 1n || retentionHours > 720n) {
    throw new Invalid(`retention_hours is ${retentionHours}; give a number of hours from 1 to 720`);
  }
  const wait = delay ?? parameters.provision_seconds ?? (plan === "large" ? 5n : 0n);
  const data: Data = {
    vhost: `/${instance.name}`,
    retention_hours: retentionHours,
    ready_at: wrap(now() + wait),
    simulate: parameters.simulate,
  };
  // Written as the Rust plugin writes it: every field, null when absent.
  const stored = { ...data, simulate: data.simulate ?? null };
  return (wait > 0n ? Provisioned.pending() : Provisioned.ready()).withData(stored);
}

function data(instance: Instance): Data {
  const found = instance.dataAs(Data);
  if (found === undefined) {
    throw new Failed(`instance "${instance.name}" has no queue data; remove it and create it again`);
  }
  return found;
}

/** A password only this instance and client share (FNV-1a over "instance/client"). */
function password(instance: string, client: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(`${instance}/${client}`)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) % U64;
  }
  return hash.toString(16).padStart(16, "0");
}

function credentials(instance: Instance, user: string): Record<string, string> {
  const { vhost } = data(instance);
  const secret = password(instance.name, user);
  return {
    QUEUE_URL: `amqp://${user}:${secret}@queue.example.com:5672${vhost}`,
    QUEUE_HOST: "queue.example.com",
    QUEUE_PORT: "5672",
    QUEUE_VHOST: vhost,
    QUEUE_USER: user,
    QUEUE_PASSWORD: secret,
  };
}

class Queue extends Service {
  override plans(_context: Context): Plan[] {
    return PLANS.map(([name, description]) => ({ name, description }));
  }

  override create(request: CreateRequest): Provisioned {
    return provision(request.instance, undefined);
  }

  override update(request: UpdateRequest): Provisioned {
    const current = data(request.current);
    const next = request.next;
    if (next.parameters === "{}") next.parameters = request.current.parameters;
    // A change finishes what provisioning had left, and nothing more.
    const left = current.ready_at - now();
    return provision(next, left > 0n ? left : 0n);
  }

  override status(instance: Instance, _context: Context): Status {
    const { simulate, ready_at } = data(instance);
    if (simulate === "down") return Status.down("the broker does not answer");
    if (simulate === "degraded") return Status.custom("degraded: 1 of 2 nodes up");
    if (ready_at > now()) return Status.pending(`provisioning, about ${wrap(ready_at - now())}s left`);
    return Status.up();
  }

  override info(instance: Instance, _context: Context): InfoItem[] {
    const { vhost, retention_hours } = data(instance);
    return [
      { label: "Plan", value: instance.plan ?? "small" },
      { label: "Virtual host", value: vhost },
      { label: "Retention", value: `${retention_hours} hours` },
    ];
  }

  override bindApp(instance: Instance, app: AppBinding): Env {
    const { prefix } = app.parametersAs(BindParameters);
    const env = credentials(instance, app.appName);
    if (prefix !== undefined) env.QUEUE_PREFIX = prefix;
    return env;
  }

  override unbindApp(_instance: Instance, _app: AppBinding): void {}

  override bindJob(instance: Instance, job: JobBinding): Env {
    return credentials(instance, `job-${job.jobName}`);
  }

  override proxy(instance: Instance | undefined, request: ProxyRequest): ProxyResponse {
    if (instance === undefined) {
      throw new NotFound(`the queue service has no service-level route ${request.path}`);
    }
    if (request.method !== "POST" || request.path !== "/backup") {
      throw new NotFound(`instance "${instance.name}" has no route ${request.method} ${request.path}; try POST /backup`);
    }
    // Keys in the order serde_json's map writes them (sorted), as the Rust plugin answers.
    const echo = {
      body: request.text(),
      cluster: request.context.clusterName ?? null,
      cluster_addresses: request.context.clusterAddresses,
      event_id: request.context.eventId ?? null,
      header: request.header("x-backup-note") ?? null,
      instance: instance.name,
      method: request.method,
      names: request.queryValues("names"),
      path: request.path,
      pool: request.context.poolName ?? null,
      request_id: request.context.requestId ?? null,
      user: request.context.user ?? null,
    };
    return new ProxyResponse(202, JSON.stringify(echo))
      .header("content-type", "application/json")
      .header("x-queue-backup", "started");
  }
}

exportService(new Queue());
