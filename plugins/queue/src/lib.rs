//! A message-queue service, the stateful example: two plans, parameters
//! decoded into a struct, the instance's own data kept by the host, a large
//! plan that provisions in the background (pending, then up), per-app
//! credentials, info lines and a proxied backup call.
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
#[serde(deny_unknown_fields)]
struct Parameters {
    /// How long messages are kept, in hours (1 to 720; 24 by default).
    #[serde(default, deserialize_with = "number")]
    retention_hours: Option<u64>,
    /// How long provisioning takes, in seconds (the large plan's default is 5).
    #[serde(default, deserialize_with = "number")]
    provision_seconds: Option<u64>,
    /// Makes `status` report a broken broker, to show how tsuru displays it.
    #[serde(default)]
    simulate: Option<String>,
}

/// What the plugin remembers about an instance, in the host's ledger.
#[derive(Serialize, Deserialize)]
struct Data {
    vhost: String,
    retention_hours: u64,
    ready_at: u64,
    simulate: Option<String>,
}

/// Form-encoded parameters arrive as text, JSON ones as numbers: take both.
fn number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(u64),
        Text(String),
    }
    match Option::<NumberOrText>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrText::Number(number)) => Ok(Some(number)),
        Some(NumberOrText::Text(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("\"{text}\" is not a whole number"))),
    }
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
    let delay = delay
        .or(parameters.provision_seconds)
        .unwrap_or(if plan == "large" { 5 } else { 0 });
    let data = Data {
        vhost: format!("/{}", instance.name),
        retention_hours,
        ready_at: now() + delay,
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

/// A password only this instance and client share (a real service would
/// generate one at bind and store it in the broker).
fn password(instance: &str, client: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in instance.bytes().chain([b'/']).chain(client.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn credentials(instance: &Instance, user: &str) -> Result<Env> {
    let data = data(instance)?;
    let password = password(&instance.name, user);
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
        ])
    }

    fn bind_app(instance: Instance, app: AppBinding) -> Result<Env> {
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct BindParameters {
            prefix: Option<String>,
        }
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
