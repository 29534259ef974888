//! Secrets in the config: a password or token given inline or by the
//! name of an environment variable, and where it came from.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    ConfigFile,
    Environment(String),
    /// Generated when the service was added through the admin API.
    AdminApi,
}

/// A secret given inline as `<key>` or by name as `<key>_env`; `None` when neither is set.
pub(super) fn secret(
    key: &str,
    inline: Option<String>,
    by_name: Option<String>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<(Secret, PasswordSource)>, String> {
    match (inline, by_name) {
        (Some(_), Some(_)) => Err(format!("both {key} and {key}_env are set; keep one")),
        (None, None) => Ok(None),
        (Some(value), None) => Ok(Some((Secret::new(value), PasswordSource::ConfigFile))),
        (None, Some(name)) => match env(&name) {
            Some(value) if !value.is_empty() => Ok(Some((
                Secret::new(value),
                PasswordSource::Environment(name),
            ))),
            _ => Err(format!(
                "{key}_env names the environment variable {name}, which is not set or empty"
            )),
        },
    }
}
