//! The steps every new version of a service's plugin goes through before it
//! serves: compiled (or loaded from the compiled cache) off the async
//! threads, checked against the contract and the service's grants, a
//! `plans` call as a smoke test; then kept in the version store, recorded in
//! the ledger and swapped in. A version that fails is recorded as the
//! service's last failed load and the old one keeps serving.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::store::{Deployment, FailedLoad, KeptVersion};
use super::{DeployError, Deployer, State};
use crate::config::ServiceConfig;
use crate::ledger::{PluginEvent, now};
use crate::model::{Context, Refusal};
use crate::runtime::{CompiledFrom, Failure, Loaded, Plugin};
use crate::service::{Active, ActiveVersion, Service, Source, describe_refusal};

/// What a swap did.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub service: String,
    pub active: ActiveVersion,
    /// The version it replaced.
    pub previous: Option<String>,
    /// Whether the same version was already serving (nothing was swapped).
    pub unchanged: bool,
    /// From the request to the new version serving.
    pub took: Duration,
}

impl Deployer {
    /// Validates `bytes` as the next version of `service` and swaps it in,
    /// or records why not. Creates the service in the registry if it is
    /// not served yet (or serves it under new settings).
    pub(super) async fn deploy_bytes(
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
        if let Some(active) = current
            .as_ref()
            .and_then(|served| served.version())
            .filter(|active| active.version.sha256 == sha)
        {
            return Ok(Deployed {
                service: service.id.clone(),
                active,
                previous: Some(sha),
                unchanged: true,
                took: started.elapsed(),
            });
        }
        let (loaded, bytes) = match self.validate(service, bytes, &sha, label).await {
            Ok(checked) => checked,
            Err((reason, bytes)) => {
                let failed = bytes.starts_with(b"\0asm").then(|| sha.clone());
                self.record_failure(state, service, source, failed, &reason)
                    .await;
                return Err(DeployError::Rejected(reason));
            }
        };
        self.store
            .put(&sha, bytes)
            .await
            .map_err(DeployError::Keep)?;
        let (version, compiled_from, load_took) =
            (loaded.version.clone(), loaded.compiled_from, loaded.took);
        let record = state.records.entry(service.id.clone()).or_default();
        let previous = record.active.clone();
        let dropped = record.activate(
            KeptVersion {
                version: version.clone(),
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
                version.size,
                version.wit,
                match compiled_from {
                    CompiledFrom::Cache => "loaded from the compiled cache",
                    CompiledFrom::Wasm => "compiled",
                },
                load_took.as_millis()
            ),
        });
        let record = record.clone();
        self.save(&service.id, &record, event).await?;
        let active = self.put_in_service(
            service,
            current,
            loaded,
            source,
            changed && previous.is_some(),
        );
        self.forget(state, dropped).await;
        tracing::info!(
            service = %service.id,
            sha256 = %sha,
            previous = previous.as_deref().unwrap_or("none"),
            source = source.as_str(),
            from_cache = compiled_from == CompiledFrom::Cache,
            load_ms = load_took.as_millis() as u64,
            "plugin serving"
        );
        Ok(Deployed {
            service: service.id.clone(),
            active,
            previous,
            unchanged: false,
            took: started.elapsed(),
        })
    }

    /// Serves a checked version: swapped in for the service served now
    /// (`current`), or the service created in the registry.
    pub(super) fn put_in_service(
        &self,
        service: &ServiceConfig,
        current: Option<Arc<Service>>,
        loaded: Loaded,
        source: Source,
        swapped: bool,
    ) -> ActiveVersion {
        let Loaded {
            plugin,
            version,
            compiled_from,
            took,
        } = loaded;
        let active = ActiveVersion {
            version,
            compiled_from,
            took,
            loaded_at: jiff::Timestamp::now(),
            source,
        };
        let serving = Active {
            plugin: Arc::new(plugin) as Arc<dyn Plugin>,
            version: Some(active.clone()),
        };
        if swapped {
            self.runtime.metrics().swapped(&service.id);
        }
        match current {
            Some(served) => {
                served.swap(serving);
            }
            None => self.registry.put(Arc::new(Service::serving(
                service.clone(),
                serving,
                self.steward.clone(),
            ))),
        }
        active
    }

    /// Keeps why a version cannot serve as the service's last failed load,
    /// in the ledger and the metrics; the old version keeps serving.
    async fn record_failure(
        &self,
        state: &mut State,
        service: &ServiceConfig,
        source: Source,
        failed: Option<String>,
        reason: &str,
    ) {
        let record = state.records.entry(service.id.clone()).or_default();
        record.last_failure = Some(FailedLoad {
            at: now(),
            sha256: failed.clone(),
            source,
            reason: reason.to_owned(),
        });
        let event = PluginEvent {
            kind: "failed-load".into(),
            sha256: failed,
            previous: record.active.clone(),
            source: source.as_str().into(),
            detail: reason.to_owned(),
        };
        let record = record.clone();
        if let Err(err) = self.save(&service.id, &record, Some(event)).await {
            tracing::error!(service = %service.id, "{err}");
        }
        self.runtime.metrics().failed_load(&service.id);
        // The operator's mistake, not the host's fault: a warning.
        tracing::warn!(service = %service.id, source = source.as_str(), "plugin rejected: {reason}");
    }

    /// Compiles (or loads from the cache) and checks a plugin, then calls
    /// its `plans` as a smoke test; the reason it cannot serve, as a sentence.
    pub(super) async fn validate(
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
            request_id: Some(format!("check-{}", &loaded.version.sha256[..12])),
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
    async fn forget(&self, state: &State, dropped: Vec<KeptVersion>) {
        let kept: BTreeSet<&str> = state
            .records
            .values()
            .flat_map(|record| {
                record
                    .versions
                    .iter()
                    .map(|kept| kept.version.sha256.as_str())
            })
            .collect();
        for dropped in dropped {
            let sha256 = dropped.version.sha256;
            if !kept.contains(sha256.as_str()) {
                self.store.remove(&sha256).await;
                self.runtime.forget(&sha256);
            }
        }
    }

    /// Writes a service's record, and the event that changed it, to the ledger.
    pub(super) async fn save(
        &self,
        id: &str,
        record: &Deployment,
        event: Option<PluginEvent>,
    ) -> Result<(), DeployError> {
        let document = serde_json::to_value(record).map_err(|source| DeployError::Encode {
            service: id.to_owned(),
            source,
        })?;
        self.deployments
            .save_deployment(id, Some(document), event)
            .await
            .map_err(|source| DeployError::Record {
                service: id.to_owned(),
                source,
            })
    }

    /// The wasm of a kept version.
    pub(super) async fn read_kept(&self, sha256: &str) -> Result<Vec<u8>, DeployError> {
        self.store.read(sha256).await.map_err(DeployError::ReadKept)
    }

    /// A service served now, or a 404 naming it.
    pub(super) fn served(&self, id: &str) -> Result<Arc<Service>, DeployError> {
        self.registry
            .by_id(id)
            .ok_or_else(|| DeployError::NotServed(id.to_owned()))
    }
}
