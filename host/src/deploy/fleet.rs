//! Several hosts on one shared store: each follows the change feed of
//! service records and serves what the fleet serves, beats a heartbeat that
//! says what it serves, and takes the fleet's lock for an admin operation.
//!
//! - **Following.** A write of a record on any host is sent to every other
//!   (`NOTIFY`, see [`super::shared`]); a host also polls every
//!   [`POLL`](super::shared::POLL). For each changed record it checks the
//!   new active version itself (compiled here, or from the shared
//!   `cache_dir`, then the `plans` smoke test) and swaps it in atomically,
//!   as an upload does; a version that fails here leaves the old one
//!   serving, and this host says so (`GET /admin/services`' fleet view,
//!   `GET /readyz`). Following never writes a record.
//! - **Heartbeat.** Every [`HEARTBEAT`] the host writes its row of `hosts`:
//!   its id, the version each service serves here, what it could not load.
//!   A reservation whose host has not beaten for a while is an orphan.
//! - **Operations.** Uploads, rollbacks, additions, removals and reloads
//!   take a fleet-wide advisory lock and catch up first, so two hosts never
//!   write one record from two different pasts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Serialize;

use super::shared::{CHANNEL, POLL, RecordChange, SharedDeployments};
use super::store::Deployment;
use super::{DeployError, Deployer, State};
use crate::store::postgres::{postgres_error, utc_text};

/// How often a host writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long after its last heartbeat a host is taken for gone.
pub const GONE_AFTER: Duration = Duration::from_secs(15);
/// How long an admin operation waits for another host's to end.
const OPERATION_WAIT: Duration = Duration::from_secs(60);
/// How long a starting host waits for the others' operations and starts.
pub(super) const START_WAIT: Duration = Duration::from_secs(600);
/// The key of the advisory lock an admin operation holds over the fleet.
const OPERATIONS_LOCK: i64 = 0x6f72_697a_7572_7502;

/// This host's part in a fleet on a shared store.
pub struct Fleet {
    pub(super) shared: SharedDeployments,
    /// How the operator names this host (`[store] host_id`).
    host_id: String,
    /// This run of the host (its reservations' owner prefix).
    run: String,
    /// The newest revision this host has applied.
    revision: AtomicI64,
    /// Services whose fleet version this host could not load, with why.
    behind: Mutex<BTreeMap<String, Behind>>,
}

/// A version the fleet serves that this host could not load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Behind {
    pub sha256: String,
    pub reason: String,
}

/// A host of the fleet, as `GET /admin/services` shows it for a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetHostView {
    /// Whether it beat within the last 15 s.
    pub alive: bool,
    /// The version this host could not load, if any: it serves the one before.
    pub behind: Option<Behind>,
    pub host_id: String,
    pub last_seen: String,
    pub run: String,
    /// The sha256 of the version it serves; `None` if it does not serve the service.
    pub sha256: Option<String>,
}

/// What a host's row says it serves, by service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
struct Serving {
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    behind: Option<BehindRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct BehindRow {
    sha256: String,
    reason: String,
}

impl Fleet {
    pub fn new(shared: SharedDeployments, host_id: String, run: String) -> Self {
        Self {
            shared,
            host_id,
            run,
            revision: AtomicI64::new(0),
            behind: Mutex::default(),
        }
    }

    /// Notes that every record up to `revision` has been applied here.
    pub(super) fn applied(&self, revision: i64) {
        self.revision.fetch_max(revision, Ordering::AcqRel);
    }

    fn behind(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Behind>> {
        self.behind.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Held while an admin operation runs: the fleet's advisory lock, on a
/// connection of its own, released when the connection closes.
pub(super) struct OperationLock {
    _client: Option<tokio_postgres::Client>,
}

impl Deployer {
    /// The fleet this host is part of, on a shared store.
    pub fn fleet(&self) -> Option<&Fleet> {
        self.shared.as_deref()
    }

    /// Takes the fleet's lock for an admin operation and applies what other
    /// hosts changed before it; nothing on an embedded store.
    pub(super) async fn exclusive(&self) -> Result<OperationLock, DeployError> {
        self.exclusive_within(OPERATION_WAIT).await
    }

    /// [`Deployer::exclusive`], waiting at most `wait` for another host's operation to end.
    pub(super) async fn exclusive_within(
        &self,
        wait: Duration,
    ) -> Result<OperationLock, DeployError> {
        let Some(fleet) = self.fleet() else {
            return Ok(OperationLock { _client: None });
        };
        let unavailable = |source: anyhow::Error| DeployError::Store(source);
        let (client, mut messages) = fleet
            .shared
            .store()
            .connect_dedicated()
            .await
            .map_err(unavailable)?;
        // The connection does its work while its messages are read.
        tokio::spawn(async move { while messages.next().await.is_some() {} });
        tokio::time::timeout(
            wait,
            client.execute("SELECT pg_advisory_lock($1)", &[&OPERATIONS_LOCK]),
        )
        .await
        .map_err(|_| {
            DeployError::Busy(format!(
                "another host has held the fleet's lock for admin operations for {} s (an upload compiling, or a host starting)",
                wait.as_secs()
            ))
        })?
        .map_err(|err| unavailable(postgres_error(err)))?;
        self.catch_up().await.map_err(unavailable)?;
        Ok(OperationLock {
            _client: Some(client),
        })
    }

    /// Starts following the fleet: the change feed and the heartbeat, until
    /// the deployer is dropped. Nothing on an embedded store.
    pub fn follow(self: &Arc<Self>) {
        let Some(fleet) = self.fleet() else {
            return;
        };
        let store = fleet.shared.store().clone();
        let deployer = Arc::downgrade(self);
        tokio::spawn(follow_feed(deployer.clone(), store));
        tokio::spawn(beat(deployer));
    }

    /// Applies every record written since the newest revision applied here.
    pub async fn catch_up(&self) -> anyhow::Result<()> {
        let Some(fleet) = self.fleet() else {
            return Ok(());
        };
        let since = fleet.revision.load(Ordering::Acquire);
        let changes = fleet.shared.changes_since(since).await?;
        if changes.is_empty() {
            return Ok(());
        }
        let mut state = self.lock().await;
        let mut newest = since;
        for change in changes {
            newest = newest.max(change.revision);
            self.apply_change(&mut state, change).await;
        }
        fleet.revision.fetch_max(newest, Ordering::AcqRel);
        Ok(())
    }

    /// Serves a service as another host's write of its record says.
    async fn apply_change(&self, state: &mut State, change: RecordChange) {
        let id = change.service;
        let record: Option<Deployment> = match change.document.map(serde_json::from_value) {
            Some(Ok(record)) => Some(record),
            None => None,
            Some(Err(err)) => {
                tracing::error!(service = %id, "the fleet's record of the service is damaged; it is not followed: {err}");
                return;
            }
        };
        if state.records.get(&id) == record.as_ref() {
            // This host's own write, or one it applied already.
            return;
        }
        match record {
            None => {
                state.records.remove(&id);
            }
            Some(record) => {
                state.records.insert(id.clone(), record);
            }
        }
        let record = state.records.get(&id).cloned();
        let config = match (state.file_services.get(&id), &record) {
            (Some(config), _) => Some(config.clone()),
            (None, Some(record)) => record.added.as_ref().map(|added| added.config(&id)),
            (None, None) => None,
        };
        let Some(config) = config else {
            // Not a service of this host: removed through the admin API on
            // another host, or another host's config file.
            if self.registry.by_id(&id).is_some() && !state.in_config_file(&id) {
                self.registry.remove(&id);
                tracing::info!(service = %id, "service removed on another host of the fleet: no longer served");
            }
            return;
        };
        let Some(active) = record.and_then(|record| record.active) else {
            return;
        };
        let current = self
            .registry
            .by_id(&id)
            .filter(|served| served.config() == &config);
        if current
            .as_ref()
            .and_then(|served| served.version())
            .is_some_and(|serving| serving.version.sha256 == active)
        {
            self.forget_behind(&id);
            return;
        }
        let label = format!("version {active} (the fleet's)");
        let loaded = match self.read_kept(&active).await {
            Ok(bytes) => self
                .validate(&config, bytes, &active, &label)
                .await
                .map(|(loaded, _)| loaded)
                .map_err(|(reason, _)| reason),
            Err(err) => Err(err.to_string()),
        };
        match loaded {
            Ok(loaded) => {
                let previous = current
                    .as_ref()
                    .and_then(|served| served.version())
                    .map(|serving| serving.version.sha256);
                let swapped = previous.is_some();
                self.put_in_service(
                    &config,
                    current,
                    loaded,
                    crate::service::Source::Fleet,
                    swapped,
                );
                self.forget_behind(&id);
                tracing::info!(
                    service = %id,
                    sha256 = %active,
                    previous = previous.as_deref().unwrap_or("none"),
                    "plugin serving: the fleet's version, written by another host"
                );
            }
            Err(reason) => {
                tracing::error!(
                    service = %id,
                    sha256 = %active,
                    "the fleet's version cannot serve on this host; the old one keeps serving: {reason}"
                );
                if let Some(fleet) = self.fleet() {
                    fleet.behind().insert(
                        id,
                        Behind {
                            sha256: active,
                            reason,
                        },
                    );
                }
            }
        }
    }

    fn forget_behind(&self, id: &str) {
        if let Some(fleet) = self.fleet() {
            fleet.behind().remove(id);
        }
    }

    /// The fleet's versions this host could not load, by service.
    pub fn behind(&self) -> BTreeMap<String, Behind> {
        self.fleet()
            .map(|fleet| fleet.behind().clone())
            .unwrap_or_default()
    }

    /// Every host seen in the last ten minutes, by service: the version it
    /// serves, and when it was last seen. `None` on an embedded store.
    pub async fn fleet_view(&self) -> Option<anyhow::Result<BTreeMap<String, Vec<FleetHostView>>>> {
        let fleet = self.fleet()?;
        Some(fleet_hosts(fleet).await)
    }

    /// What this host serves, as its heartbeat row says.
    fn serving(&self) -> BTreeMap<String, Serving> {
        let behind = self.behind();
        self.registry
            .all()
            .iter()
            .map(|service| {
                let id = service.id().to_owned();
                let serving = Serving {
                    sha256: service.version().map(|active| active.version.sha256),
                    behind: behind.get(&id).map(|behind| BehindRow {
                        sha256: behind.sha256.clone(),
                        reason: behind.reason.clone(),
                    }),
                };
                (id, serving)
            })
            .collect()
    }
}

async fn fleet_hosts(fleet: &Fleet) -> anyhow::Result<BTreeMap<String, Vec<FleetHostView>>> {
    let client = fleet.shared.store().client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT host_id, run, {}, serving, last_seen > now() - make_interval(secs => $1)
                 FROM hosts WHERE last_seen > now() - interval '10 minutes' ORDER BY host_id, run",
                utc_text("last_seen")
            ),
            &[&(GONE_AFTER.as_secs_f64())],
        )
        .await
        .map_err(postgres_error)?;
    let mut by_service: BTreeMap<String, Vec<FleetHostView>> = BTreeMap::new();
    for row in rows {
        let (host_id, run, last_seen): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let serving: BTreeMap<String, Serving> =
            serde_json::from_str(row.get::<_, &str>(3)).unwrap_or_default();
        let alive: bool = row.get(4);
        for (service, serving) in serving {
            by_service.entry(service).or_default().push(FleetHostView {
                alive,
                behind: serving.behind.map(|behind| Behind {
                    sha256: behind.sha256,
                    reason: behind.reason,
                }),
                host_id: host_id.clone(),
                last_seen: last_seen.clone(),
                run: run.clone(),
                sha256: serving.sha256,
            });
        }
    }
    Ok(by_service)
}

/// Follows the change feed: `LISTEN`, and a poll every [`POLL`] besides.
async fn follow_feed(deployer: Weak<Deployer>, store: crate::store::postgres::Postgres) {
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut notices: Option<tokio::sync::mpsc::Receiver<()>> = None;
    let mut listener: Option<tokio_postgres::Client> = None;
    let mut failing = false;
    loop {
        if listener.is_none() {
            match listen(&store).await {
                Ok((client, receiver)) => {
                    listener = Some(client);
                    notices = Some(receiver);
                }
                Err(err) => {
                    tracing::debug!("cannot listen for the fleet's changes; polling: {err:#}")
                }
            }
        }
        let notified = async {
            match notices.as_mut() {
                Some(receiver) => receiver.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            alive = notified => if !alive {
                // The listening connection closed: listen again next round.
                listener = None;
                notices = None;
            },
            _ = poll.tick() => {}
        }
        let Some(deployer) = deployer.upgrade() else {
            return;
        };
        match deployer.catch_up().await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the fleet's changes can be read again; this host has caught up");
            }
            Ok(()) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(
                    "cannot read the fleet's changes; trying again every {} s: {err:#}",
                    POLL.as_secs()
                );
            }
            Err(_) => {}
        }
    }
}

/// A connection listening on the change feed, and a channel that gets a
/// message for each notice (closed when the connection is).
async fn listen(
    store: &crate::store::postgres::Postgres,
) -> anyhow::Result<(tokio_postgres::Client, tokio::sync::mpsc::Receiver<()>)> {
    let (client, mut messages) = store.connect_dedicated().await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                    // A full channel has a notice waiting already: enough to catch up.
                    let _ = sender.try_send(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(postgres_error)?;
    Ok((client, receiver))
}

/// Writes this host's heartbeat every [`HEARTBEAT`] until the deployer is
/// dropped, and forgets hosts gone for an hour.
async fn beat(deployer: Weak<Deployer>) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        every.tick().await;
        let Some(deployer) = deployer.upgrade() else {
            return;
        };
        let Some(fleet) = deployer.fleet() else {
            return;
        };
        let serving = serde_json::to_string(&deployer.serving()).unwrap_or_else(|_| "{}".into());
        let written = async {
            let client = fleet.shared.store().client().await?;
            client
                .execute(
                    "INSERT INTO hosts (run, host_id, serving) VALUES ($1, $2, $3)
                     ON CONFLICT (run) DO UPDATE SET last_seen = now(), serving = excluded.serving",
                    &[&fleet.run, &fleet.host_id, &serving],
                )
                .await
                .map_err(postgres_error)?;
            client
                .execute(
                    "DELETE FROM hosts WHERE last_seen < now() - interval '1 hour'",
                    &[],
                )
                .await
                .map_err(postgres_error)?;
            anyhow::Ok(())
        };
        match written.await {
            Ok(()) => failing = false,
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(
                    "cannot write this host's heartbeat to the shared store; trying again every {} s: {err:#}",
                    HEARTBEAT.as_secs()
                );
            }
            Err(_) => {}
        }
    }
}
