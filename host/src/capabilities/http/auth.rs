//! `[services.http.auth."ORIGIN"]`: credentials the operator holds for an
//! allowed origin, read at start from the environment or a file, which the
//! host sends as the `Authorization` of that origin's requests. The house
//! rule of `[services.sql.NAME]`: the operator holds credentials, the plugin
//! only calls the origin they are for.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;
use wasmtime_wasi_http::Error;

use super::super::capability::Reading;
use super::AllowedOrigin;
use crate::setting::Secret;

/// One `[services.http.auth."ORIGIN"]` table, as written: HTTP Basic
/// (`basic_user` and `basic_password_env` or `basic_password_file`) or a
/// bearer token (`bearer_env` or `bearer_file`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAuthFile {
    pub basic_user: Option<String>,
    pub basic_password_env: Option<String>,
    pub basic_password_file: Option<PathBuf>,
    pub bearer_env: Option<String>,
    pub bearer_file: Option<PathBuf>,
}

/// What the host sends as `Authorization` to one origin.
#[derive(Clone, PartialEq)]
pub struct HttpCredential {
    pub origin: AllowedOrigin,
    /// The header's whole value (`Basic ...`, `Bearer ...`).
    header: Secret,
    /// The password or token itself, which the host blanks out of plugin text.
    secret: Secret,
}

impl HttpCredential {
    /// What the host blanks out of its plugin's text.
    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        [&self.header, &self.secret].into_iter()
    }

    /// The `Authorization` value, marked sensitive so that no HTTP layer logs it.
    pub fn header_value(&self) -> Result<http::HeaderValue, Error> {
        let mut value = http::HeaderValue::from_str(self.header.expose()).map_err(|_| {
            // Checked when the config was read; this is the host's fault if reached.
            Error::InternalError(Some(
                "the operator's credentials are not a valid header".into(),
            ))
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl std::fmt::Debug for HttpCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCredential")
            .field("origin", &self.origin.to_string())
            .finish_non_exhaustive()
    }
}

/// The credentials of `[services.http.auth]`, each for an origin of `allow`.
pub fn credentials(
    tables: BTreeMap<String, HttpAuthFile>,
    allow: &[AllowedOrigin],
    reading: &Reading<'_>,
) -> Result<Vec<HttpCredential>, String> {
    let mut credentials: Vec<HttpCredential> = Vec::new();
    for (entry, table) in tables {
        let at = format!("[services.http.auth.{entry:?}]");
        let origin = AllowedOrigin::parse(&entry).map_err(|why| format!("{at}: {why}"))?;
        if !allow.contains(&origin) {
            return Err(format!(
                "{at}: {origin} is not in allow; add it there, or remove the table"
            ));
        }
        if credentials.iter().any(|held| held.origin == origin) {
            return Err(format!(
                "{at}: {origin} already has credentials under another spelling; keep one table"
            ));
        }
        let basic = table.basic_user.is_some()
            || table.basic_password_env.is_some()
            || table.basic_password_file.is_some();
        let bearer = table.bearer_env.is_some() || table.bearer_file.is_some();
        let (header, secret) = match (basic, bearer) {
            (true, false) => {
                let user = table.basic_user.filter(|user| !user.is_empty()).ok_or_else(|| {
                    format!("{at}: basic_user is missing or empty; name the user the password is for")
                })?;
                if user.contains(':') {
                    return Err(format!(
                        "{at}: basic_user {user:?} has a ':', which HTTP Basic cannot carry in a user name; use another user"
                    ));
                }
                let password = reading.env_or_file(
                    &at,
                    "basic_password",
                    "password",
                    table.basic_password_env,
                    table.basic_password_file,
                )?;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                (format!("Basic {token}"), password)
            }
            (false, true) => {
                let token = reading.env_or_file(
                    &at,
                    "bearer",
                    "token",
                    table.bearer_env,
                    table.bearer_file,
                )?;
                (format!("Bearer {token}"), token)
            }
            _ => {
                return Err(format!(
                    "{at} must hold one kind of credentials: basic_user with basic_password_env or basic_password_file, or bearer_env or bearer_file"
                ));
            }
        };
        if http::HeaderValue::from_str(&header).is_err() {
            return Err(format!(
                "{at}: the credentials have a character no HTTP header may carry (a line break?); write them on one line"
            ));
        }
        credentials.push(HttpCredential {
            origin,
            header: Secret::new(header),
            secret: Secret::new(secret),
        });
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(dir: &std::path::Path, table: &str) -> Result<crate::config::Config, String> {
        let env = |name: &str| match name {
            "RABBIT_PASSWORD" => Some("s3cret-pw".to_owned()),
            "TOKEN" => Some("tok-123".to_owned()),
            "BROKEN" => Some("line\nbreak".to_owned()),
            _ => None,
        };
        crate::config::Config::parse(
            &format!(
                "[[services]]\nid = \"mq\"\nplugin = \"mq.wasm\"\npassword = \"p\"\n[services.http]\nallow = [\"http://127.0.0.1:15672\", \"https://api.example.com\"]\n{table}"
            ),
            dir,
            &crate::config::Overrides::default(),
            env,
        )
        .map_err(|err| err.to_string())
    }

    #[test]
    fn credentials_are_read_for_allowed_origins_and_never_shown() {
        let dir = tempfile::tempdir().expect("a temporary dir");
        std::fs::write(dir.path().join("token"), "from-file\n").expect("the token is written");
        std::fs::write(dir.path().join("empty"), "\n").expect("the file is written");
        let config = parse(
            dir.path(),
            "[services.http.auth.\"http://127.0.0.1:15672/\"]\nbasic_user = \"orizuru\"\nbasic_password_env = \"RABBIT_PASSWORD\"\n[services.http.auth.\"https://API.example.com:443\"]\nbearer_file = \"token\"\n",
        )
        .expect("two credentials");
        let service = &config.services[0];
        let http = service.grants.http.as_ref().expect("granted");
        let held: Vec<(String, String)> = http
            .auth
            .iter()
            .map(|credential| {
                (
                    credential.origin.to_string(),
                    credential.header.expose().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            held,
            [
                (
                    "http://127.0.0.1:15672".to_owned(),
                    // base64("orizuru:s3cret-pw")
                    "Basic b3JpenVydTpzM2NyZXQtcHc=".to_owned()
                ),
                (
                    "https://api.example.com:443".to_owned(),
                    "Bearer from-file".to_owned()
                ),
            ]
        );
        assert!(
            http.auth[0]
                .header_value()
                .expect("a header")
                .is_sensitive()
        );
        let blanked: Vec<&str> =
            <super::super::Http as crate::capabilities::Capability>::secrets(&service.grants.http)
                .into_iter()
                .map(Secret::expose)
                .collect();
        assert_eq!(
            blanked,
            [
                "Basic b3JpenVydTpzM2NyZXQtcHc=",
                "s3cret-pw",
                "Bearer from-file",
                "from-file"
            ]
        );
        let shown = format!("{service:?}");
        for secret in ["s3cret", "b3Jpen", "from-file"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }

        for (table, says) in [
            (
                "[services.http.auth.\"http://127.0.0.1:5672\"]\nbearer_env = \"TOKEN\"\n",
                "[services.http.auth.\"http://127.0.0.1:5672\"]: http://127.0.0.1:5672 is not in allow; add it there, or remove the table",
            ),
            (
                "[services.http.auth.\"https://127.0.0.1:15672\"]\nbearer_env = \"TOKEN\"\n",
                "https://127.0.0.1:15672 is not in allow",
            ),
            (
                "[services.http.auth.\"127.0.0.1\"]\nbearer_env = \"TOKEN\"\n",
                "is not http or https",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbearer_env = \"TOKEN\"\n[services.http.auth.\"HTTP://127.0.0.1:15672/\"]\nbearer_env = \"TOKEN\"\n",
                "already has credentials under another spelling; keep one table",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\n",
                "must hold one kind of credentials",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbasic_user = \"a\"\nbasic_password_env = \"RABBIT_PASSWORD\"\nbearer_env = \"TOKEN\"\n",
                "must hold one kind of credentials",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbasic_password_env = \"RABBIT_PASSWORD\"\n",
                "basic_user is missing or empty",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbasic_user = \"a:b\"\nbasic_password_env = \"RABBIT_PASSWORD\"\n",
                "has a ':', which HTTP Basic cannot carry",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbasic_user = \"a\"\n",
                "must say where its password is read from: basic_password_env = \"NAME\" or basic_password_file = \"PATH\", one of them",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbasic_user = \"a\"\nbasic_password_env = \"UNSET\"\n",
                "basic_password_env names the environment variable UNSET, which is not set or empty",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbearer_file = \"missing\"\n",
                "bearer_file names",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbearer_file = \"empty\"\n",
                "which is empty; write the token in it",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbearer_env = \"BROKEN\"\n",
                "a character no HTTP header may carry",
            ),
            (
                "[services.http.auth.\"http://127.0.0.1:15672\"]\nbearer = \"inline\"\n",
                "unknown field `bearer`",
            ),
        ] {
            let err = parse(dir.path(), table).expect_err(table);
            assert!(err.contains(says), "{table}: {err}");
            for secret in ["s3cret-pw", "tok-123", "line\nbreak"] {
                assert!(!err.contains(secret), "{secret} in {err}");
            }
        }
    }
}
