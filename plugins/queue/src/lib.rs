//! A message-queue service, the stateful example: two plans, typed
//! parameters read into a struct (tsuru sends them as text; the SDK reads
//! them), the instance's own data kept by the host, a large plan that
//! provisions in the background (pending, then up), per-app credentials,
//! info lines and a proxied backup call.
//!
//! It provisions nothing real; a real service would call its broker where
//! this one only computes names and credentials.

use std::time::{SystemTime, UNIX_EPOCH};

use orizuru_sdk::{
    AppBinding, Context, CreateRequest, Env, Error, InfoItem, Instance, JobBinding, Plan,
    Provisioned, ProxyRequest, ProxyResponse, Result, Service, Status, UpdateRequest,
};
use serde::{Deserialize, Serialize};

struct Queue;

const PLANS: [(&str, &str); 2] = [
    ("small", "One queue, 100 messages a second"),
    (
        "large",
        "Ten queues, 10,000 messages a second; provisioning takes a while",
    ),
];

/// What `tsuru service instance add queue NAME -p KEY=VALUE` may set.
#[derive(Deserialize, Default)]
struct Parameters {
    /// How long messages are kept, in hours (1 to 720; 24 by default).
    retention_hours: Option<u64>,
    /// How long provisioning takes, in seconds (the large plan's default is 5).
    provision_seconds: Option<u64>,
    /// Makes `status` report a broken broker, to show how tsuru displays it.
    simulate: Option<String>,
    /// Whether messages survive a broker restart (true by default).
    durable: Option<bool>,
    /// At most this many messages a second; no limit when absent.
    max_rate: Option<f64>,
}

/// What `tsuru service instance bind queue NAME -p KEY=VALUE` may set.
#[derive(Deserialize, Default)]
struct BindParameters {
    /// Prepended to the app's queue names.
    prefix: Option<String>,
}

/// What the plugin remembers about an instance, in the host's ledger.
#[derive(Serialize, Deserialize)]
struct Data {
    vhost: String,
    retention_hours: u64,
    durable: bool,
    max_rate: Option<f64>,
    ready_at: u64,
    simulate: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn check_plan(plan: Option<&str>) -> Result<&'static str> {
    let plan = plan.unwrap_or("small");
    PLANS
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == plan)
        .ok_or_else(|| {
            Error::invalid(format!(
                "plan \"{plan}\" does not exist; choose small or large"
            ))
        })
}

/// Provisions (on paper) and answers what to remember; `delay` overrides how
/// long provisioning takes.
fn provision(instance: &Instance, delay: Option<u64>) -> Result<Provisioned> {
    let plan = check_plan(instance.plan.as_deref())?;
    let parameters: Parameters = instance.parameters_as()?;
    let retention_hours = parameters.retention_hours.unwrap_or(24);
    if !(1..=720).contains(&retention_hours) {
        return Err(Error::invalid(format!(
            "retention_hours is {retention_hours}; give a number of hours from 1 to 720"
        )));
    }
    if let Some(rate) = parameters.max_rate.filter(|rate| *rate <= 0.0) {
        return Err(Error::invalid(format!(
            "max_rate is {rate}; give a number of messages a second above 0"
        )));
    }
    let delay = delay
        .or(parameters.provision_seconds)
        .unwrap_or(if plan == "large" { 5 } else { 0 });
    let data = Data {
        vhost: format!("/{}", instance.name),
        retention_hours,
        durable: parameters.durable.unwrap_or(true),
        max_rate: parameters.max_rate,
        ready_at: now().saturating_add(delay),
        simulate: parameters.simulate,
    };
    let provisioned = if delay > 0 {
        Provisioned::pending()
    } else {
        Provisioned::ready()
    };
    provisioned.with_data(&data)
}

fn data(instance: &Instance) -> Result<Data> {
    instance.data_as()?.ok_or_else(|| {
        Error::failed(format!(
            "instance \"{}\" has no queue data; remove it and create it again",
            instance.name
        ))
    })
}

/// A new password, as a real broker would be given at bind: 16 random bytes
/// in hex.
fn password() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|err| Error::failed(format!("no random bytes for a password: {err}")))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn credentials(instance: &Instance, user: &str) -> Result<Env> {
    let data = data(instance)?;
    let password = password()?;
    Ok(Env::from([
        (
            "QUEUE_URL".into(),
            format!(
                "amqp://{user}:{password}@queue.example.com:5672{}",
                data.vhost
            ),
        ),
        ("QUEUE_HOST".into(), "queue.example.com".into()),
        ("QUEUE_PORT".into(), "5672".into()),
        ("QUEUE_VHOST".into(), data.vhost),
        ("QUEUE_USER".into(), user.into()),
        ("QUEUE_PASSWORD".into(), password),
    ]))
}

impl Service for Queue {
    fn plans(_context: Context) -> Result<Vec<Plan>> {
        Ok(PLANS
            .iter()
            .map(|(name, description)| Plan::new(*name, *description))
            .collect())
    }

    fn create(request: CreateRequest) -> Result<Provisioned> {
        provision(&request.instance, None)
    }

    fn update(request: UpdateRequest) -> Result<Provisioned> {
        let current = data(&request.current)?;
        let mut next = request.next;
        if next.parameters == "{}" {
            next.parameters = request.current.parameters;
        }
        // A change finishes what provisioning had left, and nothing more.
        provision(&next, Some(current.ready_at.saturating_sub(now())))
    }

    fn status(instance: Instance, _context: Context) -> Result<Status> {
        let data = data(&instance)?;
        Ok(match data.simulate.as_deref() {
            Some("down") => Status::Down("the broker does not answer".into()),
            Some("degraded") => Status::Custom("degraded: 1 of 2 nodes up".into()),
            _ if data.ready_at > now() => Status::Pending(format!(
                "provisioning, about {}s left",
                data.ready_at - now()
            )),
            _ => Status::Up,
        })
    }

    fn info(instance: Instance, _context: Context) -> Result<Vec<InfoItem>> {
        let data = data(&instance)?;
        Ok(vec![
            InfoItem::new("Plan", instance.plan.as_deref().unwrap_or("small")),
            InfoItem::new("Virtual host", &data.vhost),
            InfoItem::new("Retention", format!("{} hours", data.retention_hours)),
            InfoItem::new("Durable", if data.durable { "yes" } else { "no" }),
            InfoItem::new(
                "Max rate",
                match data.max_rate {
                    Some(rate) => format!("{rate} messages a second"),
                    None => "unlimited".into(),
                },
            ),
        ])
    }

    fn bind_app(instance: Instance, app: AppBinding) -> Result<Env> {
        let parameters: BindParameters = app.parameters_as()?;
        let mut env = credentials(&instance, &app.app_name)?;
        if let Some(prefix) = parameters.prefix {
            env.insert("QUEUE_PREFIX".into(), prefix);
        }
        Ok(env)
    }

    fn unbind_app(_instance: Instance, _app: AppBinding) -> Result<()> {
        Ok(())
    }

    fn bind_job(instance: Instance, job: JobBinding) -> Result<Env> {
        credentials(&instance, &format!("job-{}", job.job_name))
    }

    fn proxy(instance: Option<Instance>, request: ProxyRequest) -> Result<ProxyResponse> {
        let Some(instance) = instance else {
            return Err(Error::not_found(format!(
                "the queue service has no service-level route {}",
                request.path
            )));
        };
        if request.method != "POST" || request.path != "/backup" {
            return Err(Error::not_found(format!(
                "instance \"{}\" has no route {} {}; try POST /backup",
                instance.name, request.method, request.path
            )));
        }
        let echo = serde_json::json!({
            "instance": instance.name,
            "method": request.method,
            "path": request.path,
            "names": request.query_values("names").collect::<Vec<_>>(),
            "header": request.header("x-backup-note"),
            "body": String::from_utf8_lossy(&request.body),
            "user": request.context.user,
            "event_id": request.context.event_id,
            "request_id": request.context.request_id,
            "pool": request.context.pool_name,
            "cluster": request.context.cluster_name,
            "cluster_addresses": request.context.cluster_addresses,
        });
        Ok(ProxyResponse::new(202, echo.to_string())
            .header("content-type", "application/json")
            .header("x-queue-backup", "started"))
    }
}

orizuru_sdk::export!(Queue);
