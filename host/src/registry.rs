//! The services this host serves, found by id or by basic-auth username.
//!
//! Services come and go while the host runs (the admin API, a changed config
//! file): a request looks its service up once and keeps that `Arc`, so a
//! removal or a settings change never cuts a request short.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::service::Service;

#[derive(Default)]
pub struct Registry {
    services: ArcSwap<Services>,
}

#[derive(Default, Clone)]
struct Services {
    by_id: BTreeMap<String, Arc<Service>>,
    id_by_username: HashMap<String, String>,
}

impl Registry {
    pub fn new(services: impl IntoIterator<Item = Service>) -> Self {
        let registry = Registry::default();
        for service in services {
            registry.put(Arc::new(service));
        }
        registry
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<Service>> {
        self.services.load().by_id.get(id).cloned()
    }

    pub fn by_username(&self, username: &str) -> Option<Arc<Service>> {
        let services = self.services.load();
        services
            .id_by_username
            .get(username)
            .and_then(|id| services.by_id.get(id))
            .cloned()
    }

    /// Every service, by id.
    pub fn all(&self) -> Vec<Arc<Service>> {
        self.services.load().by_id.values().cloned().collect()
    }

    /// Serves `service`, in place of any service with its id.
    pub fn put(&self, service: Arc<Service>) {
        self.services.rcu(|current| {
            let mut next = Services::clone(current);
            if let Some(old) = next.by_id.get(service.id()) {
                next.id_by_username.remove(&old.config().username);
            }
            next.id_by_username
                .insert(service.config().username.clone(), service.id().to_owned());
            next.by_id.insert(service.id().to_owned(), service.clone());
            next
        });
    }

    /// Stops serving a service; requests already running on it finish.
    pub fn remove(&self, id: &str) -> Option<Arc<Service>> {
        let mut removed = None;
        self.services.rcu(|current| {
            let mut next = Services::clone(current);
            removed = next.by_id.remove(id);
            if let Some(service) = &removed {
                next.id_by_username.remove(&service.config().username);
            }
            next
        });
        removed
    }
}
