//! Applying a changed config file or plugin file while the host runs:
//! services added, removed or with new settings, plugin files with new
//! contents. What changed is worked out by the pure functions at the end,
//! which the tests drive without wasm.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::store;
use super::{DeployError, Deployer, State};
use crate::config::{Config, ServiceConfig};
use crate::ledger::PluginEvent;
use crate::service::{Active, Service, Source};

impl Deployer {
    /// Reads the config file and the plugin files it names again, and
    /// applies what changed. Nothing changes for a config file that cannot
    /// be used; the reason is logged.
    pub async fn reload(&self) {
        let _fleet = match self.exclusive().await {
            Ok(lock) => lock,
            Err(err) => {
                tracing::error!(
                    "the changed files are not applied: {err}; the next change tries again"
                );
                return;
            }
        };
        let mut state = self.lock().await;
        let services = match &self.config_source {
            Some(source) => match Config::load(&source.path, &source.overrides, |name| {
                std::env::var(name).ok()
            }) {
                Ok(config) => config.services,
                Err(err) => {
                    tracing::error!(
                        "the config file cannot be used; its services stay as they were: {err}"
                    );
                    // Plugin files may still have changed.
                    state.file_services.values().cloned().collect()
                }
            },
            None => state.file_services.values().cloned().collect(),
        };
        let next: BTreeMap<String, ServiceConfig> = services
            .into_iter()
            .map(|service| (service.id.clone(), service))
            .collect();
        state.unserved.retain(|id, _| next.contains_key(id));
        for id in removed(&state.file_services, &next) {
            state.file_services.remove(&id);
            self.registry.remove(&id);
            let event = PluginEvent {
                kind: "removed".into(),
                sha256: None,
                previous: None,
                source: Source::FileChange.as_str().into(),
                detail: format!("service \"{id}\" is no longer in the config file"),
            };
            if let Some(record) = state.records.get(&id).cloned()
                && let Err(err) = self.save(&id, &record, Some(event)).await
            {
                tracing::error!(service = %id, "{err}");
            }
            tracing::info!(service = %id, "service removed from the config file: no longer served");
        }
        for (id, service) in next {
            if state
                .records
                .get(&id)
                .is_some_and(|record| record.added.is_some())
                && !state.file_services.contains_key(&id)
            {
                tracing::error!(
                    service = %id,
                    "the config file adds a service that was added through the admin API; remove one of them (DELETE /admin/services/{id}, or the config entry)"
                );
                continue;
            }
            if let Some(other) = self.registry.by_username(&service.username)
                && other.id() != id
            {
                tracing::error!(
                    service = %id,
                    "username \"{}\" is taken by service \"{}\"; the config entry is not applied",
                    service.username,
                    other.id()
                );
                continue;
            }
            match self.apply_file_service(&mut state, &service).await {
                Ok(()) => {
                    state.unserved.remove(&id);
                }
                Err(err) => {
                    if self.registry.by_id(&id).is_none() {
                        state.unserved.insert(id.clone(), service.clone());
                    }
                    tracing::error!(service = %id, "the config file's change is not applied: {err}");
                }
            }
        }
    }

    /// Serves a config service as the file now says.
    async fn apply_file_service(
        &self,
        state: &mut State,
        service: &ServiceConfig,
    ) -> Result<(), DeployError> {
        let id = service.id.clone();
        let path = service
            .plugin
            .clone()
            .ok_or_else(|| DeployError::NoPluginFile(id.clone()))?;
        let served = self.registry.by_id(&id);
        let file = store::read_plugin_file(&path);
        let file_changed = match &file {
            Ok((sha, _)) => Some(
                !state
                    .records
                    .get(&id)
                    .is_some_and(|record| record.seen_file(sha, self.shared.is_some())),
            ),
            // A file being replaced can be missing for a moment; a later event retries.
            Err(err) => {
                tracing::warn!(service = %id, "{err:#}; the current version keeps serving");
                None
            }
        };
        let settings_changed = state.file_services.get(&id) != Some(service);
        match (
            change(served.is_some(), file_changed, settings_changed),
            served,
            file,
        ) {
            (Change::Nothing, ..) => return Ok(()),
            (Change::Settings, Some(served), _) => {
                self.apply_settings(state, service, &served).await?;
            }
            (Change::Plugin, _, Ok((sha, bytes))) => {
                // A new file, a new service, or both with new settings: the
                // file's plugin under the settings the file gives now.
                let label = path.display().to_string();
                let result = self
                    .deploy_bytes(state, service, bytes, &label, Source::FileChange)
                    .await;
                // Seen, whether it passed or not: the same bytes are not tried again.
                let record = state.records.entry(id.clone()).or_default();
                record.saw_file(&sha);
                let record = record.clone();
                self.save(&id, &record, None).await?;
                result?;
            }
            (_, _, Err(err)) => return Err(DeployError::Unusable(err)),
            // `change` answers Settings only for a served service, and
            // Unreadable only for a file that was not read.
            (Change::Settings, None, _) | (Change::Unreadable, _, Ok(_)) => return Ok(()),
        }
        state.file_services.insert(id, service.clone());
        Ok(())
    }

    /// Same plugin, new settings: the same component serves under them.
    async fn apply_settings(
        &self,
        state: &mut State,
        service: &ServiceConfig,
        served: &Service,
    ) -> Result<(), DeployError> {
        let id = &service.id;
        self.runtime
            .check_limits(service)
            .map_err(|err| DeployError::Unusable(err.into()))?;
        let active = served.active();
        let plugin = active
            .plugin
            .with_limits(service)
            .map_err(DeployError::Unusable)?
            .unwrap_or_else(|| active.plugin.clone());
        self.registry.put(Arc::new(Service::serving(
            service.clone(),
            Active {
                plugin,
                version: active.version.clone(),
            },
            self.steward.clone(),
        )));
        let event = PluginEvent {
            kind: "settings".into(),
            sha256: active
                .version
                .as_ref()
                .map(|active| active.version.sha256.clone()),
            previous: None,
            source: Source::FileChange.as_str().into(),
            detail: format!("service \"{id}\" serves under the config file's new settings"),
        };
        let record = state.records.get(id).cloned().unwrap_or_default();
        self.save(id, &record, Some(event)).await?;
        tracing::info!(service = %id, "service settings changed in the config file");
        Ok(())
    }
}

/// The services of the config file as last applied that the file no longer has.
fn removed(
    current: &BTreeMap<String, ServiceConfig>,
    next: &BTreeMap<String, ServiceConfig>,
) -> Vec<String> {
    current
        .keys()
        .filter(|id| !next.contains_key(*id))
        .cloned()
        .collect()
}

/// What a config service needs after a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// It serves as the file says.
    Nothing,
    /// It serves its plugin, under settings the file changed.
    Settings,
    /// Its plugin file is new, or it does not serve yet: the file's plugin.
    Plugin,
    /// It does not serve, and its plugin file cannot be read.
    Unreadable,
}

/// `file_changed` is whether the plugin file differs from the one last
/// loaded, `None` when it cannot be read (a served service then keeps its
/// version: a file being replaced can be missing for a moment).
fn change(served: bool, file_changed: Option<bool>, settings_changed: bool) -> Change {
    match (served, file_changed) {
        (true, Some(false) | None) if settings_changed => Change::Settings,
        (true, Some(false) | None) => Change::Nothing,
        (_, Some(_)) => Change::Plugin,
        (false, None) => Change::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AnswerLimits, Grants, PasswordSource, Secret};
    use std::time::Duration;

    fn service(id: &str) -> ServiceConfig {
        ServiceConfig {
            id: id.into(),
            plugin: Some(format!("{id}.wasm").into()),
            username: id.into(),
            password: Secret::new("p"),
            password_sha256: None,
            password_source: PasswordSource::ConfigFile,
            timeout: Duration::from_secs(1),
            memory_bytes: 1 << 20,
            max_concurrent_calls: 1,
            answers: AnswerLimits::default(),
            reuse: None,
            grants: Grants::default(),
        }
    }

    fn services(ids: &[&str]) -> BTreeMap<String, ServiceConfig> {
        ids.iter().map(|id| (id.to_string(), service(id))).collect()
    }

    #[test]
    fn services_gone_from_the_file_are_removed() {
        assert_eq!(
            removed(&services(&["a", "b", "c"]), &services(&["b", "d"])),
            ["a", "c"]
        );
        assert!(removed(&services(&[]), &services(&["a"])).is_empty());
    }

    #[test]
    fn a_served_service_changes_only_for_a_new_file_or_new_settings() {
        assert_eq!(change(true, Some(false), false), Change::Nothing);
        assert_eq!(change(true, Some(false), true), Change::Settings);
        assert_eq!(change(true, Some(true), false), Change::Plugin);
        assert_eq!(change(true, Some(true), true), Change::Plugin);
        // A file missing for a moment keeps the version serving.
        assert_eq!(change(true, None, false), Change::Nothing);
        assert_eq!(change(true, None, true), Change::Settings);
    }

    #[test]
    fn an_unserved_service_loads_its_file_when_it_can() {
        assert_eq!(change(false, Some(false), false), Change::Plugin);
        assert_eq!(change(false, Some(true), true), Change::Plugin);
        assert_eq!(change(false, None, false), Change::Unreadable);
        assert_eq!(change(false, None, true), Change::Unreadable);
    }
}
