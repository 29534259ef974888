//! The admin API's operations on services: upload a plugin, roll back to a
//! kept version, add a service with its plugin, remove one added here.

use super::added::{AddedService, NewService, generate_password};
use super::{DeployError, Deployed, Deployer};
use crate::config::Secret;
use crate::ledger::{PluginEvent, now};
use crate::service::Source;

/// How errors and events name a plugin sent through the admin API.
const UPLOADED: &str = "the uploaded plugin";

/// A service added through the admin API, with the password tsuru must use.
pub struct Added {
    pub deployed: Deployed,
    pub username: String,
    pub password: Secret,
}

impl Deployer {
    /// Validates an uploaded plugin and swaps it in.
    pub async fn upload(&self, id: &str, bytes: Vec<u8>) -> Result<Deployed, DeployError> {
        let _fleet = self.exclusive().await?;
        let mut state = self.lock().await;
        let config = self.served(id)?.config().clone();
        self.deploy_bytes(&mut state, &config, bytes, UPLOADED, Source::Upload)
            .await
    }

    /// Swaps back to the previous kept version, or to the one named.
    pub async fn rollback(&self, id: &str, to: Option<&str>) -> Result<Deployed, DeployError> {
        let _fleet = self.exclusive().await?;
        let mut state = self.lock().await;
        let config = self.served(id)?.config().clone();
        let record = state.records.get(id).cloned().unwrap_or_default();
        let target = match to {
            Some(sha) => record
                .kept(sha)
                .cloned()
                .ok_or_else(|| DeployError::NotKept {
                    service: id.to_owned(),
                    sha256: sha.to_owned(),
                    kept: list_or_none(
                        record
                            .versions
                            .iter()
                            .map(|kept| kept.version.sha256.as_str()),
                    ),
                })?,
            None => record
                .versions
                .iter()
                .find(|kept| Some(&kept.version.sha256) != record.active.as_ref())
                .cloned()
                .ok_or_else(|| DeployError::NoPrevious(id.to_owned()))?,
        };
        let sha256 = target.version.sha256;
        let bytes = self.read_kept(&sha256).await?;
        let label = format!("version {sha256}");
        self.deploy_bytes(&mut state, &config, bytes, &label, Source::Rollback)
            .await
    }

    /// Adds a service with a plugin, kept across restarts. tsuru must use
    /// the password it answers with.
    pub async fn add(
        &self,
        id: &str,
        settings: NewService,
        bytes: Vec<u8>,
    ) -> Result<Added, DeployError> {
        crate::config::check_service_id(id).map_err(DeployError::Invalid)?;
        let _fleet = self.exclusive().await?;
        let mut state = self.lock().await;
        if self.registry.by_id(id).is_some() || state.file_services.contains_key(id) {
            return Err(DeployError::Exists(id.to_owned()));
        }
        let settings = settings.settings(id);
        if self.registry.by_username(&settings.username).is_some() {
            return Err(DeployError::UsernameTaken(settings.username));
        }
        let password = generate_password()?;
        let added = AddedService::new(settings, &password, now());
        let config = added.checked_config(id)?;
        let username = added.username.clone();
        // A service removed earlier leaves its kept versions for a re-add.
        let mut record = state.records.get(id).cloned().unwrap_or_default();
        record.added = Some(added.clone());
        state.records.insert(id.to_owned(), record);
        match self
            .deploy_bytes(&mut state, &config, bytes, UPLOADED, Source::Upload)
            .await
        {
            Ok(deployed) => {
                let record = state.records.get(id).cloned().unwrap_or_default();
                let event = PluginEvent {
                    kind: "added".into(),
                    sha256: Some(deployed.active.version.sha256.clone()),
                    previous: None,
                    source: Source::Upload.as_str().into(),
                    detail: format!(
                        "service \"{id}\" added through the admin API, username \"{username}\""
                    ),
                };
                self.save(id, &record, Some(event)).await?;
                Ok(Added {
                    deployed,
                    username,
                    password: Secret::new(password),
                })
            }
            Err(err) => {
                if let Some(record) = state.records.get_mut(id) {
                    record.added = None;
                    let record = record.clone();
                    if let Err(err) = self.save(id, &record, None).await {
                        tracing::error!(service = %id, "{err}");
                    }
                }
                Err(err)
            }
        }
    }

    /// Removes a service added through the admin API. One with instances
    /// in the ledger is kept unless `force`: tsuru still knows them.
    pub async fn remove(&self, id: &str, force: bool) -> Result<(), DeployError> {
        let _fleet = self.exclusive().await?;
        let mut state = self.lock().await;
        if state.file_services.contains_key(id) {
            return Err(DeployError::FromConfigFile(id.to_owned()));
        }
        self.served(id)?;
        let instances = self
            .deployments
            .count_instances(id)
            .await
            .map_err(|source| DeployError::CountInstances {
                service: id.to_owned(),
                source,
            })?;
        if instances > 0 && !force {
            return Err(DeployError::HasInstances {
                service: id.to_owned(),
                instances,
            });
        }
        let mut record = state.records.get(id).cloned().unwrap_or_default();
        record.added = None;
        let event = PluginEvent {
            kind: "removed".into(),
            sha256: record.active.clone(),
            previous: None,
            source: "admin-api".into(),
            detail: format!(
                "service \"{id}\" removed through the admin API with {instances} instance(s) in the ledger"
            ),
        };
        self.save(id, &record, Some(event)).await?;
        state.records.insert(id.to_owned(), record);
        self.registry.remove(id);
        tracing::info!(service = %id, "service removed through the admin API");
        Ok(())
    }
}

/// `a, b, c`, or `none`.
fn list_or_none<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_their_items_or_none() {
        assert_eq!(list_or_none(["a", "b"].into_iter()), "a, b");
        assert_eq!(list_or_none(std::iter::empty()), "none");
    }
}
