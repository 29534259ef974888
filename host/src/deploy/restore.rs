//! Start: every service's plugin back in service. A config service serves
//! the version active before the restart when its plugin file has not
//! changed since (an upload or a rollback survives a restart), else its
//! file; a service added through the admin API serves its active kept
//! version.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use super::fleet::Fleet;
use super::shared::SharedDeployments;
use super::store::{self, Deployment, PluginFiles, VersionStore};
use super::{ConfigSource, DeployError, Deployer, State};
use crate::config::{Config, Overrides, ServiceConfig};
use crate::ledger::{Deployments, Ledger};
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::service::{Source, Steward};

impl Deployer {
    /// Loads every service's plugin: the config's services, then those
    /// added through the admin API. The records are `deployments`'. With
    /// `shared` (the shared store, which `deployments` must then be), the
    /// kept wasm is the fleet's and the host follows what other hosts change
    /// once [`Deployer::follow`] is called; else the wasm is kept in files
    /// under `data_dir`.
    pub async fn start(
        config: &Config,
        runtime: Runtime,
        ledger: Arc<dyn Ledger>,
        deployments: Arc<dyn Deployments>,
        shared: Option<&crate::store::postgres::Postgres>,
    ) -> anyhow::Result<(Arc<Registry>, Deployer)> {
        let shared = shared.map(|store| SharedDeployments::new(store.clone()));
        // The revision read before the records: a write in between is applied twice, not missed.
        let revision = match &shared {
            Some(shared) => shared.revision().await?,
            None => 0,
        };
        let mut records = BTreeMap::new();
        let mut plain_passwords = Vec::new();
        for (service, document) in deployments.deployments().await? {
            if super::added::keeps_plain_password(&document) {
                plain_passwords.push(service.clone());
            }
            let record: Deployment = serde_json::from_value(document).map_err(|err| {
                anyhow::anyhow!(
                    "the ledger's plugin record of service \"{service}\" is damaged: {err}"
                )
            })?;
            records.insert(service, record);
        }
        let steward = Steward::new(
            ledger,
            runtime.metrics().clone(),
            config.queue_wait,
            config.retention.replay_window,
        );
        let (store, fleet) = match shared {
            Some(shared) => {
                let host_id = config
                    .store
                    .as_ref()
                    .map(|store| store.host_id.clone())
                    .unwrap_or_default();
                let fleet = Fleet::new(shared.clone(), host_id, steward.run().to_owned());
                fleet.applied(revision);
                (VersionStore::Shared(shared), Some(Arc::new(fleet)))
            }
            None => (
                VersionStore::Files(PluginFiles::open(&config.data_dir)?),
                None,
            ),
        };
        let deployer = Deployer {
            runtime: Arc::new(runtime),
            registry: Arc::new(Registry::default()),
            steward,
            deployments,
            store,
            shared: fleet,
            keep_versions: config.keep_versions,
            config_source: config.source.clone().map(|path| ConfigSource {
                path,
                overrides: Overrides {
                    listen: Some(config.listen),
                    data_dir: Some(config.data_dir.clone()),
                },
            }),
            state: Mutex::new(State {
                records,
                file_services: BTreeMap::new(),
                unserved: BTreeMap::new(),
            }),
            view: ArcSwap::default(),
        };
        // On a shared store, hosts starting at once put their config
        // files' plugins in service one after the other, each from the
        // records as the one before left them.
        let _fleet = deployer.exclusive_within(super::fleet::START_WAIT).await?;
        for service in plain_passwords {
            // Written again as it is read: with the password's digest only.
            let record = deployer.lock().await.records.get(&service).cloned();
            if let Some(record) = record {
                deployer.save(&service, &record, None).await?;
                tracing::info!(service = %service, "the password of a service added through the admin API is now kept as its digest only");
            }
        }
        {
            let mut state = deployer.lock().await;
            for service in &config.services {
                deployer
                    .start_file_service(&mut state, service)
                    .await
                    .map_err(|err| {
                        anyhow::anyhow!("service \"{}\" cannot start: {err}", service.id)
                    })?;
                state
                    .file_services
                    .insert(service.id.clone(), service.clone());
            }
            let added: Vec<(String, ServiceConfig)> = state
                .added()
                .filter(|(id, _)| !state.file_services.contains_key(*id))
                .map(|(id, added)| (id.clone(), added.config(id)))
                .collect();
            for (id, config) in added {
                if let Err(err) = deployer.start_added_service(&mut state, &config).await {
                    // The others still serve; the operator sees why in the
                    // log and in GET /admin/services.
                    tracing::error!(service = %id, "a service added through the admin API cannot start: {err}");
                }
            }
        }
        let registry = deployer.registry.clone();
        Ok((registry, deployer))
    }

    async fn start_file_service(
        &self,
        state: &mut State,
        service: &ServiceConfig,
    ) -> Result<(), DeployError> {
        let path = service
            .plugin
            .clone()
            .ok_or_else(|| DeployError::NoPluginFile(service.id.clone()))?;
        let (file_sha, bytes) = store::read_plugin_file(&path).map_err(DeployError::Unusable)?;
        let record = state.records.entry(service.id.clone()).or_default();
        if record.added.take().is_some() {
            tracing::warn!(
                service = %service.id,
                "the config file now defines this service, which was added through the admin API; the config file's settings win"
            );
        }
        if let Some(active) = kept_over_file(record, &file_sha, self.shared.is_some()) {
            match self.read_kept(&active).await {
                Ok(bytes) => {
                    match self
                        .deploy_bytes(state, service, bytes, "the kept version", Source::Kept)
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(err) => tracing::warn!(
                            service = %service.id,
                            "the version active before the restart cannot serve; serving the config's plugin file: {err}"
                        ),
                    }
                }
                Err(err) => {
                    tracing::warn!(service = %service.id, "{err}; serving the config's plugin file")
                }
            }
        }
        let label = path.display().to_string();
        let result = self
            .deploy_bytes(state, service, bytes, &label, Source::ConfigFile)
            .await;
        if let Err(err) = &result {
            // A broken file does not take down a service that served
            // before: the last active version serves, and the failure shows.
            let fallback = state
                .records
                .get(&service.id)
                .and_then(|record| record.active.clone());
            if let Some(active) = fallback
                && let Ok(bytes) = self.read_kept(&active).await
            {
                tracing::error!(service = %service.id, "{err}; serving the version active before the restart");
                self.deploy_bytes(state, service, bytes, "the kept version", Source::Kept)
                    .await?;
            } else {
                return result.map(drop);
            }
        }
        let record = state.records.entry(service.id.clone()).or_default();
        record.saw_file(&file_sha);
        let record = record.clone();
        self.save(&service.id, &record, None).await
    }

    async fn start_added_service(
        &self,
        state: &mut State,
        config: &ServiceConfig,
    ) -> Result<(), DeployError> {
        let active = state
            .records
            .get(&config.id)
            .and_then(|record| record.active.clone())
            .ok_or_else(|| DeployError::NoActiveVersion(config.id.clone()))?;
        let bytes = self.read_kept(&active).await?;
        self.deploy_bytes(state, config, bytes, "the kept version", Source::Kept)
            .await
            .map(drop)
    }
}

/// The version that served before the restart, when it is not the config's
/// plugin file and that file was loaded before (on an embedded store: it is
/// as it was then; on a shared one: any host loaded it once): an upload, a
/// rollback or another host's newer file that should keep serving.
fn kept_over_file(record: &Deployment, file_sha: &str, shared: bool) -> Option<String> {
    match &record.active {
        Some(active) if active != file_sha && record.seen_file(file_sha, shared) => {
            Some(active.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(file_sha256: Option<&str>, active: Option<&str>) -> Deployment {
        Deployment {
            file_sha256: file_sha256.map(str::to_owned),
            active: active.map(str::to_owned),
            ..Deployment::default()
        }
    }

    #[test]
    fn an_upload_keeps_serving_while_the_file_is_unchanged() {
        assert_eq!(
            kept_over_file(&record(Some("file"), Some("upload")), "file", false).as_deref(),
            Some("upload")
        );
        // The file changed since: the file wins.
        assert_eq!(
            kept_over_file(&record(Some("file"), Some("upload")), "new", false),
            None
        );
        // The file itself serves, or nothing served before.
        assert_eq!(
            kept_over_file(&record(Some("file"), Some("file")), "file", false),
            None
        );
        assert_eq!(kept_over_file(&record(None, None), "file", false), None);
        assert_eq!(
            kept_over_file(&record(None, Some("upload")), "file", false),
            None
        );
    }

    #[test]
    fn on_a_shared_store_a_file_seen_before_never_takes_the_fleet_back() {
        // Host A loaded file "a", then host B loaded file "b": the fleet serves "b".
        let mut fleet = Deployment::default();
        fleet.saw_file("a");
        fleet.saw_file("b");
        fleet.active = Some("b".into());
        // A restarts with "a": it serves "b", on a shared store.
        assert_eq!(kept_over_file(&fleet, "a", true).as_deref(), Some("b"));
        // B restarts with "b": it is what serves.
        assert_eq!(kept_over_file(&fleet, "b", true), None);
        // A new file "c" is applied, by whichever host reads it first.
        assert_eq!(kept_over_file(&fleet, "c", true), None);
        // One host alone goes back to "a" when its file does.
        assert_eq!(kept_over_file(&fleet, "a", false), None);
    }
}
