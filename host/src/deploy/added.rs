//! Services added through the admin API: the settings kept for them in the
//! ledger, the service config built from those settings, and their check,
//! which is the config file's ([`ServiceSettings::check`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DeployError;
use crate::config::{AnswerLimits, Grants, PasswordSource, Secret, ServiceConfig, ServiceSettings};

/// A service added through the admin API, as its record in the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedService {
    pub username: String,
    pub password: String,
    pub timeout_ms: u64,
    pub memory_mb: u64,
    /// Kept under its old name, so records read both ways across versions.
    #[serde(rename = "max_instances", default = "default_max_concurrent_calls")]
    pub max_concurrent_calls: u32,
    pub added_at: String,
}

fn default_max_concurrent_calls() -> u32 {
    crate::config::DEFAULT_SERVICE_MAX_CONCURRENT_CALLS
}

/// The settings of a service to add, as the admin API's query gives them.
#[derive(Debug, Clone, Default)]
pub struct NewService {
    pub username: Option<String>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub max_concurrent_calls: Option<u32>,
}

impl NewService {
    /// The settings asked for, with the config file's defaults for the others.
    pub fn settings(self, id: &str) -> ServiceSettings {
        ServiceSettings::new(
            id,
            self.username,
            self.timeout_ms,
            self.memory_mb,
            self.max_concurrent_calls,
        )
    }
}

impl AddedService {
    /// Settings checked as the config file's are, kept with a new password.
    pub fn new(settings: ServiceSettings, password: String, added_at: String) -> Self {
        AddedService {
            username: settings.username,
            password,
            timeout_ms: settings.timeout_ms,
            memory_mb: settings.memory_mb,
            max_concurrent_calls: settings.max_concurrent_calls,
            added_at,
        }
    }

    pub fn settings(&self, id: &str) -> ServiceSettings {
        ServiceSettings {
            id: id.to_owned(),
            username: self.username.clone(),
            timeout_ms: self.timeout_ms,
            memory_mb: self.memory_mb,
            max_concurrent_calls: self.max_concurrent_calls,
        }
    }

    /// The service config it serves under.
    pub fn config(&self, id: &str) -> ServiceConfig {
        ServiceConfig {
            id: id.to_owned(),
            plugin: None,
            username: self.username.clone(),
            password: Secret::new(self.password.clone()),
            password_source: PasswordSource::AdminApi,
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: self.memory_mb * 1024 * 1024,
            max_concurrent_calls: self.max_concurrent_calls,
            answers: AnswerLimits::default(),
            // A service added through the admin API has no capabilities yet.
            grants: Grants::default(),
        }
    }

    /// The service config, once its settings pass the config file's check.
    pub fn checked_config(&self, id: &str) -> Result<ServiceConfig, DeployError> {
        self.settings(id).check().map_err(DeployError::Invalid)?;
        Ok(self.config(id))
    }
}

/// 32 random bytes in hex: the password of a service added through the admin API.
pub fn generate_password() -> Result<String, DeployError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(DeployError::Password)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added(settings: NewService) -> AddedService {
        AddedService::new(settings.settings("pg"), "secret".into(), "now".into())
    }

    #[test]
    fn missing_settings_take_the_config_files_defaults() {
        let added = added(NewService::default());
        assert_eq!(added.username, "pg");
        assert_eq!(added.timeout_ms, crate::config::DEFAULT_TIMEOUT_MS);
        assert_eq!(added.memory_mb, crate::config::DEFAULT_MEMORY_MB);
        assert_eq!(
            added.max_concurrent_calls,
            crate::config::DEFAULT_SERVICE_MAX_CONCURRENT_CALLS
        );
        let config = added.checked_config("pg").expect("the defaults pass");
        assert_eq!(config.memory_bytes, crate::config::DEFAULT_MEMORY_MB << 20);
        assert_eq!(config.password.expose(), "secret");
        assert_eq!(config.password_source, PasswordSource::AdminApi);
        assert_eq!(config.grants, Grants::default());
    }

    #[test]
    fn bad_settings_are_refused_with_the_config_files_sentences() {
        let cases = [
            (
                NewService {
                    username: Some("a:b".into()),
                    ..NewService::default()
                },
                "username \"a:b\" cannot be used for basic auth; use a non-empty name without ':'",
            ),
            (
                NewService {
                    timeout_ms: Some(0),
                    ..NewService::default()
                },
                "timeout_ms must be at least 1",
            ),
            (
                NewService {
                    memory_mb: Some(0),
                    ..NewService::default()
                },
                "memory_mb is 0; give a value from 1 to 4096",
            ),
            (
                NewService {
                    max_concurrent_calls: Some(0),
                    ..NewService::default()
                },
                "max_concurrent_calls is 0; give a value from 1 to 10000",
            ),
        ];
        for (settings, sentence) in cases {
            let err = added(settings).checked_config("pg").unwrap_err();
            assert!(matches!(err, DeployError::Invalid(_)));
            assert_eq!(err.to_string(), sentence);
        }
    }

    #[test]
    fn a_record_without_max_concurrent_calls_reads_with_the_default() {
        let added: AddedService = serde_json::from_str(
            r#"{"username":"u","password":"p","timeout_ms":5,"memory_mb":6,"added_at":"t"}"#,
        )
        .expect("an older record");
        assert_eq!(
            added.max_concurrent_calls,
            crate::config::DEFAULT_SERVICE_MAX_CONCURRENT_CALLS
        );
    }
}
