//! Putting plugins in service and taking them out: at start, on an upload
//! or a rollback through the admin API, and when the config file or a
//! plugin file changes on disk.
//!
//! Every new version goes through the same steps before it serves
//! ([`pipeline`]): it is compiled off the async threads (or loaded from the
//! compiled cache), it must export a contract version the host serves and
//! import nothing the host does not grant, and a `plans` call must succeed
//! within the service's deadline. Only then is it kept, recorded and
//! swapped in; a version that fails leaves the old one serving, and the
//! reason is kept.
//!
//! | module | owns |
//! |---|---|
//! | this one | the [`Deployer`], its state and who may read it |
//! | `restore` | start: each service's version as it served before the restart |
//! | `pipeline` | validate, keep, record and swap in one version |
//! | `operations` | the admin API's upload, rollback, add and remove |
//! | `added` | the settings of services added through the admin API |
//! | `reload` | applying a changed config file or plugin file |
//! | `views` | what the admin API shows of services, typed |
//! | `store` | the kept wasm and each service's record in the ledger |
//! | `shared` | the deployer's tables on a shared store, and their change feed |
//! | `fleet` | following the other hosts of a shared store, the heartbeat, the fleet's lock |
//! | `error` | why an operation was not done |
//! | `watch` | watching the config file and plugin files |

mod added;
mod error;
pub mod fleet;
mod operations;
mod pipeline;
mod reload;
mod restore;
pub mod shared;
mod store;
mod views;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use crate::config::{Overrides, ServiceConfig};
use crate::ledger::Deployments;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::service::Steward;

pub use added::{AddedService, NewService, keeps_plain_password};
pub use error::{DeployError, ErrorKind};
pub use operations::Added;
pub use pipeline::Deployed;
pub use store::{Deployment, FailedLoad, KeptVersion, PluginFiles, VersionStore};
pub use views::{
    ActiveView, AddedView, DeployedView, EventView, KeptView, RemovedView, ServiceView,
};

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
    /// This host's part in a fleet; `None` on an embedded store.
    shared: Option<Arc<fleet::Fleet>>,
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

impl State {
    /// The services added through the admin API, with their settings.
    fn added(&self) -> impl Iterator<Item = (&String, &AddedService)> {
        self.records
            .iter()
            .filter_map(|(id, record)| record.added.as_ref().map(|added| (id, added)))
    }

    /// Whether the config file defines the service (served or not).
    fn in_config_file(&self, id: &str) -> bool {
        self.file_services.contains_key(id) || self.unserved.contains_key(id)
    }

    /// Whether the deployer knows the service: from the config file or the admin API.
    fn knows(&self, id: &str) -> bool {
        self.in_config_file(id)
            || self
                .records
                .get(id)
                .is_some_and(|record| record.added.is_some())
    }

    /// The services that should serve: the config file's and those added
    /// through the admin API.
    fn expected(&self) -> BTreeSet<&String> {
        self.file_services
            .keys()
            .chain(self.unserved.keys())
            .chain(self.added().map(|(id, _)| id))
            .collect()
    }
}

impl Deployer {
    /// Takes the right to change things; what changed is published to
    /// readers when it is given back.
    async fn lock(&self) -> Publishing<'_> {
        Publishing {
            view: &self.view,
            state: self.state.lock().await,
        }
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
        state
            .expected()
            .into_iter()
            .filter(|id| !serving.contains(*id))
            .cloned()
            .collect()
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
