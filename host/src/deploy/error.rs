//! Why a deploy operation was not done: one variant per reason, each one
//! sentence for the operator, with its cause kept as the error's source.
//! The admin API maps each to its status ([`DeployError::kind`]).

/// What kind of failure a [`DeployError`] is, which the admin API answers
/// with a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operator asked for something that cannot be: bad settings (400).
    Invalid,
    /// No such service or version (404).
    NotFound,
    /// The request does not fit the service's state (409).
    Conflict,
    /// The plugin failed validation; the old version keeps serving (422).
    Rejected,
    /// The host could not keep or record the version (500).
    Host,
    /// The shared store cannot be reached, or another host holds the
    /// fleet's lock; nothing was done (503).
    Unavailable,
}

/// Why an admin action (or a load at start or on reload) was not done.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Settings that cannot be used, as [`crate::config::ServiceSettings::check`] says.
    #[error("{0}")]
    Invalid(String),
    #[error("no service \"{0}\" is served here; GET /admin/services lists them")]
    NotServed(String),
    #[error("service \"{service}\" keeps no version {sha256}; it keeps {kept}")]
    NotKept {
        service: String,
        sha256: String,
        /// The kept versions, listed, or `none`.
        kept: String,
    },
    #[error(
        "service \"{0}\" has no previous version to roll back to; upload one with PUT /admin/services/{0}/plugin"
    )]
    NoPrevious(String),
    #[error(
        "service \"{0}\" exists already; upload a new plugin with PUT /admin/services/{0}/plugin"
    )]
    Exists(String),
    #[error("username \"{0}\" is taken by another service; choose another with ?username=")]
    UsernameTaken(String),
    #[error(
        "service \"{0}\" comes from the config file; remove its [[services]] entry there (the file is watched)"
    )]
    FromConfigFile(String),
    #[error(
        "service \"{service}\" still has {instances} instance(s) in the ledger; remove them through tsuru first, or add ?force=true to stop serving them anyway (the ledger keeps them)"
    )]
    HasInstances { service: String, instances: u64 },
    /// The plugin failed validation; the reason is also recorded as the
    /// service's last failed load.
    #[error("{0}")]
    Rejected(String),
    /// The plugin file cannot be read, or the service's new settings cannot
    /// be applied to its plugin.
    #[error("{0:#}")]
    Unusable(#[source] anyhow::Error),
    #[error("service \"{0}\" names no plugin file")]
    NoPluginFile(String),
    #[error("service \"{0}\" has no active version")]
    NoActiveVersion(String),
    /// A kept version cannot be read back from the version store.
    #[error("{0:#}")]
    ReadKept(#[source] anyhow::Error),
    #[error("{0:#}; the old version keeps serving")]
    Keep(#[source] anyhow::Error),
    #[error("cannot record service \"{service}\": {source}")]
    Encode {
        service: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "cannot record the plugin of service \"{service}\" in the ledger ({source:#}); the old version keeps serving"
    )]
    Record {
        service: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("cannot read the plugin events of service \"{service}\": {source:#}")]
    Events {
        service: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("cannot count the instances of service \"{service}\": {source:#}")]
    CountInstances {
        service: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("cannot generate a password for the service: {0}")]
    Password(#[source] getrandom::Error),
    /// The shared store failed before the operation began.
    #[error("{0:#}")]
    Store(#[source] anyhow::Error),
    /// Another host's admin operation holds the fleet's lock.
    #[error("{0}; nothing was done, try again")]
    Busy(String),
}

impl DeployError {
    pub fn kind(&self) -> ErrorKind {
        let unreachable = match self {
            DeployError::Store(_) | DeployError::Busy(_) => true,
            DeployError::ReadKept(source)
            | DeployError::Keep(source)
            | DeployError::Record { source, .. }
            | DeployError::Events { source, .. }
            | DeployError::CountInstances { source, .. } => {
                crate::store::Unreachable::in_chain(source)
            }
            _ => false,
        };
        if unreachable {
            return ErrorKind::Unavailable;
        }
        match self {
            DeployError::Invalid(_) => ErrorKind::Invalid,
            DeployError::NotServed(_) | DeployError::NotKept { .. } => ErrorKind::NotFound,
            DeployError::NoPrevious(_)
            | DeployError::Exists(_)
            | DeployError::UsernameTaken(_)
            | DeployError::FromConfigFile(_)
            | DeployError::HasInstances { .. } => ErrorKind::Conflict,
            DeployError::Rejected(_) | DeployError::Unusable(_) => ErrorKind::Rejected,
            DeployError::NoPluginFile(_)
            | DeployError::NoActiveVersion(_)
            | DeployError::ReadKept(_)
            | DeployError::Keep(_)
            | DeployError::Encode { .. }
            | DeployError::Record { .. }
            | DeployError::Events { .. }
            | DeployError::CountInstances { .. }
            | DeployError::Password(_) => ErrorKind::Host,
            DeployError::Store(_) | DeployError::Busy(_) => ErrorKind::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_keep_their_cause_inline_and_as_the_source() {
        let err = DeployError::Record {
            service: "pg".into(),
            source: anyhow::anyhow!("disk full").context("cannot write"),
        };
        assert_eq!(
            err.to_string(),
            "cannot record the plugin of service \"pg\" in the ledger (cannot write: disk full); the old version keeps serving"
        );
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(err.kind(), ErrorKind::Host);
        let err = DeployError::HasInstances {
            service: "pg".into(),
            instances: 2,
        };
        assert!(err.to_string().starts_with(
            "service \"pg\" still has 2 instance(s) in the ledger; remove them through tsuru first"
        ));
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }
}
