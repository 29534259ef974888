// A message-queue service, the stateful example, in TypeScript: the same
// plugin as plugins/queue (Rust), answering tsuru alike. Two plans, typed
// parameters read with a zod schema, the instance's own data kept by the
// host, a large plan that provisions in the background (pending, then up),
// per-app credentials, info lines and a proxied backup call.
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
} from "orizuru-sdk";
import { z } from "zod";

const PLANS: Plan[] = [
  { name: "small", description: "One queue, 100 messages a second" },
  { name: "large", description: "Ten queues, 10,000 messages a second; provisioning takes a while" },
];

/**
 * What `tsuru service instance add queue NAME -p KEY=VALUE` may set. tsuru
 * sends every value as text; the SDK reads "48" as 48 and "false" as false.
 */
const Parameters = z.object({
  /** How long messages are kept, in hours (1 to 720). */
  retention_hours: z.int().default(24),
  /** How long provisioning takes, in seconds (the large plan's default is 5). */
  provision_seconds: z.int().min(0).optional(),
  /** Makes `status` report a broken broker, to show how tsuru displays it. */
  simulate: z.string().optional(),
  /** Whether messages survive a broker restart. */
  durable: z.boolean().default(true),
  /** At most this many messages a second; unlimited when not set. */
  max_rate: z.number().optional(),
});

/** What `tsuru service instance bind ... -p KEY=VALUE` may set. */
const BindParameters = z.object({
  /** Given to the app as QUEUE_PREFIX. */
  prefix: z.string().optional(),
});

/** What the plugin remembers about an instance, in the host's ledger. */
interface Data {
  vhost: string;
  retention_hours: number;
  durable: boolean;
  max_rate?: number;
  /** When provisioning is done, in seconds since the epoch. */
  ready_at: number;
  simulate?: string;
}

const now = (): number => Math.floor(Date.now() / 1000);

function checkPlan(plan: string | undefined): string {
  const name = plan ?? "small";
  if (!PLANS.some((known) => known.name === name)) {
    throw new Invalid(`plan "${name}" does not exist; choose small or large`);
  }
  return name;
}

/** Provisions (on paper) and answers what to remember; `delay` overrides how long provisioning takes. */
function provision(instance: Instance, delay?: number): Provisioned {
  const plan = checkPlan(instance.plan);
  const parameters = instance.parametersAs(Parameters);
  const { retention_hours, max_rate } = parameters;
  if (retention_hours < 1 || retention_hours > 720) {
    throw new Invalid(`retention_hours is ${retention_hours}; give a number of hours from 1 to 720`);
  }
  if (max_rate !== undefined && (!Number.isFinite(max_rate) || max_rate <= 0)) {
    throw new Invalid(`max_rate is ${max_rate}; give a number of messages a second above 0`);
  }
  const wait = delay ?? parameters.provision_seconds ?? (plan === "large" ? 5 : 0);
  const data: Data = {
    vhost: `/${instance.name}`,
    retention_hours,
    durable: parameters.durable,
    max_rate,
    ready_at: now() + wait,
    simulate: parameters.simulate,
  };
  return (wait > 0 ? Provisioned.pending() : Provisioned.ready()).withData(data);
}

function data(instance: Instance): Data {
  const found = instance.dataAs<Data>();
  if (found === undefined) {
    throw new Failed(`instance "${instance.name}" has no queue data; remove it and create it again`);
  }
  return found;
}

/** A new password for each bind (a real service would store it in its broker). */
function newPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function credentials(instance: Instance, user: string): Record<string, string> {
  const { vhost } = data(instance);
  const password = newPassword();
  return {
    QUEUE_URL: `amqp://${user}:${password}@queue.example.com:5672${vhost}`,
    QUEUE_HOST: "queue.example.com",
    QUEUE_PORT: "5672",
    QUEUE_VHOST: vhost,
    QUEUE_USER: user,
    QUEUE_PASSWORD: password,
  };
}

class Queue extends Service {
  override plans(_context: Context): Plan[] {
    return PLANS;
  }

  override create(request: CreateRequest): Provisioned {
    return provision(request.instance);
  }

  override update(request: UpdateRequest): Provisioned {
    const current = data(request.current);
    const next = request.next;
    if (next.parameters === "{}") next.parameters = request.current.parameters;
    // A change finishes what provisioning had left, and nothing more.
    return provision(next, Math.max(0, current.ready_at - now()));
  }

  override status(instance: Instance, _context: Context): Status {
    const { simulate, ready_at } = data(instance);
    if (simulate === "down") return Status.down("the broker does not answer");
    if (simulate === "degraded") return Status.custom("degraded: 1 of 2 nodes up");
    const left = ready_at - now();
    if (left > 0) return Status.pending(`provisioning, about ${left}s left`);
    return Status.up();
  }

  override info(instance: Instance, _context: Context): InfoItem[] {
    const { vhost, retention_hours, durable, max_rate } = data(instance);
    return [
      { label: "Plan", value: instance.plan ?? "small" },
      { label: "Virtual host", value: vhost },
      { label: "Retention", value: `${retention_hours} hours` },
      { label: "Durable", value: durable ? "yes" : "no" },
      // String(12.5) is "12.5" and String(100) is "100": the shortest form that reads back.
      { label: "Max rate", value: max_rate === undefined ? "unlimited" : `${max_rate} messages a second` },
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
      throw new NotFound(
        `instance "${instance.name}" has no route ${request.method} ${request.path}; try POST /backup`,
      );
    }
    const { context } = request;
    const echo = {
      instance: instance.name,
      method: request.method,
      path: request.path,
      names: request.queryValues("names"),
      header: request.header("x-backup-note") ?? null,
      body: request.text(),
      user: context.user ?? null,
      event_id: context.eventId ?? null,
      request_id: context.requestId ?? null,
      pool: context.poolName ?? null,
      cluster: context.clusterName ?? null,
      cluster_addresses: context.clusterAddresses,
    };
    return new ProxyResponse(202, JSON.stringify(echo))
      .header("content-type", "application/json")
      .header("x-queue-backup", "started");
  }
}

exportService(new Queue());
