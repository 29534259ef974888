//! What the admin API shows of services and of what an operation did, as
//! typed views. Their JSON is what the admin API has always answered: the
//! fields of each view are declared in the order of their names, as the
//! answers built as JSON maps gave them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::fleet::FleetHostView;
use super::operations::Added;
use super::store::{FailedLoad, KeptVersion};
use super::{DeployError, Deployed, Deployer, State};
use crate::ledger::{PluginEventRecord, timestamp};
use crate::service::{ActiveVersion, Source};

/// One service, as `GET /admin/services` lists it; `GET
/// /admin/services/{id}` adds its newest plugin events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    pub active: Option<ActiveView>,
    /// `config-file` or `admin-api`.
    pub defined_in: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
    /// On a shared store: every host seen in the last ten minutes, the
    /// version it serves and when it was last seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<Vec<FleetHostView>>,
    pub id: String,
    pub last_failure: Option<FailedLoad>,
    pub max_concurrent_calls: Option<u32>,
    pub memory_mb: Option<u64>,
    pub plugin_file: Option<PathBuf>,
    /// The kept versions but the active one, newest first.
    pub previous: Vec<KeptView>,
    pub serving: bool,
    pub timeout_ms: Option<u64>,
    pub username: Option<String>,
}

/// The version serving a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveView {
    /// `cache` or `compiled`.
    pub from: &'static str,
    pub load_ms: u64,
    pub loaded_at: String,
    pub sha256: String,
    pub size: usize,
    pub source: Source,
    pub wit: String,
}

impl From<&ActiveVersion> for ActiveView {
    fn from(active: &ActiveVersion) -> Self {
        ActiveView {
            from: active.compiled_from.as_str(),
            load_ms: active.took.as_millis() as u64,
            loaded_at: timestamp(active.loaded_at),
            sha256: active.version.sha256.clone(),
            size: active.version.size,
            source: active.source,
            wit: active.version.wit.clone(),
        }
    }
}

/// A version kept for rollback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptView {
    pub added_at: String,
    pub sha256: String,
    pub size: usize,
    pub source: Source,
    pub wit: String,
}

impl From<&KeptVersion> for KeptView {
    fn from(kept: &KeptVersion) -> Self {
        KeptView {
            added_at: kept.added_at.clone(),
            sha256: kept.version.sha256.clone(),
            size: kept.version.size,
            source: kept.source,
            wit: kept.version.wit.clone(),
        }
    }
}

/// A plugin event of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub at: String,
    pub detail: String,
    pub kind: String,
    pub previous: Option<String>,
    pub sha256: Option<String>,
    pub source: String,
}

impl From<PluginEventRecord> for EventView {
    fn from(record: PluginEventRecord) -> Self {
        EventView {
            at: record.at,
            detail: record.event.detail,
            kind: record.event.kind,
            previous: record.event.previous,
            sha256: record.event.sha256,
            source: record.event.source,
        }
    }
}

/// What an upload or a rollback did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployedView {
    pub from: &'static str,
    pub load_ms: u64,
    pub previous: Option<String>,
    pub service: String,
    pub sha256: String,
    pub size: usize,
    pub took_ms: u64,
    pub unchanged: bool,
    pub wit: String,
}

impl From<&Deployed> for DeployedView {
    fn from(deployed: &Deployed) -> Self {
        DeployedView {
            from: deployed.active.compiled_from.as_str(),
            load_ms: deployed.active.took.as_millis() as u64,
            previous: deployed.previous.clone(),
            service: deployed.service.clone(),
            sha256: deployed.active.version.sha256.clone(),
            size: deployed.active.version.size,
            took_ms: deployed.took.as_millis() as u64,
            unchanged: deployed.unchanged,
            wit: deployed.active.version.wit.clone(),
        }
    }
}

/// What adding a service did: the upload's fields, and how tsuru reaches it.
/// Its fields repeat [`DeployedView`]'s rather than flatten it, so that all
/// are in name order, as the admin API has always given them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddedView {
    /// `/services/{id}`.
    pub endpoint: String,
    pub from: &'static str,
    pub load_ms: u64,
    /// The password tsuru must use; shown this once.
    pub password: String,
    pub previous: Option<String>,
    pub service: String,
    pub sha256: String,
    pub size: usize,
    pub took_ms: u64,
    pub unchanged: bool,
    pub username: String,
    pub wit: String,
}

impl From<&Added> for AddedView {
    fn from(added: &Added) -> Self {
        let DeployedView {
            from,
            load_ms,
            previous,
            service,
            sha256,
            size,
            took_ms,
            unchanged,
            wit,
        } = DeployedView::from(&added.deployed);
        AddedView {
            endpoint: format!("/services/{service}"),
            from,
            load_ms,
            password: added.password.expose().to_owned(),
            previous,
            service,
            sha256,
            size,
            took_ms,
            unchanged,
            username: added.username.clone(),
            wit,
        }
    }
}

/// What removing a service did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedView {
    pub removed: String,
}

impl Deployer {
    /// What `GET /admin/services` shows of every service.
    pub async fn describe_all(&self) -> Result<Vec<ServiceView>, DeployError> {
        let state = self.view.load_full();
        let ids: BTreeSet<String> = self
            .registry
            .all()
            .iter()
            .map(|service| service.id().to_owned())
            .chain(state.expected().into_iter().cloned())
            .collect();
        let mut fleet = self.fleet_or_none().await?;
        Ok(ids
            .iter()
            .map(|id| {
                let mut described = self.describe(&state, id);
                described.fleet = fleet
                    .as_mut()
                    .map(|fleet| fleet.remove(id).unwrap_or_default());
                described
            })
            .collect())
    }

    /// The fleet view by service, on a shared store.
    async fn fleet_or_none(
        &self,
    ) -> Result<Option<std::collections::BTreeMap<String, Vec<FleetHostView>>>, DeployError> {
        self.fleet_view()
            .await
            .transpose()
            .map_err(DeployError::Store)
    }

    /// One service, with its newest plugin events.
    pub async fn describe_one(&self, id: &str) -> Result<ServiceView, DeployError> {
        let state = self.view.load_full();
        if !state.knows(id) {
            self.served(id)?;
        }
        let mut described = self.describe(&state, id);
        described.fleet = self
            .fleet_or_none()
            .await?
            .map(|mut fleet| fleet.remove(id).unwrap_or_default());
        let events = self
            .deployments
            .plugin_events(id, 50)
            .await
            .map_err(|source| DeployError::Events {
                service: id.to_owned(),
                source,
            })?;
        described.events = Some(events.into_iter().map(EventView::from).collect());
        Ok(described)
    }

    fn describe(&self, state: &State, id: &str) -> ServiceView {
        let served = self.registry.by_id(id);
        let record = state.records.get(id).cloned().unwrap_or_default();
        let active = served
            .as_ref()
            .and_then(|service| service.version())
            .map(|active| ActiveView::from(&active));
        let active_sha = active.as_ref().map(|active| active.sha256.as_str());
        let previous = record
            .versions
            .iter()
            .filter(|kept| Some(kept.version.sha256.as_str()) != active_sha)
            .map(KeptView::from)
            .collect();
        let config = served
            .as_ref()
            .map(|service| service.config().clone())
            .or_else(|| state.file_services.get(id).cloned())
            .or_else(|| state.unserved.get(id).cloned())
            .or_else(|| record.added.as_ref().map(|added| added.config(id)));
        ServiceView {
            defined_in: if state.in_config_file(id) {
                "config-file"
            } else {
                "admin-api"
            },
            events: None,
            fleet: None,
            id: id.to_owned(),
            last_failure: record.last_failure,
            max_concurrent_calls: config.as_ref().map(|config| config.max_concurrent_calls),
            memory_mb: config
                .as_ref()
                .map(|config| config.memory_bytes / (1024 * 1024)),
            plugin_file: config.as_ref().and_then(|config| config.plugin.clone()),
            previous,
            serving: served.is_some(),
            timeout_ms: config
                .as_ref()
                .map(|config| config.timeout.as_millis() as u64),
            username: config.map(|config| config.username),
            active,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::config::Secret;
    use crate::runtime::{CompiledFrom, PluginVersion};

    fn deployed() -> Deployed {
        Deployed {
            service: "pg".into(),
            active: ActiveVersion {
                version: PluginVersion {
                    sha256: "ab".into(),
                    size: 12,
                    wit: "0.1.0".into(),
                },
                compiled_from: CompiledFrom::Cache,
                took: Duration::from_millis(7),
                loaded_at: jiff::Timestamp::UNIX_EPOCH,
                source: Source::Upload,
            },
            previous: None,
            unchanged: false,
            took: Duration::from_millis(9),
        }
    }

    /// The answers as the admin API built them as JSON maps, byte for byte.
    #[test]
    fn views_serialise_as_the_answers_always_did() {
        let deployed = deployed();
        let old = json!({
            "service": "pg",
            "sha256": "ab",
            "previous": null,
            "unchanged": false,
            "size": 12,
            "wit": "0.1.0",
            "from": "cache",
            "load_ms": 7,
            "took_ms": 9,
        });
        let view = serde_json::to_string(&DeployedView::from(&deployed)).expect("json");
        assert_eq!(view, old.to_string());

        let added = Added {
            deployed,
            username: "pg".into(),
            password: Secret::new("secret"),
        };
        let mut old = old;
        old["username"] = "pg".into();
        old["password"] = "secret".into();
        old["endpoint"] = "/services/pg".into();
        let view = serde_json::to_string(&AddedView::from(&added)).expect("json");
        assert_eq!(view, old.to_string());

        let active = ActiveView::from(&added.deployed.active);
        let old_active = json!({
            "sha256": "ab",
            "size": 12,
            "wit": "0.1.0",
            "loaded_at": "1970-01-01T00:00:00.000Z",
            "from": "cache",
            "load_ms": 7,
            "source": "upload",
        });
        let kept = KeptView {
            added_at: "t".into(),
            sha256: "cd".into(),
            size: 3,
            source: Source::Rollback,
            wit: "0.1.0".into(),
        };
        let failure = FailedLoad {
            at: "t".into(),
            reason: "it broke".into(),
            sha256: None,
            source: Source::FileChange,
        };
        let mut service = ServiceView {
            active: Some(active),
            defined_in: "admin-api",
            events: None,
            fleet: None,
            id: "pg".into(),
            last_failure: Some(failure.clone()),
            max_concurrent_calls: Some(4),
            memory_mb: Some(64),
            plugin_file: None,
            previous: vec![kept],
            serving: true,
            timeout_ms: Some(900),
            username: Some("pg".into()),
        };
        let mut old_service = json!({
            "id": "pg",
            "defined_in": "admin-api",
            "username": "pg",
            "plugin_file": null,
            "timeout_ms": 900,
            "memory_mb": 64,
            "max_concurrent_calls": 4,
            "serving": true,
            "active": old_active,
            "previous": [{
                "sha256": "cd",
                "size": 3,
                "wit": "0.1.0",
                "added_at": "t",
                "source": "rollback",
            }],
            "last_failure": serde_json::to_value(&failure).expect("json"),
        });
        assert_eq!(
            serde_json::to_string(&service).expect("json"),
            old_service.to_string()
        );

        service.events = Some(vec![EventView {
            at: "t".into(),
            detail: "d".into(),
            kind: "swap".into(),
            previous: Some("ab".into()),
            sha256: Some("cd".into()),
            source: "upload".into(),
        }]);
        old_service["events"] = json!([{
            "at": "t",
            "kind": "swap",
            "sha256": "cd",
            "previous": "ab",
            "source": "upload",
            "detail": "d",
        }]);
        assert_eq!(
            serde_json::to_string(&service).expect("json"),
            old_service.to_string()
        );
    }
}
