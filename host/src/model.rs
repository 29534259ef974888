//! The host's own words for what tsuru asks and plugins answer.
//!
//! The HTTP contract decodes into these, the ledger stores them and the
//! runtime converts them to and from the WIT version a plugin speaks, so a
//! new WIT version touches only the runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who asked, as tsuru said it in the request's headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub user: Option<String>,
    pub event_id: Option<String>,
    pub request_id: Option<String>,
    pub pool_name: Option<String>,
    pub pool_provisioner: Option<String>,
    pub cluster_name: Option<String>,
    pub cluster_provisioner: Option<String>,
    pub cluster_addresses: Vec<String>,
    pub cluster_kube_config: Option<String>,
}

/// An instance as the ledger keeps it and hands it to the plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub name: String,
    pub plan: Option<String>,
    pub team: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// Always a JSON object.
    pub parameters: Map<String, Value>,
    /// The plugin's own value; the host stores it and never reads it.
    pub data: Option<String>,
}

/// How far an instance's provisioning got, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// The name is taken and the plugin's create is running (or was cut
    /// short by a crash of the host).
    Creating,
    /// The plugin answered pending; `status` will tell when it is up.
    Pending,
    Ready,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Creating => "creating",
            InstanceState::Pending => "pending",
            InstanceState::Ready => "ready",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "creating" => Some(InstanceState::Creating),
            "pending" => Some(InstanceState::Pending),
            "ready" => Some(InstanceState::Ready),
            _ => None,
        }
    }
}

/// An app tsuru binds or unbinds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppBinding {
    pub app_name: String,
    pub app_hosts: Vec<String>,
    pub app_internal_hosts: Vec<String>,
    pub app_pool_name: Option<String>,
    pub app_pool_provisioner: Option<String>,
    pub app_cluster_name: Option<String>,
    pub app_cluster_provisioner: Option<String>,
    pub app_cluster_addresses: Vec<String>,
    pub parameters: Map<String, Value>,
}

/// A job tsuru binds or unbinds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobBinding {
    pub job_name: String,
    pub job_pool_name: Option<String>,
    pub job_cluster_name: Option<String>,
}

/// What a create or update achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    /// Done; `Some` replaces the instance's data.
    Ready(Option<String>),
    /// Still provisioning; `Some` replaces the instance's data.
    Pending(Option<String>),
}

/// An instance's health as its plugin reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Up,
    Pending(String),
    Down(String),
    Custom(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoItem {
    pub label: String,
    pub value: String,
}

/// Env vars for a bound app or job, by name.
pub type Env = BTreeMap<String, String>;

/// A call tsuru forwards as it came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxyResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a plugin refused a call: its own answer, not a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Invalid(String),
    NotFound(String),
    Conflict(String),
    NotReady(String),
    Failed(String),
    Unsupported,
    MissingParams(Vec<String>),
}

/// The tsuru actions, as the ledger's events and the logs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Plans,
    Info,
    Status,
    Proxy,
    Create,
    Update,
    Remove,
    BindApp,
    UnbindApp,
    BindJob,
    UnbindJob,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Plans => "plans",
            Action::Info => "info",
            Action::Status => "status",
            Action::Proxy => "proxy",
            Action::Create => "create",
            Action::Update => "update",
            Action::Remove => "remove",
            Action::BindApp => "bind-app",
            Action::UnbindApp => "unbind-app",
            Action::BindJob => "bind-job",
            Action::UnbindJob => "unbind-job",
        }
    }
}
