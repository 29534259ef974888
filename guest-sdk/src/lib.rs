//! Write a tsuru service API as an Orizuru plugin.
//!
//! Orizuru serves tsuru's service API over HTTP, keeps the instance ledger
//! (so duplicate creates, unknown instances and retried events are answered
//! without your code) and calls your plugin once per tsuru action, each time
//! in a fresh sandbox. A plugin implements [`Service`], overriding the actions
//! it offers, and hands its type to [`export!`]:
//!
//! ```no_run
//! use orizuru_sdk::{AppBinding, Env, Instance, Result, Service};
//!
//! struct Fake;
//!
//! impl Service for Fake {
//!     fn bind_app(_instance: Instance, _app: AppBinding) -> Result<Env> {
//!         Ok(Env::from([("SOMEVAR".into(), "somevalue".into())]))
//!     }
//! }
//!
//! orizuru_sdk::export!(Fake);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` and point a
//! `[[services]]` entry of the host's config at the `.wasm` file.
//!
//! Every error you return becomes the body tsuru shows its user word for
//! word, so write it as one sentence that names the thing and what to do.
//!
//! The parameters a user gives (`tsuru service instance add ... -p
//! size_mb=128`) are read into your own struct by
//! [`Instance::parameters_as`]: tsuru sends every value as text, and a field
//! declared as a number or a bool reads it.
//!
//! ```no_run
//! # use orizuru_sdk::{CreateRequest, Provisioned, Result};
//! #[derive(serde::Deserialize)]
//! struct Parameters {
//!     size_mb: Option<u64>,
//!     durable: Option<bool>,
//! }
//!
//! fn create(request: CreateRequest) -> Result<Provisioned> {
//!     // `-p size_mb=lots` is answered 400: parameter "size_mb" of
//!     // instance "c1" must be a whole number, not "lots".
//!     let parameters: Parameters = request.instance.parameters_as()?;
//!     let size_mb = parameters.size_mb.unwrap_or(64);
//!     # let _ = (size_mb, parameters.durable);
//!     Ok(Provisioned::ready())
//! }
//! ```

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod __private {
    //! What [`export!`](crate::export) expands to. Not part of the API.
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit/since_v0.1.0",
            world: "plugin-with-capabilities",
            generate_all,
            pub_export_macro: true,
            export_macro_name: "__export_plugin",
            default_bindings_module: "orizuru_sdk::__private::bindings",
        });
    }
    pub use bindings::exports::orizuru::service::handler::Guest;
    pub use bindings::orizuru::service::types as wit;

    /// Turns the author's map of env vars into the WIT list.
    pub fn env(env: crate::Result<crate::Env>) -> crate::Result<wit::Env> {
        env.map(|vars| vars.into_iter().collect())
    }
}

pub mod config;
pub mod http;
pub mod kv;
pub mod log;
mod parameters;
pub mod random;
pub mod redis;
pub mod sql;

pub use __private::wit::{
    AppBinding, Context, CreateRequest, Error, InfoItem, Instance, JobBinding, Plan, Provisioned,
    ProxyRequest, ProxyResponse, UpdateRequest,
};

/// What `tsuru service instance status` shows (`instance-status` in the WIT).
pub use __private::wit::InstanceStatus as Status;

/// The result of every action.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Environment variables handed to a bound app or job, by name.
pub type Env = BTreeMap<String, String>;

/// A tsuru service. Every action has a default, so a plugin writes only the
/// ones its service offers:
///
/// - `plans`: no plans; `info`: nothing to add; `status`: up;
/// - `create`: ready, with nothing to remember (a service with nothing to
///   provision); `remove`, `unbind_app`, `unbind_job`: nothing to undo;
/// - `update`, `bind_app`, `bind_job`, `proxy`: [`Error::Unsupported`], which
///   the host answers as tsuru expects ("this service does not support ...").
pub trait Service {
    /// The plans offered, for `tsuru service info` and `service-instance-add -p`.
    fn plans(context: Context) -> Result<Vec<Plan>> {
        let _ = context;
        Ok(Vec::new())
    }

    /// Provision a new instance. The host has already checked that the name
    /// is free; answer [`Provisioned::pending`] when provisioning finishes
    /// later and `status` will report when it is up.
    fn create(request: CreateRequest) -> Result<Provisioned> {
        let _ = request;
        Ok(Provisioned::ready())
    }

    /// Change an instance's plan, description, tags or parameters.
    fn update(request: UpdateRequest) -> Result<Provisioned> {
        let _ = request;
        Err(Error::Unsupported)
    }

    /// Tear an instance down. Also called for an instance whose creation did
    /// not finish, so take half-made things in your stride.
    fn remove(instance: Instance, context: Context) -> Result<()> {
        let _ = (instance, context);
        Ok(())
    }

    /// Extra lines for `tsuru service instance info`.
    fn info(instance: Instance, context: Context) -> Result<Vec<InfoItem>> {
        let _ = (instance, context);
        Ok(Vec::new())
    }

    /// The instance's health, for `tsuru service instance status`.
    fn status(instance: Instance, context: Context) -> Result<Status> {
        let _ = (instance, context);
        Ok(Status::Up)
    }

    /// Bind an app: answer the env vars it gets.
    fn bind_app(instance: Instance, app: AppBinding) -> Result<Env> {
        let _ = (instance, app);
        Err(Error::Unsupported)
    }

    /// Undo [`Service::bind_app`]. Also called after a bind that failed half-way.
    fn unbind_app(instance: Instance, app: AppBinding) -> Result<()> {
        let _ = (instance, app);
        Ok(())
    }

    /// Bind a job: answer the env vars it gets.
    fn bind_job(instance: Instance, job: JobBinding) -> Result<Env> {
        let _ = (instance, job);
        Err(Error::Unsupported)
    }

    /// Undo [`Service::bind_job`].
    fn unbind_job(instance: Instance, job: JobBinding) -> Result<()> {
        let _ = (instance, job);
        Ok(())
    }

    /// A request tsuru forwards as it came (`tsuru service instance proxy`);
    /// `instance` is `None` for a service-level call.
    fn proxy(instance: Option<Instance>, request: ProxyRequest) -> Result<ProxyResponse> {
        let _ = (instance, request);
        Err(Error::Unsupported)
    }
}

/// Exports a [`Service`] as the plugin's implementation of the Orizuru
/// contract. Use it once, in the plugin's crate root.
#[macro_export]
macro_rules! export {
    ($service:ty) => {
        const _: () = {
            use $crate::__private::wit;

            struct OrizuruExport;

            impl $crate::__private::Guest for OrizuruExport {
                fn plans(ctx: wit::Context) -> Result<Vec<wit::Plan>, wit::Error> {
                    <$service as $crate::Service>::plans(ctx)
                }
                fn create(req: wit::CreateRequest) -> Result<wit::Provisioned, wit::Error> {
                    <$service as $crate::Service>::create(req)
                }
                fn update(req: wit::UpdateRequest) -> Result<wit::Provisioned, wit::Error> {
                    <$service as $crate::Service>::update(req)
                }
                fn remove(inst: wit::Instance, ctx: wit::Context) -> Result<(), wit::Error> {
                    <$service as $crate::Service>::remove(inst, ctx)
                }
                fn info(
                    inst: wit::Instance,
                    ctx: wit::Context,
                ) -> Result<Vec<wit::InfoItem>, wit::Error> {
                    <$service as $crate::Service>::info(inst, ctx)
                }
                fn status(
                    inst: wit::Instance,
                    ctx: wit::Context,
                ) -> Result<wit::InstanceStatus, wit::Error> {
                    <$service as $crate::Service>::status(inst, ctx)
                }
                fn bind_app(
                    inst: wit::Instance,
                    app: wit::AppBinding,
                ) -> Result<wit::Env, wit::Error> {
                    $crate::__private::env(<$service as $crate::Service>::bind_app(inst, app))
                }
                fn unbind_app(inst: wit::Instance, app: wit::AppBinding) -> Result<(), wit::Error> {
                    <$service as $crate::Service>::unbind_app(inst, app)
                }
                fn bind_job(
                    inst: wit::Instance,
                    job: wit::JobBinding,
                ) -> Result<wit::Env, wit::Error> {
                    $crate::__private::env(<$service as $crate::Service>::bind_job(inst, job))
                }
                fn unbind_job(inst: wit::Instance, job: wit::JobBinding) -> Result<(), wit::Error> {
                    <$service as $crate::Service>::unbind_job(inst, job)
                }
                fn proxy(
                    inst: Option<wit::Instance>,
                    req: wit::ProxyRequest,
                ) -> Result<wit::ProxyResponse, wit::Error> {
                    <$service as $crate::Service>::proxy(inst, req)
                }
            }

            $crate::__private::bindings::__export_plugin!(
                OrizuruExport with_types_in $crate::__private::bindings
            );
        };
    };
}

impl Error {
    /// The request is wrong (400).
    pub fn invalid(sentence: impl Into<String>) -> Self {
        Self::Invalid(sentence.into())
    }
    /// Something the request names does not exist (404).
    pub fn not_found(sentence: impl Into<String>) -> Self {
        Self::NotFound(sentence.into())
    }
    /// The request clashes with something that exists (409).
    pub fn conflict(sentence: impl Into<String>) -> Self {
        Self::Conflict(sentence.into())
    }
    /// The instance is still being provisioned (412).
    pub fn not_ready(sentence: impl Into<String>) -> Self {
        Self::NotReady(sentence.into())
    }
    /// The service could not do it (500).
    pub fn failed(sentence: impl Into<String>) -> Self {
        Self::Failed(sentence.into())
    }

    /// What the error says, whatever its kind: the sentence it carries, or
    /// one for the two kinds that carry none. For joining errors into one
    /// (a failure, then what its undoing ran into) or into a status note.
    pub fn sentence(&self) -> String {
        match self {
            Self::Invalid(sentence)
            | Self::NotFound(sentence)
            | Self::Conflict(sentence)
            | Self::NotReady(sentence)
            | Self::Failed(sentence) => sentence.clone(),
            Self::Unsupported => "the action is not supported".to_owned(),
            Self::MissingParams(names) => format!("parameters {} are missing", names.join(", ")),
        }
    }
}

impl Plan {
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
        }
    }
}

impl InfoItem {
    pub fn new(label: impl Into<String>, value: impl ToString) -> Self {
        Self {
            label: label.into(),
            value: value.to_string(),
        }
    }
}

impl Provisioned {
    /// Done, keeping the instance's data as it was.
    pub fn ready() -> Self {
        Self::Ready(None)
    }

    /// Still provisioning: binds answer "not ready" until `status` says up.
    pub fn pending() -> Self {
        Self::Pending(None)
    }

    /// Remember `data` with the instance; every later call receives it in
    /// [`Instance::data`] (read it back with [`Instance::data_as`]).
    pub fn with_data(self, data: &impl Serialize) -> Result<Self> {
        let text = serde_json::to_string(data).map_err(|err| {
            Error::failed(format!(
                "the plugin's instance data could not be encoded: {err}"
            ))
        })?;
        Ok(match self {
            Self::Ready(_) => Self::Ready(Some(text)),
            Self::Pending(_) => Self::Pending(Some(text)),
        })
    }
}

impl Instance {
    /// The instance's parameters (`tsuru service instance add -p ...`)
    /// read into the author's own type, usually a struct deriving
    /// `Deserialize`: its fields are the parameters the service takes.
    ///
    /// tsuru's CLI sends every value as text, so a field declared as a
    /// number or a bool also reads the text of one (`"128"`, `"1.5"`,
    /// `"true"`); `Option` fields may be left out. A value that does not fit,
    /// a parameter the struct does not declare, or one it requires that is
    /// missing is the user's mistake, answered as [`Error::Invalid`] with a
    /// sentence naming the parameter:
    /// `parameter "size_mb" of instance "c1" must be a whole number, not "lots"`.
    /// Read into a `BTreeMap<String, serde_json::Value>` to take any.
    pub fn parameters_as<T: DeserializeOwned>(&self) -> Result<T> {
        parameters::decode(&self.parameters, &format!("instance \"{}\"", self.name))
    }

    /// The data the plugin returned with [`Provisioned::with_data`], decoded;
    /// `None` when it returned none.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.data
            .as_deref()
            .map(|text| {
                serde_json::from_str(text).map_err(|err| {
                    Error::failed(format!(
                        "the data stored for instance \"{}\" could not be read: {err}",
                        self.name
                    ))
                })
            })
            .transpose()
    }
}

impl AppBinding {
    /// The binding's parameters (`tsuru service instance bind -p ...`),
    /// read as [`Instance::parameters_as`] reads an instance's.
    pub fn parameters_as<T: DeserializeOwned>(&self) -> Result<T> {
        parameters::decode(
            &self.parameters,
            &format!("the binding of app \"{}\"", self.app_name),
        )
    }
}

impl ProxyResponse {
    /// A response with a status, no headers, and `body`.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl ProxyRequest {
    /// Every value of a query parameter, in order.
    pub fn query_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}
