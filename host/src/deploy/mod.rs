//! Putting plugins in service and taking them out: at start, on an upload
//! or a rollback through the admin API, and when the config file or a
//! plugin file changes on disk.
//!
//! Every new version goes through the same steps before it serves: it is
//! compiled off the async threads (or loaded from the compiled cache), it
//! must export a contract version the host serves and import nothing the
//! host does not grant, and a `plans` call must succeed within the
//! service's deadline. Only then is it kept, recorded and swapped in; a
//! version that fails leaves the old one serving, and the reason is kept.

mod store;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::config::{Config, Overrides, PasswordSource, Secret, ServiceConfig};
use crate::ledger::{Deployments, Ledger, PluginEvent, now, timestamp};
use crate::model::{Context, Refusal};
use crate::registry::Registry;
use crate::runtime::{Failure, Loaded, Origin, Plugin, Runtime};
use crate::service::{Active, PluginVersion, Service, Source, Steward, describe_refusal};

pub use store::{AddedService, Deployment, FailedLoad, KeptVersion, VersionStore};

/// Why an admin action was not done: a status for the operator and one sentence.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The operator asked for something that cannot be: bad settings.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The plugin failed validation; the old version keeps serving.
    #[error("{0}")]
    Rejected(String),
    /// The host could not keep or record the version.
    #[error("{0}")]
    Host(String),
}

/// What a swap did.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub service: String,
    pub version: PluginVersion,
    /// The version it replaced.
    pub previous: Option<String>,
    /// Whether the same version was already serving (nothing was swapped).
    pub unchanged: bool,
    /// From the request to the new version serving.
    pub took: Duration,
}

/// The settings of a service added through the admin API.
#[derive(Debug, Clone, Default)]
pub struct NewService {
    pub username: Option<String>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub max_instances: Option<u32>,
}

/// A service added through the admin API, with the password tsuru must use.
pub struct Added {
    pub deployed: Deployed,
    pub username: String,
    pub password: Secret,
}

/// Where the config came from, to read it again when it changes.
struct ConfigSource {
    path: PathBuf,
    overrides: Overrides,
}

/// Puts plugins in service. One operation at a time (uploads, rollbacks,
/// reloads, additions and removals are serialised); requests are never
/// held by it.
pub struct Deployer {
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    /// What every service shares to keep its instances true.
    steward: Arc<Steward>,
    deployments: Arc<dyn Deployments>,
    store: VersionStore,
    keep_versions: usize,
    config_source: Option<ConfigSource>,
    state: Mutex<State>,
    /// The state as of the last operation, for readers that must not wait
    /// for one in progress (a large plugin compiles for seconds).
    view: ArcSwap<State>,
}

#[derive(Clone, Default)]
struct State {
    /// Every service's record, as kept in the ledger.
    records: BTreeMap<String, Deployment>,
    /// The services of the config file, as last applied.
    file_services: BTreeMap<String, ServiceConfig>,
    /// Services of the config file that could not be put in service yet.
    unserved: BTreeMap<String, ServiceConfig>,
}

impl Deployer {
    /// Loads every service's plugin: the config's services, then those
    /// added through the admin API. A config service serves the version
    /// active before the restart when its plugin file has not changed since
    /// (an upload or a rollback survives a restart), else its file.
    pub async fn start(
        config: &Config,
        runtime: Runtime,
        ledger: Arc<dyn Ledger>,
        deployments: Arc<dyn Deployments>,
    ) -> anyhow::Result<(Arc<Registry>, Deployer)> {
        let mut records = BTreeMap::new();
        for (service, document) in deployments.deployments().await? {
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
        let deployer = Deployer {
            runtime: Arc::new(runtime),
            registry: Arc::new(Registry::default()),
            steward,
            deployments,
            store: VersionStore::open(&config.data_dir)?,
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
            let added: Vec<(String, AddedService)> = state
                .records
                .iter()
                .filter(|(id, _)| !state.file_services.contains_key(*id))
                .filter_map(|(id, record)| record.added.clone().map(|added| (id.clone(), added)))
                .collect();
            for (id, added) in added {
                if let Err(err) = deployer.start_added_service(&mut state, &id, &added).await {
                    // The others still serve; the operator sees why in the
                    // log and in GET /admin/services.
                    tracing::error!(service = %id, "a service added through the admin API cannot start: {err}");
                }
            }
        }
        let registry = deployer.registry.clone();
        Ok((registry, deployer))
    }

    /// Takes the right to change things; what changed is published to
    /// readers when it is given back.
    async fn lock(&self) -> Publishing<'_> {
        Publishing {
            view: &self.view,
            state: self.state.lock().await,
        }
    }

    async fn start_file_service(
        &self,
        state: &mut State,
        service: &ServiceConfig,
    ) -> Result<(), DeployError> {
        let path = service.plugin.clone().ok_or_else(|| {
            DeployError::Host(format!("service \"{}\" names no plugin file", service.id))
        })?;
        let (file_sha, bytes) = store::read_plugin_file(&path)
            .map_err(|err| DeployError::Rejected(format!("{err:#}")))?;
        let record = state.records.entry(service.id.clone()).or_default();
        if record.added.take().is_some() {
            tracing::warn!(
                service = %service.id,
                "the config file now defines this service, which was added through the admin API; the config file's settings win"
            );
        }
        // The version that served before the restart, if the file is as it was then.
        let kept = match (&record.file_sha256, &record.active) {
            (Some(seen), Some(active)) if *seen == file_sha && *active != file_sha => {
                Some(active.clone())
            }
            _ => None,
        };
        if let Some(active) = kept {
            match self.read_kept(&active) {
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
                && let Ok(bytes) = self.read_kept(&active)
            {
                tracing::error!(service = %service.id, "{err}; serving the version active before the restart");
                self.deploy_bytes(state, service, bytes, "the kept version", Source::Kept)
                    .await?;
            } else {
                return result.map(drop);
            }
        }
        let record = state.records.entry(service.id.clone()).or_default();
        record.file_sha256 = Some(file_sha);
        self.save(&service.id, record, None).await
    }

    async fn start_added_service(
        &self,
        state: &mut State,
        id: &str,
        added: &AddedService,
    ) -> Result<(), DeployError> {
        let config = added_config(id, added);
        let active = state
            .records
            .get(id)
            .and_then(|record| record.active.clone())
            .ok_or_else(|| DeployError::Host(format!("service \"{id}\" has no active version")))?;
        let bytes = self.read_kept(&active)?;
        self.deploy_bytes(state, &config, bytes, "the kept version", Source::Kept)
            .await
            .map(drop)
    }

    fn read_kept(&self, sha256: &str) -> Result<Vec<u8>, DeployError> {
        self.store
            .read(sha256)
            .map_err(|err| DeployError::Host(format!("{err:#}")))
    }

    /// Validates `bytes` as the next version of `service` and swaps it in,
    /// or records why not. Creates the service in the registry if it is
    /// not served yet (or serves it under new settings).
    async fn deploy_bytes(
        &self,
        state: &mut State,
        service: &ServiceConfig,
        bytes: Vec<u8>,
        label: &str,
        source: Source,
    ) -> Result<Deployed, DeployError> {
        let started = Instant::now();
        let sha = crate::runtime::sha256(&bytes);
        let current = self
            .registry
            .by_id(&service.id)
            .filter(|served| served.config() == service);
        if let Some(version) = current
            .as_ref()
            .and_then(|served| served.version())
            .filter(|version| version.sha256 == sha)
        {
            return Ok(Deployed {
                service: service.id.clone(),
                version,
                previous: Some(sha),
                unchanged: true,
                took: started.elapsed(),
            });
        }
        let (loaded, bytes) = match self.validate(service, bytes, &sha, label).await {
            Ok(checked) => checked,
            Err((reason, bytes)) => {
                let failed = bytes.starts_with(b"\0asm").then(|| sha.clone());
                let record = state.records.entry(service.id.clone()).or_default();
                record.last_failure = Some(FailedLoad {
                    at: now(),
                    sha256: failed.clone(),
                    source,
                    reason: reason.clone(),
                });
                let event = PluginEvent {
                    kind: "failed-load".into(),
                    sha256: failed,
                    previous: record.active.clone(),
                    source: source.as_str().into(),
                    detail: reason.clone(),
                };
                let record = record.clone();
                if let Err(err) = self.save(&service.id, &record, Some(event)).await {
                    tracing::error!(service = %service.id, "{err}");
                }
                self.runtime.metrics().failed_load(&service.id);
                // The operator's mistake, not the host's fault: a warning.
                tracing::warn!(service = %service.id, source = source.as_str(), "plugin rejected: {reason}");
                return Err(DeployError::Rejected(reason));
            }
        };
        self.store
            .put(&sha, &bytes)
            .map_err(|err| DeployError::Host(format!("{err:#}; the old version keeps serving")))?;
        let version = PluginVersion {
            sha256: sha.clone(),
            size: bytes.len(),
            wit: loaded.wit.clone(),
            origin: loaded.origin,
            took: loaded.took,
            loaded_at: jiff::Timestamp::now(),
            source,
        };
        let record = state.records.entry(service.id.clone()).or_default();
        let previous = record.active.clone();
        let dropped = record.activate(
            KeptVersion {
                sha256: sha.clone(),
                size: bytes.len(),
                wit: loaded.wit.clone(),
                added_at: now(),
                source,
            },
            self.keep_versions,
        );
        let changed = previous.as_deref() != Some(sha.as_str());
        if changed {
            record.last_failure = None;
        }
        let event = changed.then(|| PluginEvent {
            kind: match (source, &previous) {
                (Source::Rollback, _) => "rollback",
                (_, None) => "load",
                (_, Some(_)) => "swap",
            }
            .into(),
            sha256: Some(sha.clone()),
            previous: previous.clone(),
            source: source.as_str().into(),
            detail: format!(
                "{label}: {} bytes, orizuru:service/handler@{}, {} in {} ms",
                bytes.len(),
                loaded.wit,
                match loaded.origin {
                    Origin::Cache => "loaded from the compiled cache",
                    Origin::Compiled => "compiled",
                },
                loaded.took.as_millis()
            ),
        });
        let record = record.clone();
        self.save(&service.id, &record, event).await?;
        let active = Active {
            plugin: Arc::new(loaded.plugin) as Arc<dyn Plugin>,
            version: Some(version.clone()),
        };
        if changed && previous.is_some() {
            self.runtime.metrics().swapped(&service.id);
        }
        match current {
            Some(served) => {
                served.swap(active);
            }
            None => self.registry.put(Arc::new(Service::serving(
                service.clone(),
                active,
                self.steward.clone(),
            ))),
        }
        self.forget(state, dropped);
        tracing::info!(
            service = %service.id,
            sha256 = %sha,
            previous = previous.as_deref().unwrap_or("none"),
            source = source.as_str(),
            from_cache = loaded.origin == Origin::Cache,
            load_ms = loaded.took.as_millis() as u64,
            "plugin serving"
        );
        Ok(Deployed {
            service: service.id.clone(),
            version,
            previous,
            unchanged: false,
            took: started.elapsed(),
        })
    }

    /// Compiles (or loads from the cache) and checks a plugin, then calls
    /// its `plans` as a smoke test; the reason it cannot serve, as a sentence.
    async fn validate(
        &self,
        service: &ServiceConfig,
        bytes: Vec<u8>,
        sha256: &str,
        label: &str,
    ) -> Result<(Loaded, Vec<u8>), (String, Vec<u8>)> {
        let runtime = self.runtime.clone();
        let (config, sha, label_owned) = (service.clone(), sha256.to_owned(), label.to_owned());
        let (loaded, bytes) = tokio::task::spawn_blocking(move || {
            let loaded = runtime.load(&config, &bytes, &sha, &label_owned);
            (loaded, bytes)
        })
        .await
        .map_err(|err| {
            (
                format!("the host could not check {label}: {err}"),
                Vec::new(),
            )
        })?;
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(err) => return Err((format!("{err:#}"), bytes)),
        };
        let context = Context {
            user: Some("orizuru".into()),
            request_id: Some(format!("check-{}", &loaded.sha256[..12])),
            ..Context::default()
        };
        let refused = match loaded.plugin.plans(context).await {
            Ok(_) | Err(Failure::Refused(Refusal::Unsupported | Refusal::MissingParams(_))) => None,
            Err(Failure::Refused(refusal)) => Some(format!(
                "{label} refused the check call of plans: {}",
                describe_refusal(&service.id, &refusal)
            )),
            Err(Failure::Stopped(stop)) => {
                Some(format!("{label} failed the check call of plans: {stop}"))
            }
        };
        if let Some(reason) = refused {
            return Err((reason, bytes));
        }
        Ok((loaded, bytes))
    }

    /// Removes the wasm (and compiled code) of versions no service keeps.
    fn forget(&self, state: &State, dropped: Vec<KeptVersion>) {
        let kept: BTreeSet<&str> = state
            .records
            .values()
            .flat_map(|record| record.versions.iter().map(|kept| kept.sha256.as_str()))
            .collect();
        for version in dropped {
            if !kept.contains(version.sha256.as_str()) {
                self.store.remove(&version.sha256);
                self.runtime.forget(&version.sha256);
            }
        }
    }

    async fn save(
        &self,
        id: &str,
        record: &Deployment,
        event: Option<PluginEvent>,
    ) -> Result<(), DeployError> {
        let document = serde_json::to_value(record)
            .map_err(|err| DeployError::Host(format!("cannot record service \"{id}\": {err}")))?;
        self.deployments
            .save_deployment(id, Some(document), event)
            .await
            .map_err(|err| {
                DeployError::Host(format!(
                    "cannot record the plugin of service \"{id}\" in the ledger ({err:#}); the old version keeps serving"
                ))
            })
    }

    /// A service served now, or a 404 naming it.
    fn served(&self, id: &str) -> Result<Arc<Service>, DeployError> {
        self.registry.by_id(id).ok_or_else(|| {
            DeployError::NotFound(format!(
                "no service \"{id}\" is served here; GET /admin/services lists them"
            ))
        })
    }

    /// Validates an uploaded plugin and swaps it in.
    pub async fn upload(&self, id: &str, bytes: Vec<u8>) -> Result<Deployed, DeployError> {
        let mut state = self.lock().await;
        let config = self.served(id)?.config().clone();
        self.deploy_bytes(
            &mut state,
            &config,
            bytes,
            "the uploaded plugin",
            Source::Upload,
        )
        .await
    }

    /// Swaps back to the previous kept version, or to the one named.
    pub async fn rollback(&self, id: &str, to: Option<&str>) -> Result<Deployed, DeployError> {
        let mut state = self.lock().await;
        let config = self.served(id)?.config().clone();
        let record = state.records.get(id).cloned().unwrap_or_default();
        let target = match to {
            Some(sha) => record.kept(sha).cloned().ok_or_else(|| {
                DeployError::NotFound(format!(
                    "service \"{id}\" keeps no version {sha}; it keeps {}",
                    list_or_none(record.versions.iter().map(|kept| kept.sha256.as_str()))
                ))
            })?,
            None => record
                .versions
                .iter()
                .find(|kept| Some(&kept.sha256) != record.active.as_ref())
                .cloned()
                .ok_or_else(|| {
                    DeployError::Conflict(format!(
                        "service \"{id}\" has no previous version to roll back to; upload one with PUT /admin/services/{id}/plugin"
                    ))
                })?,
        };
        let bytes = self.read_kept(&target.sha256)?;
        let label = format!("version {}", target.sha256);
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
        let mut state = self.lock().await;
        if self.registry.by_id(id).is_some() || state.file_services.contains_key(id) {
            return Err(DeployError::Conflict(format!(
                "service \"{id}\" exists already; upload a new plugin with PUT /admin/services/{id}/plugin"
            )));
        }
        let username = settings.username.unwrap_or_else(|| id.to_owned());
        if self.registry.by_username(&username).is_some() {
            return Err(DeployError::Conflict(format!(
                "username \"{username}\" is taken by another service; choose another with ?username="
            )));
        }
        let added = AddedService {
            username: username.clone(),
            password: generate_password().map_err(DeployError::Host)?,
            timeout_ms: settings
                .timeout_ms
                .unwrap_or(crate::config::DEFAULT_TIMEOUT_MS),
            memory_mb: settings
                .memory_mb
                .unwrap_or(crate::config::DEFAULT_MEMORY_MB),
            max_instances: settings
                .max_instances
                .unwrap_or(crate::config::DEFAULT_SERVICE_MAX_INSTANCES),
            added_at: now(),
        };
        let config = check_added(id, &added).map_err(DeployError::Invalid)?;
        // A service removed earlier leaves its kept versions for a re-add.
        let mut record = state.records.get(id).cloned().unwrap_or_default();
        record.added = Some(added.clone());
        state.records.insert(id.to_owned(), record);
        match self
            .deploy_bytes(
                &mut state,
                &config,
                bytes,
                "the uploaded plugin",
                Source::Upload,
            )
            .await
        {
            Ok(deployed) => {
                let record = state.records.get(id).cloned().unwrap_or_default();
                let event = PluginEvent {
                    kind: "added".into(),
                    sha256: Some(deployed.version.sha256.clone()),
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
                    password: Secret::new(added.password),
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
        let mut state = self.lock().await;
        if state.file_services.contains_key(id) {
            return Err(DeployError::Conflict(format!(
                "service \"{id}\" comes from the config file; remove its [[services]] entry there (the file is watched)"
            )));
        }
        self.served(id)?;
        let instances = self.deployments.count_instances(id).await.map_err(|err| {
            DeployError::Host(format!(
                "cannot count the instances of service \"{id}\": {err:#}"
            ))
        })?;
        if instances > 0 && !force {
            return Err(DeployError::Conflict(format!(
                "service \"{id}\" still has {instances} instance(s) in the ledger; remove them through tsuru first, or add ?force=true to stop serving them anyway (the ledger keeps them)"
            )));
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

    /// Reads the config file and the plugin files it names again, and
    /// applies what changed: services added, removed or with new settings,
    /// plugin files with new contents. Nothing changes for a config file
    /// that cannot be used; the reason is logged.
    pub async fn reload(&self) {
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
        let gone: Vec<String> = state
            .file_services
            .keys()
            .filter(|id| !next.contains_key(*id))
            .cloned()
            .collect();
        state.unserved.retain(|id, _| next.contains_key(id));
        for id in gone {
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
            .ok_or_else(|| DeployError::Host(format!("service \"{id}\" names no plugin file")))?;
        let known = state.file_services.get(&id).cloned();
        let served = self.registry.by_id(&id);
        let file = store::read_plugin_file(&path);
        let file_changed = match &file {
            Ok((sha, _)) => {
                state
                    .records
                    .get(&id)
                    .and_then(|record| record.file_sha256.as_ref())
                    != Some(sha)
            }
            // A file being replaced can be missing for a moment; a later event retries.
            Err(err) => {
                tracing::warn!(service = %id, "{err:#}; the current version keeps serving");
                false
            }
        };
        let settings_changed = known.as_ref() != Some(service);
        if served.is_some() && !file_changed && !settings_changed {
            return Ok(());
        }
        match (served, file) {
            (Some(served), _) if !file_changed => {
                // Same plugin, new settings: the same component under them.
                self.runtime
                    .check_limits(service)
                    .map_err(|err| DeployError::Rejected(format!("{err:#}")))?;
                let active = served.active();
                let plugin = active
                    .plugin
                    .with_limits(service)
                    .map_err(|err| DeployError::Rejected(format!("{err:#}")))?
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
                        .map(|version| version.sha256.clone()),
                    previous: None,
                    source: Source::FileChange.as_str().into(),
                    detail: format!("service \"{id}\" serves under the config file's new settings"),
                };
                let record = state.records.get(&id).cloned().unwrap_or_default();
                self.save(&id, &record, Some(event)).await?;
                tracing::info!(service = %id, "service settings changed in the config file");
            }
            (_, Ok((sha, bytes))) => {
                // A new file, a new service, or both with new settings: the
                // file's plugin under the settings the file gives now.
                let label = path.display().to_string();
                let result = self
                    .deploy_bytes(state, service, bytes, &label, Source::FileChange)
                    .await;
                // Seen, whether it passed or not: the same bytes are not tried again.
                let record = state.records.entry(id.clone()).or_default();
                record.file_sha256 = Some(sha);
                let record = record.clone();
                self.save(&id, &record, None).await?;
                result?;
            }
            (_, Err(err)) => return Err(DeployError::Rejected(format!("{err:#}"))),
        }
        state.file_services.insert(id, service.clone());
        Ok(())
    }

    /// The paths to watch: the config file and every plugin file it names.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let state = self.view.load();
        self.config_source
            .iter()
            .map(|source| source.path.clone())
            .chain(
                state
                    .file_services
                    .values()
                    .chain(state.unserved.values())
                    .filter_map(|service| service.plugin.clone()),
            )
            .collect()
    }

    /// The services that should serve but do not: those of the config
    /// file, and those added through the admin API, whose plugin did not
    /// load (`GET /readyz`).
    pub fn unserved(&self) -> Vec<String> {
        let state = self.view.load();
        let serving: BTreeSet<String> = self
            .registry
            .all()
            .iter()
            .map(|service| service.id().to_owned())
            .collect();
        let expected: BTreeSet<&String> = state
            .file_services
            .keys()
            .chain(state.unserved.keys())
            .chain(
                state
                    .records
                    .iter()
                    .filter(|(_, record)| record.added.is_some())
                    .map(|(id, _)| id),
            )
            .collect();
        expected
            .into_iter()
            .filter(|id| !serving.contains(*id))
            .cloned()
            .collect()
    }

    /// What `GET /admin/services` shows of every service.
    pub async fn describe_all(&self) -> Value {
        let state = self.view.load();
        let ids: BTreeSet<String> = self
            .registry
            .all()
            .iter()
            .map(|service| service.id().to_owned())
            .chain(state.file_services.keys().cloned())
            .chain(state.unserved.keys().cloned())
            .chain(
                state
                    .records
                    .iter()
                    .filter(|(_, record)| record.added.is_some())
                    .map(|(id, _)| id.clone()),
            )
            .collect();
        Value::Array(ids.iter().map(|id| self.describe(&state, id)).collect())
    }

    /// One service, with its newest plugin events.
    pub async fn describe_one(&self, id: &str) -> Result<Value, DeployError> {
        let state = self.view.load_full();
        let known = state.file_services.contains_key(id)
            || state.unserved.contains_key(id)
            || state
                .records
                .get(id)
                .is_some_and(|record| record.added.is_some());
        if !known {
            self.served(id)?;
        }
        let mut described = self.describe(&state, id);
        let events = self
            .deployments
            .plugin_events(id, 50)
            .await
            .map_err(|err| {
                DeployError::Host(format!(
                    "cannot read the plugin events of service \"{id}\": {err:#}"
                ))
            })?;
        described["events"] = events
            .into_iter()
            .map(|record| {
                json!({
                    "at": record.at,
                    "kind": record.event.kind,
                    "sha256": record.event.sha256,
                    "previous": record.event.previous,
                    "source": record.event.source,
                    "detail": record.event.detail,
                })
            })
            .collect();
        Ok(described)
    }

    fn describe(&self, state: &State, id: &str) -> Value {
        let served = self.registry.by_id(id);
        let record = state.records.get(id).cloned().unwrap_or_default();
        let active = served
            .as_ref()
            .and_then(|service| service.version())
            .map(|version| {
                json!({
                    "sha256": version.sha256,
                    "size": version.size,
                    "wit": version.wit,
                    "loaded_at": timestamp(version.loaded_at),
                    "from": version.origin.as_str(),
                    "load_ms": version.took.as_millis() as u64,
                    "source": version.source,
                })
            });
        let active_sha = active
            .as_ref()
            .and_then(|active| active["sha256"].as_str().map(str::to_owned));
        let previous: Vec<Value> = record
            .versions
            .iter()
            .filter(|kept| Some(&kept.sha256) != active_sha.as_ref())
            .map(|kept| {
                json!({
                    "sha256": kept.sha256,
                    "size": kept.size,
                    "wit": kept.wit,
                    "added_at": kept.added_at,
                    "source": kept.source,
                })
            })
            .collect();
        let config = served
            .as_ref()
            .map(|service| service.config().clone())
            .or_else(|| state.file_services.get(id).cloned())
            .or_else(|| state.unserved.get(id).cloned())
            .or_else(|| record.added.as_ref().map(|added| added_config(id, added)));
        json!({
            "id": id,
            "defined_in": if state.file_services.contains_key(id) || state.unserved.contains_key(id) {
                "config-file"
            } else {
                "admin-api"
            },
            "username": config.as_ref().map(|config| config.username.clone()),
            "plugin_file": config.as_ref().and_then(|config| config.plugin.clone()),
            "timeout_ms": config.as_ref().map(|config| config.timeout.as_millis() as u64),
            "memory_mb": config.as_ref().map(|config| config.memory_bytes / (1024 * 1024)),
            "max_instances": config.as_ref().map(|config| config.max_instances),
            "serving": served.is_some(),
            "active": active,
            "previous": previous,
            "last_failure": record.last_failure,
        })
    }
}

/// The deployer's state, locked; published to readers when dropped, on
/// every path out of an operation.
struct Publishing<'a> {
    view: &'a ArcSwap<State>,
    state: tokio::sync::MutexGuard<'a, State>,
}

impl std::ops::Deref for Publishing<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for Publishing<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        self.view.store(Arc::new(State::clone(&self.state)));
    }
}

fn added_config(id: &str, added: &AddedService) -> ServiceConfig {
    ServiceConfig {
        id: id.to_owned(),
        plugin: None,
        username: added.username.clone(),
        password: Secret::new(added.password.clone()),
        password_source: PasswordSource::AdminApi,
        timeout: Duration::from_millis(added.timeout_ms),
        memory_bytes: added.memory_mb * 1024 * 1024,
        max_instances: added.max_instances,
        answers: crate::config::AnswerLimits::default(),
        // A service added through the admin API has no capabilities yet.
        grants: crate::config::Grants::default(),
    }
}

/// The settings of a service added through the admin API, checked as the
/// config file's are.
fn check_added(id: &str, added: &AddedService) -> Result<ServiceConfig, String> {
    let username = &added.username;
    if username.is_empty() || username.contains(':') {
        return Err(format!(
            "username \"{username}\" cannot be used for basic auth; use a non-empty name without ':'"
        ));
    }
    if added.timeout_ms == 0 {
        return Err("timeout_ms must be at least 1".into());
    }
    if !(1..=crate::config::MAX_MEMORY_MB).contains(&added.memory_mb) {
        return Err(format!(
            "memory_mb is {}; give a value from 1 to {}",
            added.memory_mb,
            crate::config::MAX_MEMORY_MB
        ));
    }
    crate::config::check_instances("max_instances", added.max_instances)?;
    Ok(added_config(id, added))
}

/// 32 random bytes in hex: the password of a service added through the admin API.
fn generate_password() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| format!("cannot generate a password for the service: {err}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn list_or_none<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
