//! The services this host serves, found by id or by basic-auth username.

use std::collections::HashMap;
use std::sync::Arc;

use crate::service::Service;

#[derive(Default)]
pub struct Registry {
    by_id: HashMap<String, Arc<Service>>,
    id_by_username: HashMap<String, String>,
}

impl Registry {
    pub fn new(services: impl IntoIterator<Item = Service>) -> Self {
        let mut registry = Registry::default();
        for service in services {
            registry
                .id_by_username
                .insert(service.config().username.clone(), service.id().to_owned());
            registry
                .by_id
                .insert(service.id().to_owned(), Arc::new(service));
        }
        registry
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Service>> {
        self.by_id.get(id)
    }

    pub fn by_username(&self, username: &str) -> Option<&Arc<Service>> {
        self.id_by_username
            .get(username)
            .and_then(|id| self.by_id.get(id))
    }
}
