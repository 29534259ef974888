//! The `[services.redis.NAME]` tables: where each connection's URL is read
//! from, and the bounds of its pool, its commands and their replies.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::super::capability::Reading;
use crate::setting::{Secret, one_to};

/// Connections a service's pool may open to one server, unless its table says.
pub const DEFAULT_REDIS_MAX_CONNECTIONS: u32 = 4;
/// The most connections one `[services.redis.NAME]` pool may open.
pub const MAX_REDIS_CONNECTIONS: u32 = 100;
/// KiB one command's reply may take, unless its table says.
pub const DEFAULT_REDIS_MAX_REPLY_KB: u64 = 16 * 1024;
/// The most `max_reply_kb` may be (1 GiB).
pub const MAX_REDIS_REPLY_KB: u64 = 1024 * 1024;

/// A Redis connection a service's plugin may use by name.
#[derive(Clone, PartialEq)]
pub struct RedisConnection {
    /// Read at start; never logged or shown, nor its password.
    pub url: Secret,
    /// The URL's password, as written and decoded, which the host blanks
    /// out of the plugin's text.
    pub passwords: Vec<Secret>,
    /// Connections its pool may open at once.
    pub max_connections: u32,
    /// How long one command may run, waiting for a connection included.
    pub timeout: Duration,
    /// Bytes one reply may take as the plugin receives it.
    pub max_reply_bytes: u64,
}

impl RedisConnection {
    /// What the host blanks out of its plugin's text: the URL and its password.
    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.url).chain(&self.passwords)
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("max_connections", &self.max_connections)
            .field("timeout", &self.timeout)
            .field("max_reply_bytes", &self.max_reply_bytes)
            .finish_non_exhaustive()
    }
}

/// One `[services.redis.NAME]` table: where its URL is read from (`url_env`
/// or `url_file`), how many connections its pool may open, how long one
/// command may run and how large its reply may be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
    pub max_connections: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_reply_kb: Option<u64>,
}

/// The connections a service's plugin may use, by name.
#[derive(Clone, Default, PartialEq)]
pub struct RedisGrant {
    pub connections: BTreeMap<String, RedisConnection>,
}

impl std::fmt::Debug for RedisGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.connections.keys()).finish()
    }
}

/// The connections of `[services.redis.NAME]`, their URLs read and checked;
/// the service's timeout bounds a command unless a table says otherwise.
pub fn redis_connections(
    tables: Option<BTreeMap<String, RedisFile>>,
    reading: &Reading<'_>,
) -> Result<BTreeMap<String, RedisConnection>, String> {
    let mut connections = BTreeMap::new();
    for (name, table) in tables.unwrap_or_default() {
        if name.is_empty() {
            return Err(
                "a [services.redis] table has an empty name; name it as the plugin does ([services.redis.admin])".into(),
            );
        }
        let at = format!("[services.redis.{name}]");
        let url = reading
            .env_or_file(&at, "url", "URL", table.url_env, table.url_file)?
            .trim()
            .to_owned();
        // Neither the URL nor the parser's message (which may quote it) is
        // ever shown: only what is wrong with its shape.
        let well_formed = (url.starts_with("redis://") || url.starts_with("rediss://"))
            && ::redis::IntoConnectionInfo::into_connection_info(url.as_str()).is_ok();
        if !well_formed {
            return Err(format!(
                "{at}: its URL is not one Redis reads; write it as redis://USER:PASSWORD@HOST:PORT (or rediss:// for TLS)"
            ));
        }
        let passwords = password_of(&url)
            .into_iter()
            .flat_map(|(raw, decoded)| {
                if raw == decoded {
                    vec![Secret::new(raw)]
                } else {
                    vec![Secret::new(raw), Secret::new(decoded)]
                }
            })
            .collect();
        let max_connections = table
            .max_connections
            .unwrap_or(DEFAULT_REDIS_MAX_CONNECTIONS);
        if !(1..=MAX_REDIS_CONNECTIONS).contains(&max_connections) {
            return Err(format!(
                "{at}: max_connections is {max_connections}; give a value from 1 to {MAX_REDIS_CONNECTIONS}"
            ));
        }
        let timeout = match table.timeout_ms {
            Some(0) => return Err(format!("{at}: timeout_ms is 0; give at least 1")),
            Some(millis) => Duration::from_millis(millis),
            None => reading.service_timeout,
        };
        let max_reply_kb = table.max_reply_kb.unwrap_or(DEFAULT_REDIS_MAX_REPLY_KB);
        one_to("max_reply_kb", max_reply_kb, MAX_REDIS_REPLY_KB)
            .map_err(|why| format!("{at}: {why}"))?;
        connections.insert(
            name,
            RedisConnection {
                url: Secret::new(url),
                passwords,
                max_connections,
                timeout,
                max_reply_bytes: max_reply_kb * 1024,
            },
        );
    }
    Ok(connections)
}

/// The password of a `redis://USER:PASSWORD@HOST` URL, as written and
/// percent-decoded; `redis://:PASSWORD@HOST` has one too.
fn password_of(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _host) = authority.rsplit_once('@')?;
    let (_user, password) = userinfo.split_once(':')?;
    if password.is_empty() {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(password)
        .decode_utf8_lossy()
        .into_owned();
    Some((password.to_owned(), decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_as_written_and_decoded() {
        assert_eq!(
            password_of("redis://admin:s3cr%40t@db.internal:6380/0"),
            Some(("s3cr%40t".to_owned(), "s3cr@t".to_owned()))
        );
        assert_eq!(
            password_of("rediss://:hunter2@cache"),
            Some(("hunter2".to_owned(), "hunter2".to_owned()))
        );
        assert_eq!(password_of("redis://127.0.0.1:6379"), None);
        assert_eq!(password_of("redis://user@127.0.0.1"), None);
    }

    #[test]
    fn redis_connections_read_their_urls_and_never_show_them() {
        let dir = tempfile::tempdir().expect("a temporary dir");
        std::fs::write(
            dir.path().join("admin-url"),
            "redis://orizuru:s3cr%40t@cache.internal:6380\n",
        )
        .expect("the URL is written");
        let env = |name: &str| {
            (name == "REDIS_URL").then(|| "rediss://reader:hunter22@127.0.0.1/2".to_owned())
        };
        let parse = |extra: &str| {
            crate::config::Config::parse(
                &format!(
                    "[[services]]\nid = \"cache\"\nplugin = \"cache.wasm\"\npassword = \"p\"\ntimeout_ms = 9000\n{extra}"
                ),
                dir.path(),
                &crate::config::Overrides::default(),
                env,
            )
            .map_err(|err| err.to_string())
        };
        let config = parse(
            "[services.redis.admin]\nurl_file = \"admin-url\"\nmax_connections = 2\n[services.redis.reader]\nurl_env = \"REDIS_URL\"\ntimeout_ms = 250\nmax_reply_kb = 64\n",
        )
        .expect("two connections");
        let redis = &config.services[0].grants.redis.connections;
        assert_eq!(redis.keys().collect::<Vec<_>>(), ["admin", "reader"]);
        let admin = &redis["admin"];
        assert_eq!(
            admin.url.expose(),
            "redis://orizuru:s3cr%40t@cache.internal:6380"
        );
        assert_eq!(
            admin.secrets().map(Secret::expose).collect::<Vec<_>>(),
            [
                "redis://orizuru:s3cr%40t@cache.internal:6380",
                "s3cr%40t",
                "s3cr@t"
            ]
        );
        assert_eq!(admin.max_connections, 2);
        assert_eq!(admin.timeout, Duration::from_millis(9000));
        assert_eq!(admin.max_reply_bytes, DEFAULT_REDIS_MAX_REPLY_KB * 1024);
        let reader = &redis["reader"];
        assert_eq!(reader.max_connections, DEFAULT_REDIS_MAX_CONNECTIONS);
        assert_eq!(reader.timeout, Duration::from_millis(250));
        assert_eq!(reader.max_reply_bytes, 64 * 1024);
        let shown = format!("{:?}", config.services[0]);
        assert!(shown.contains("redis: [\"admin\", \"reader\"]"), "{shown}");
        for secret in ["s3cr", "hunter22", "cache.internal", "redis://"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            parse("").expect("no redis").services[0]
                .grants
                .redis
                .connections
                .is_empty()
        );

        for (table, says) in [
            (
                "[services.redis.admin]\nurl_env = \"UNSET\"\n",
                "[services.redis.admin]: url_env names the environment variable UNSET, which is not set or empty; set it, or remove the table",
            ),
            (
                "[services.redis.admin]\nurl_file = \"missing\"\n",
                "[services.redis.admin]: url_file names",
            ),
            (
                "[services.redis.admin]\n",
                "[services.redis.admin] must say where its URL is read from: url_env = \"NAME\" or url_file = \"PATH\", one of them",
            ),
            (
                "[services.redis.admin]\nurl_env = \"REDIS_URL\"\nmax_connections = 0\n",
                "[services.redis.admin]: max_connections is 0; give a value from 1 to 100",
            ),
            (
                "[services.redis.admin]\nurl_env = \"REDIS_URL\"\ntimeout_ms = 0\n",
                "[services.redis.admin]: timeout_ms is 0; give at least 1",
            ),
            (
                "[services.redis.admin]\nurl_env = \"REDIS_URL\"\nmax_reply_kb = 2000000\n",
                "[services.redis.admin]: max_reply_kb is 2000000; give a value from 1 to 1048576",
            ),
            (
                "[services.redis.admin]\nurl_env = \"REDIS_URL\"\nmax_rows = 5\n",
                "unknown field `max_rows`",
            ),
        ] {
            let err = parse(table).expect_err(table);
            assert!(err.contains(says), "{table}: {err}");
            if !says.starts_with("unknown field") {
                assert!(err.contains("services[0] (id \"cache\")"), "{table}: {err}");
            }
        }

        // A URL that is not Redis's is refused without quoting any of it.
        for url in [
            "postgres://admin:pa55@host/db",
            "redis://admin:pa55@host:port",
        ] {
            std::fs::write(dir.path().join("bad-url"), url).expect("the URL is written");
            let err =
                parse("[services.redis.admin]\nurl_file = \"bad-url\"\n").expect_err("a bad URL");
            assert!(
                err.contains("[services.redis.admin]: its URL is not one Redis reads"),
                "{err}"
            );
            assert!(!err.contains("pa55"), "{err}");
        }
    }
}
