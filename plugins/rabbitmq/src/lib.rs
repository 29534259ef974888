//! A RabbitMQ provisioner: each instance is a vhost of its own, each bound
//! app a user of its own with a generated password and every permission on
//! that vhost only, all made through the management HTTP API of the broker
//! the operator declared. The plugin holds no credentials: the operator
//! attaches the admin's to the management origin, and the host adds them to
//! each request.
//!
//! ```toml
//! [[services]]
//! id = "rabbitmq"
//! plugin = "rabbitmq.wasm"
//! password_env = "RABBITMQ_SERVICE_PASSWORD"
//! [services.http]
//! allow = ["http://rabbitmq.internal:15672"]
//! [services.http.auth."http://rabbitmq.internal:15672"]
//! basic_user = "orizuru"                    # a user tagged administrator
//! basic_password_env = "RABBITMQ_ADMIN_PASSWORD"
//! [services.config]
//! management = "http://rabbitmq.internal:15672"
//! host = "rabbitmq.internal"                # what bound apps connect to (AMQP)
//! port = "5672"
//! # prefix = "tsuru"                        # of every vhost and user; one per service sharing a broker
//! ```
//!
//! RabbitMQ names are free text, so names are the tsuru names themselves,
//! joined by `/`, which no tsuru name holds (and the plugin refuses a name
//! with one): the vhost `tsuru/orders`, its apps' users `tsuru/orders/web`.
//! Two different instances or apps never share a name, and the users of an
//! instance are exactly those whose names start with its vhost and `/`.
//! Names travel percent-encoded in API paths and in the apps' URL.
//!
//! A vhost's description says which instance it is for; only an
//! administrator can write it (apps' users have no tags, so the management
//! API refuses them everything), so a create never takes over a vhost it did
//! not make. Plans are vhost limits (`max-connections`, `max-queues`), which
//! only an administrator can set too.

use orizuru_sdk::http::{Method, Request, Response};
use orizuru_sdk::{
    AppBinding, Context, CreateRequest, Env, Error, InfoItem, Instance, Plan, Provisioned, Result,
    Service, Status, UpdateRequest, config,
};
use serde::Deserialize;
use serde_json::json;

struct RabbitMq;

/// The plans: a name, what tsuru shows, and the vhost's limits
/// (connections, queues).
const PLANS: &[(&str, &str, u32, u32)] = &[
    (
        "small",
        "A vhost of its own on the shared broker, up to 20 connections and 100 queues",
        20,
        100,
    ),
    (
        "large",
        "A vhost of its own on the shared broker, up to 200 connections and 1000 queues",
        200,
        1000,
    ),
];

/// The plan of an instance created without one.
const DEFAULT_PLAN: &str = "small";

/// A plan's vhost limits.
struct Limits {
    connections: u32,
    queues: u32,
}

fn plan_limits(plan: Option<&str>) -> Result<Limits> {
    let plan = plan.filter(|plan| !plan.is_empty()).unwrap_or(DEFAULT_PLAN);
    PLANS
        .iter()
        .find(|(name, ..)| *name == plan)
        .map(|&(_, _, connections, queues)| Limits {
            connections,
            queues,
        })
        .ok_or_else(|| {
            let names: Vec<&str> = PLANS.iter().map(|(name, ..)| *name).collect();
            Error::invalid(format!(
                "plan \"{plan}\" does not exist; choose one of {}",
                names.join(", ")
            ))
        })
}

/// The service's settings, from its `[services.config]`.
struct Settings {
    /// `scheme://host:port` of the management API, without a slash at the end.
    management: String,
    prefix: String,
}

impl Settings {
    fn read() -> Result<Self> {
        let management = config::require("management")?;
        let management = management.trim_end_matches('/').to_owned();
        if !(management.starts_with("http://") || management.starts_with("https://")) {
            return Err(Error::failed(format!(
                "the service's management origin \"{management}\" is not an http:// or https:// URL; its operator must set [services.config] management to the broker's management API, as http://HOST:15672"
            )));
        }
        let prefix = config::get("prefix")?.unwrap_or_else(|| "tsuru".to_owned());
        if prefix.is_empty() || prefix.contains('/') {
            return Err(Error::failed(format!(
                "the service's prefix \"{prefix}\" cannot start a RabbitMQ name; its operator must set [services.config] prefix to a name without \"/\""
            )));
        }
        Ok(Self { management, prefix })
    }

    /// The vhost of `instance`.
    fn vhost(&self, instance: &str) -> Result<String> {
        Ok(format!(
            "{}/{}",
            self.prefix,
            checked("instance", instance)?
        ))
    }

    /// `GET`, `PUT`, `POST` or `DELETE` `/api/<path>` on the management API, with a
    /// JSON body for `PUT` and `POST`; the host adds the admin's credentials.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Response> {
        let mut request = Request::new(method.clone(), format!("{}/api/{path}", self.management));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send()?;
        match response.status() {
            200..=299 | 404 => Ok(response),
            401 | 403 => Err(Error::failed(format!(
                "the broker's management API refused the service's admin (status {}) on {method} /api/{path}; its operator must give [services.http.auth.\"{}\"] a user tagged administrator",
                response.status(),
                self.management
            ))),
            status => Err(Error::failed(format!(
                "the broker's management API answered {method} /api/{path} with status {status}{}; try again, and if it persists ask the service's operator to check the broker",
                reason(&response)
            ))),
        }
    }

    /// The vhost as the broker has it, or `None`.
    fn find_vhost(&self, vhost: &str) -> Result<Option<Vhost>> {
        let response = self.call(Method::GET, &format!("vhosts/{}", encode(vhost)), None)?;
        if response.status() == 404 {
            return Ok(None);
        }
        Ok(Some(response.json::<Vhost>()?))
    }

    /// The users of the instance whose vhost is `vhost`.
    fn users_of(&self, vhost: &str) -> Result<Vec<String>> {
        let response = self.call(Method::GET, "users", None)?;
        let users: Vec<Named> = response.json()?;
        let start = format!("{vhost}/");
        Ok(users
            .into_iter()
            .map(|user| user.name)
            .filter(|name| name.starts_with(&start))
            .collect())
    }

    /// Sets the vhost's limits to the plan's.
    fn set_limits(&self, vhost: &str, limits: &Limits) -> Result<()> {
        for (name, value) in [
            ("max-connections", limits.connections),
            ("max-queues", limits.queues),
        ] {
            self.call(
                Method::PUT,
                &format!("vhost-limits/{}/{name}", encode(vhost)),
                Some(json!({ "value": value })),
            )
            .and_then(|response| expect_found(&response, || format!("the vhost {vhost}")))?;
        }
        Ok(())
    }

    fn delete_user(&self, user: &str) -> Result<()> {
        // 404: already gone, which is what was asked.
        self.call(Method::DELETE, &format!("users/{}", encode(user)), None)?;
        Ok(())
    }
}

/// A vhost as the management API shows it.
#[derive(Deserialize)]
struct Vhost {
    #[serde(default)]
    description: Option<String>,
}

impl Vhost {
    fn belongs_to(&self, instance: &str) -> bool {
        self.description.as_deref() == Some(marker(instance).as_str())
    }
}

/// Anything of the management API with a name.
#[derive(Deserialize)]
struct Named {
    name: String,
}

/// What a vhost's description says, so a create knows its own.
fn marker(instance: &str) -> String {
    format!("orizuru: the vhost of tsuru instance {instance}")
}

/// A tsuru name, refused when it could make two names meet.
fn checked<'a>(what: &str, name: &'a str) -> Result<&'a str> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::invalid(format!(
            "the {what} name \"{name}\" is empty or has a \"/\", which this service keeps to separate names; choose a name of letters, digits, \"-\" and \"_\""
        )));
    }
    Ok(name)
}

/// `text` with every byte but RFC 3986's unreserved ones percent-encoded,
/// as an API path segment or a URL's user and vhost must be.
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The broker's `reason`, as `: reason`, when its answer has one.
fn reason(response: &Response) -> String {
    #[derive(Deserialize)]
    struct Failure {
        reason: Option<String>,
    }
    response
        .json::<Failure>()
        .ok()
        .and_then(|failure| failure.reason)
        .map(|reason| format!(": {reason}"))
        .unwrap_or_default()
}

/// Turns a 404 into a failure naming what was missing.
fn expect_found(response: &Response, what: impl FnOnce() -> String) -> Result<()> {
    if response.status() == 404 {
        return Err(Error::failed(format!(
            "{} is missing from the broker; remove the instance and create it again",
            what()
        )));
    }
    Ok(())
}

/// Adds what the plugin was doing to a failure's sentence.
fn doing(what: String) -> impl FnOnce(Error) -> Error {
    move |error| match error {
        Error::Failed(sentence) => Error::failed(format!("{what}: {sentence}")),
        other => other,
    }
}

/// Makes the vhost, marked as the instance's, and sets its limits; a
/// create tried again after one that stopped halfway finishes it.
fn provision(settings: &Settings, instance: &str, vhost: &str, limits: &Limits) -> Result<()> {
    settings.call(
        Method::PUT,
        &format!("vhosts/{}", encode(vhost)),
        Some(json!({ "description": marker(instance), "tags": "orizuru" })),
    )?;
    settings.set_limits(vhost, limits)
}

/// Deletes the instance's vhost (which closes its connections and drops its
/// queues and permissions) and every user of the instance, then checks that
/// none of them is left.
fn teardown(settings: &Settings, instance: &str, vhost: &str) -> Result<()> {
    let removed = (|| -> Result<()> {
        match settings.find_vhost(vhost)? {
            Some(found) if found.belongs_to(instance) => {
                settings.call(Method::DELETE, &format!("vhosts/{}", encode(vhost)), None)?;
            }
            // Not this instance's: create refused it, so nothing under its name is ours.
            Some(_) => return Ok(()),
            None => {}
        }
        let users = settings.users_of(vhost)?;
        // One request for them all, however many apps were bound. It fails
        // when one of them went meanwhile (an unbind), so what is left is
        // what decides.
        let deleted = if users.is_empty() {
            Ok(())
        } else {
            settings
                .call(
                    Method::POST,
                    "users/bulk-delete",
                    Some(json!({ "users": users })),
                )
                .map(drop)
        };
        let mut left = Vec::new();
        if settings.find_vhost(vhost)?.is_some() {
            left.push(format!("the vhost {vhost}"));
        }
        let users = settings.users_of(vhost)?;
        if !users.is_empty() {
            left.push(format!("the users {}", users.join(", ")));
        }
        if !left.is_empty() {
            let why = deleted
                .err()
                .map(|error| format!(" ({})", error.sentence()))
                .unwrap_or_default();
            return Err(Error::failed(format!(
                "these are still on the broker: {}{why}; remove the instance again",
                left.join(", ")
            )));
        }
        Ok(())
    })();
    removed.map_err(doing(format!(
        "cannot remove the vhost of instance \"{instance}\""
    )))
}

/// Where bound apps connect: `[services.config]` `host` and `port`.
fn address() -> Result<(String, String)> {
    let host = config::require("host")?;
    let port = config::get("port")?.unwrap_or_else(|| "5672".to_owned());
    Ok((host, port))
}

/// The vhost of a bound instance, checked to be there and the instance's.
fn bound_vhost(settings: &Settings, instance: &Instance) -> Result<String> {
    let vhost = settings.vhost(&instance.name)?;
    match settings.find_vhost(&vhost)? {
        Some(found) if found.belongs_to(&instance.name) => Ok(vhost),
        _ => Err(Error::failed(format!(
            "the vhost {vhost} of instance \"{}\" is missing from the broker; remove the instance and create it again",
            instance.name
        ))),
    }
}

impl Service for RabbitMq {
    fn plans(_context: Context) -> Result<Vec<Plan>> {
        Ok(PLANS
            .iter()
            .map(|(name, description, ..)| Plan::new(*name, *description))
            .collect())
    }

    fn create(request: CreateRequest) -> Result<Provisioned> {
        let instance = &request.instance.name;
        let limits = plan_limits(request.instance.plan.as_deref())?;
        let settings = Settings::read()?;
        let vhost = settings.vhost(instance)?;
        let creating = format!("cannot create the vhost of instance \"{instance}\"");
        let existing = settings
            .find_vhost(&vhost)
            .map_err(doing(creating.clone()))?;
        if let Some(existing) = &existing
            && !existing.belongs_to(instance)
        {
            return Err(Error::conflict(format!(
                "the vhost {vhost} of instance \"{instance}\" is taken on the broker by another vhost; choose another instance name"
            )));
        }
        if let Err(error) = provision(&settings, instance, &vhost, &limits).map_err(doing(creating))
        {
            // Leave nothing half-made behind; tsuru may try again from scratch.
            return match teardown(&settings, instance, &vhost) {
                Ok(()) => Err(error),
                Err(cleanup) => Err(Error::failed(format!(
                    "{}; removing what was made also failed: {}",
                    error.sentence(),
                    cleanup.sentence()
                ))),
            };
        }
        Ok(Provisioned::ready())
    }

    fn update(request: UpdateRequest) -> Result<Provisioned> {
        let limits = plan_limits(request.next.plan.as_deref())?;
        let settings = Settings::read()?;
        let vhost = bound_vhost(&settings, &request.current)?;
        settings.set_limits(&vhost, &limits).map_err(doing(format!(
            "cannot change the plan of instance \"{}\"",
            request.current.name
        )))?;
        Ok(Provisioned::ready())
    }

    fn remove(instance: Instance, _context: Context) -> Result<()> {
        let settings = Settings::read()?;
        let vhost = settings.vhost(&instance.name)?;
        teardown(&settings, &instance.name, &vhost)
    }

    fn status(instance: Instance, _context: Context) -> Result<Status> {
        let settings = Settings::read()?;
        Ok(match bound_vhost(&settings, &instance) {
            Ok(_) => Status::Up,
            Err(error) => Status::Down(error.sentence()),
        })
    }

    fn info(instance: Instance, _context: Context) -> Result<Vec<InfoItem>> {
        let settings = Settings::read()?;
        let vhost = bound_vhost(&settings, &instance)?;
        let limits = plan_limits(instance.plan.as_deref())?;
        let (host, port) = address()?;
        let users = settings.users_of(&vhost)?;
        Ok(vec![
            InfoItem::new("Plan", instance.plan.as_deref().unwrap_or(DEFAULT_PLAN)),
            InfoItem::new("Virtual host", &vhost),
            InfoItem::new("Address", format!("{host}:{port}")),
            InfoItem::new(
                "Limits",
                format!(
                    "{} connections, {} queues",
                    limits.connections, limits.queues
                ),
            ),
            InfoItem::new("Bound apps", users.len().to_string()),
        ])
    }

    fn bind_app(instance: Instance, app: AppBinding) -> Result<Env> {
        let settings = Settings::read()?;
        let (host, port) = address()?;
        let vhost = bound_vhost(&settings, &instance)?;
        let user = format!("{vhost}/{}", checked("app", &app.app_name)?);
        let password = orizuru_sdk::random::password();
        let binding = format!(
            "cannot bind app \"{}\" to instance \"{}\"",
            app.app_name, instance.name
        );
        let granted = (|| -> Result<()> {
            // No tags: the user may not use the management API at all. A
            // bind tried again gives the user a new password, which the app gets.
            settings.call(
                Method::PUT,
                &format!("users/{}", encode(&user)),
                Some(json!({ "password": password, "tags": "" })),
            )?;
            let response = settings.call(
                Method::PUT,
                &format!("permissions/{}/{}", encode(&vhost), encode(&user)),
                Some(json!({ "configure": ".*", "write": ".*", "read": ".*" })),
            )?;
            expect_found(&response, || format!("the vhost {vhost}"))
        })();
        if let Err(error) = granted.map_err(doing(binding)) {
            // The app is not bound: its half-made user must not log in.
            return match settings.delete_user(&user) {
                Ok(()) => Err(error),
                Err(cleanup) => Err(Error::failed(format!(
                    "{}; deleting its half-made user {user} also failed: {}",
                    error.sentence(),
                    cleanup.sentence()
                ))),
            };
        }
        let url_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Ok(Env::from([
            (
                "RABBITMQ_URL".to_owned(),
                format!(
                    "amqp://{}:{password}@{url_host}:{port}/{}",
                    encode(&user),
                    encode(&vhost)
                ),
            ),
            ("RABBITMQ_HOST".to_owned(), host),
            ("RABBITMQ_PORT".to_owned(), port),
            ("RABBITMQ_VHOST".to_owned(), vhost),
            ("RABBITMQ_USERNAME".to_owned(), user),
            ("RABBITMQ_PASSWORD".to_owned(), password),
        ]))
    }

    fn unbind_app(instance: Instance, app: AppBinding) -> Result<()> {
        let settings = Settings::read()?;
        let vhost = settings.vhost(&instance.name)?;
        let user = format!("{vhost}/{}", checked("app", &app.app_name)?);
        // Deleting a user closes its connections (RabbitMQ 3.7 and later).
        settings.delete_user(&user).map_err(doing(format!(
            "cannot unbind app \"{}\" from instance \"{}\"",
            app.app_name, instance.name
        )))
    }
}

orizuru_sdk::export!(RabbitMq);
