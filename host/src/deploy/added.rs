//! Services added through the admin API: the settings kept for them in the
//! ledger, the service config built from those settings, and their check,
//! which is the config file's ([`ServiceSettings::check`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DeployError;
use crate::config::{AnswerLimits, Grants, PasswordSource, Secret, ServiceConfig, ServiceSettings};

/// A service added through the admin API, as its record in the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredAdded")]
pub struct AddedService {
    pub username: String,
    /// The SHA-256 of the password, in hex: the password itself is given
    /// to the operator once, when the service is added, and kept nowhere.
    pub password_sha256: String,
    pub timeout_ms: u64,
    pub memory_mb: u64,
    /// Kept under its old name, so records read both ways across versions.
    #[serde(rename = "max_instances", default = "default_max_concurrent_calls")]
    pub max_concurrent_calls: u32,
    pub added_at: String,
}

/// A record as written by this host or an older one, which kept the
/// password in plain text: read as its digest.
#[derive(Deserialize)]
struct StoredAdded {
    username: String,
    #[serde(default)]
    password_sha256: Option<String>,
    #[serde(default)]
    password: Option<String>,
    timeout_ms: u64,
    memory_mb: u64,
    #[serde(rename = "max_instances", default = "default_max_concurrent_calls")]
    max_concurrent_calls: u32,
    added_at: String,
}

impl From<StoredAdded> for AddedService {
    fn from(stored: StoredAdded) -> Self {
        let password_sha256 = match (stored.password_sha256, stored.password) {
            (Some(digest), _) => digest,
            (None, Some(plain)) => crate::runtime::sha256(plain.as_bytes()),
            (None, None) => String::new(),
        };
        AddedService {
            username: stored.username,
            password_sha256,
            timeout_ms: stored.timeout_ms,
            memory_mb: stored.memory_mb,
            max_concurrent_calls: stored.max_concurrent_calls,
            added_at: stored.added_at,
        }
    }
}

/// Whether a stored record document keeps an added service's password in
/// plain text (written by an older host): it is written again, hashed.
pub fn keeps_plain_password(document: &serde_json::Value) -> bool {
    document
        .get("added")
        .is_some_and(|added| added.get("password").is_some())
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
    /// Settings checked as the config file's are, kept with the digest of a new password.
    pub fn new(settings: ServiceSettings, password: &str, added_at: String) -> Self {
        AddedService {
            username: settings.username,
            password_sha256: crate::runtime::sha256(password.as_bytes()),
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
            password: Secret::new(String::new()),
            password_sha256: Some(self.digest()),
            password_source: PasswordSource::AdminApi,
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: self.memory_mb * 1024 * 1024,
            max_concurrent_calls: self.max_concurrent_calls,
            answers: AnswerLimits::default(),
            reuse: None,
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

impl AddedService {
    /// The password's digest as bytes; a record with none (damaged) gets
    /// one no password has, so nothing authenticates.
    fn digest(&self) -> [u8; 32] {
        let mut digest = [0u8; 32];
        if !decode_hex(&self.password_sha256, &mut digest) {
            tracing::error!(
                username = %self.username,
                "the record of a service added through the admin API has no password digest; no password is accepted until it is added again"
            );
            digest = [0xff; 32];
        }
        digest
    }
}

/// Decodes 64 hex digits into `out`; false when `text` is not that.
fn decode_hex(text: &str, out: &mut [u8; 32]) -> bool {
    if text.len() != 64 {
        return false;
    }
    for (index, pair) in text.as_bytes().chunks(2).enumerate() {
        let digit = |byte: u8| (byte as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => out[index] = (high * 16 + low) as u8,
            _ => return false,
        }
    }
    true
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
        AddedService::new(settings.settings("pg"), "secret", "now".into())
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
        assert_eq!(config.password.expose(), "");
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(b"secret").into();
        assert_eq!(config.password_digest(), digest);
        assert_eq!(config.password_sha256, Some(digest));
        // Kept as a digest only.
        let kept = serde_json::to_string(&added).expect("serialisable");
        assert!(!kept.contains("\"password\""), "{kept}");
        assert!(kept.contains(&crate::runtime::sha256(b"secret")), "{kept}");
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
    fn a_plain_password_of_an_older_record_is_read_and_kept_as_its_digest() {
        let older = serde_json::json!({"added": {"username":"u","password":"p","timeout_ms":5,"memory_mb":6,"added_at":"t"}});
        assert!(keeps_plain_password(&older));
        let added: AddedService =
            serde_json::from_value(older["added"].clone()).expect("an older record");
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(b"p").into();
        assert_eq!(added.config("s").password_digest(), digest);
        let rewritten = serde_json::json!({ "added": added });
        assert!(!keeps_plain_password(&rewritten));
        let kept = serde_json::to_string(&added).expect("serialisable");
        assert!(!kept.contains("\"password\""), "{kept}");
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
