//! Why an action was not done: [`ActionError`] and its sentences, which the
//! person running `tsuru` reads word for word, and how a plugin's failure or
//! a ledger's fault becomes one.

use std::sync::Arc;

use super::Service;
use crate::model::{Action, Refusal};
use crate::runtime::{Failure, Stop};

/// Why an action was not done. Every message is a sentence for the person
/// running `tsuru`, who sees it word for word.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("instance \"{instance}\" does not exist in service \"{service}\"")]
    UnknownInstance { service: String, instance: String },
    #[error("instance \"{instance}\" already exists in service \"{service}\"; choose another name")]
    Duplicate { service: String, instance: String },
    #[error(
        "instance \"{instance}\" of service \"{service}\" is still being created; try again once its create has ended"
    )]
    BeingCreated {
        service: String,
        instance: String,
        action: Action,
    },
    #[error(
        "instance \"{instance}\" is not ready yet ({note}); try again once `tsuru service instance status` says it is up"
    )]
    NotReady { instance: String, note: String },
    #[error("service \"{service}\" does not support {}", unsupported_what(*.action))]
    Unsupported { service: String, action: Action },
    /// The plugin's own answer.
    #[error("{}", describe_refusal(.service, .refusal))]
    Refused { service: String, refusal: Refusal },
    #[error("plugin \"{service}\" stopped: {stop}")]
    Stopped { service: String, stop: Stop },
    #[error("{}", busy(.service, *.limit, *.waited))]
    Busy {
        service: String,
        limit: u32,
        waited: std::time::Duration,
    },
    #[error(
        "the host is already running as many plugin calls as it may at once (max_concurrent_calls) and none ended within queue_wait_ms; try again in a moment"
    )]
    HostBusy,
    #[error(
        "the {} of instance \"{instance}\" in service \"{service}\" ended without an answer; the host's log says why",
        .action.as_str()
    )]
    Interrupted {
        service: String,
        action: Action,
        instance: String,
    },
    /// The answer of a create this request waited on, shared with every request that waited.
    #[error(transparent)]
    Shared(Arc<ActionError>),
    /// The shared store cannot be reached: answered 503 with `Retry-After`.
    #[error("{0}")]
    StoreUnreachable(String),
    #[error("service \"{service}\" could not reach its ledger for the {} of instance \"{instance}\"; try again", .action.as_str())]
    Ledger {
        service: String,
        action: Action,
        instance: String,
        #[source]
        source: anyhow::Error,
    },
}

fn busy(service: &str, limit: u32, waited: std::time::Duration) -> String {
    let waited = if waited.is_zero() {
        String::new()
    } else {
        format!(
            " and none ended within {}",
            crate::runtime::humanize(waited)
        )
    };
    format!(
        "service \"{service}\" is already running as many requests as it may at once ({limit}){waited}; try again in a moment"
    )
}

fn unsupported_what(action: Action) -> &'static str {
    match action {
        Action::Plans => "listing plans",
        Action::Info => "instance info",
        Action::Status => "reporting instance status",
        Action::Proxy => "proxied requests",
        Action::Create => "creating instances",
        Action::Update => "updating instances",
        Action::Remove => "removing instances",
        Action::BindApp => "binding apps",
        Action::UnbindApp => "unbinding apps",
        Action::BindJob => "binding jobs",
        Action::UnbindJob => "unbinding jobs",
    }
}

/// The sentence a plugin's refusal is answered with.
pub(crate) fn describe_refusal(service: &str, refusal: &Refusal) -> String {
    match refusal {
        Refusal::Invalid(sentence)
        | Refusal::NotFound(sentence)
        | Refusal::Conflict(sentence)
        | Refusal::NotReady(sentence)
        | Refusal::Failed(sentence)
            if !sentence.trim().is_empty() =>
        {
            sentence.trim().to_owned()
        }
        Refusal::MissingParams(names) => format!(
            "service \"{service}\" needs these parameters: {}",
            names.join(", ")
        ),
        Refusal::Unsupported => format!("service \"{service}\" does not support this action"),
        _ => format!("service \"{service}\" refused the request without saying why"),
    }
}

impl Service {
    pub(super) fn being_created(&self, action: Action, name: &str) -> ActionError {
        ActionError::BeingCreated {
            service: self.id().to_owned(),
            instance: name.to_owned(),
            action,
        }
    }

    pub(super) fn unknown(&self, name: &str) -> ActionError {
        ActionError::UnknownInstance {
            service: self.id().to_owned(),
            instance: name.to_owned(),
        }
    }

    pub(super) fn failure(&self, action: Action, failure: Failure) -> ActionError {
        let service = self.id().to_owned();
        match failure {
            Failure::Refused(Refusal::Unsupported) => ActionError::Unsupported { service, action },
            Failure::Refused(refusal) => ActionError::Refused { service, refusal },
            Failure::Stopped(Stop::Busy) => ActionError::HostBusy,
            Failure::Stopped(stop) => ActionError::Stopped { service, stop },
        }
    }

    pub(super) fn ledger_error(
        &self,
        action: Action,
        instance: &str,
        source: anyhow::Error,
    ) -> ActionError {
        tracing::error!(
            service = self.id(),
            action = action.as_str(),
            instance,
            "ledger failure: {source:#}"
        );
        if let Some(unreachable) = source
            .chain()
            .find_map(|cause| cause.downcast_ref::<crate::store::Unreachable>())
        {
            return ActionError::StoreUnreachable(unreachable.to_string());
        }
        ActionError::Ledger {
            service: self.id().to_owned(),
            action,
            instance: instance.to_owned(),
            source,
        }
    }
}
