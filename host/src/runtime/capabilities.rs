//! What a plugin may import beyond WASI's clocks, random and stdio, each
//! granted per service in the config (deny by default).
//!
//! Every capability is linked once, in the engine's shared linker; what a
//! service may use is checked when its plugin is loaded, from the
//! component's imports, so a plugin that imports an interface its service
//! is not granted is refused with the config key that would grant it,
//! before it serves a single call.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, error::Context as _};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

use super::sandbox::{CallTags, Sandbox};
use crate::config::{Grants, SqlConnection};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/since_v0.1.0/deps/logging",
        world: "wasi:logging/imports",
    });
}

use bindings::wasi::logging::logging::{self, Level};

/// One capability: the interfaces it covers and the key that grants it.
struct Capability {
    /// Import names start with this (`wasi:logging/`).
    prefix: &'static str,
    /// What an operator writes in the service's entry to grant it.
    key: &'static str,
    granted: fn(&Grants) -> bool,
}

const CAPABILITIES: &[Capability] = &[
    Capability {
        prefix: "wasi:logging/",
        key: "`logging = true`",
        granted: |grants| grants.logging,
    },
    Capability {
        prefix: "wasi:keyvalue/",
        key: "`keyvalue = true`",
        granted: |grants| grants.keyvalue,
    },
    Capability {
        prefix: "wasi:config/",
        key: "a [services.config] or [services.secrets] table",
        granted: |grants| grants.config.is_some(),
    },
    Capability {
        prefix: "wasi:http/",
        key: "a [services.http] table with the origins it may call",
        granted: |grants| grants.http.is_some(),
    },
    Capability {
        prefix: "orizuru:service/sql",
        key: "a [services.sql.NAME] table",
        granted: |grants| !grants.sql.is_empty(),
    },
];

/// A service's grants, as its calls use them.
pub struct Granted {
    /// Values and secrets together, as `wasi:config/store` hands them out.
    config: Option<WasiConfigVariables>,
    /// The pools of `[services.sql.NAME]`, shared by every call of this plugin version.
    pub(super) sql: super::sql::Connections,
    /// Where `[services.http]` lets the plugin send requests.
    pub(super) http: Option<Arc<crate::config::HttpGrant>>,
}

impl Granted {
    pub fn of(grants: &Grants) -> Self {
        Self {
            config: grants.config.as_ref().map(|config| {
                config
                    .values
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str()))
                    .chain(
                        config
                            .secrets
                            .iter()
                            .map(|(key, secret)| (key.as_str(), secret.expose())),
                    )
                    .collect()
            }),
            sql: super::sql::Connections::of(&grants.sql),
            http: grants.http.clone().map(Arc::new),
        }
    }
}

/// Links every capability; [`check`] decides which a plugin may use.
pub fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    logging::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |sandbox| sandbox)
        .context("cannot link wasi:logging for plugins")?;
    wasmtime_wasi_config::add_to_linker(linker, |sandbox: &mut Sandbox| {
        WasiConfig::from(sandbox.granted.config.as_ref().unwrap_or(&NO_CONFIG))
    })
    .context("cannot link wasi:config for plugins")?;
    super::sql::add_to_linker(linker)?;
    super::keyvalue::add_to_linker(linker).context("cannot link wasi:keyvalue for plugins")?;
    super::http::add_to_linker(linker).context("cannot link wasi:http for plugins")?;
    Ok(())
}

/// What a plugin whose service has no config table would read (it is
/// refused at load, so this is never seen).
static NO_CONFIG: std::sync::LazyLock<WasiConfigVariables> =
    std::sync::LazyLock::new(WasiConfigVariables::new);

/// The capabilities a component imports, each with the key that grants it.
pub fn requested(engine: &Engine, component: &Component) -> Vec<(String, &'static str)> {
    component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| {
            CAPABILITIES
                .iter()
                .find(|capability| name.starts_with(capability.prefix))
                .map(|capability| (name.to_owned(), capability.key))
        })
        .collect()
}

/// Refuses a component that imports a capability its service is not granted.
pub fn check(
    engine: &Engine,
    component: &Component,
    grants: &Grants,
    label: &str,
    service: &str,
) -> wasmtime::Result<()> {
    for (name, _) in component.component_type().imports(engine) {
        let Some(capability) = CAPABILITIES
            .iter()
            .find(|capability| name.starts_with(capability.prefix))
        else {
            continue;
        };
        if !(capability.granted)(grants) {
            wasmtime::bail!(
                "{label} imports {name}, which service \"{service}\" is not granted; add {} to its [[services]] entry to grant it, or build the plugin without it",
                capability.key
            );
        }
    }
    Ok(())
}

/// Blanks a service's secrets out of text its plugin wrote.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<[String]>,
}

impl Redactor {
    pub fn of(grants: &Grants) -> Self {
        let mut secrets: Vec<String> = grants
            .config
            .iter()
            .flat_map(|config| config.secrets.values())
            .chain(grants.sql.values().flat_map(SqlConnection::secrets))
            .map(|secret| secret.expose().to_owned())
            .filter(|secret| !secret.is_empty())
            .collect();
        // The longest first, so a secret that contains another is blanked whole.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Self {
            secrets: secrets.into(),
        }
    }

    /// The length of the longest secret, 0 when there is none.
    pub fn longest(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }

    /// Where to cut `text` near `at` so that no secret is split: `at`,
    /// moved to the end of any secret that starts before it and ends after.
    pub fn cut_after_secrets(&self, text: &[u8], at: usize) -> usize {
        let mut cut = at.min(text.len());
        loop {
            let moved = self.secrets.iter().find_map(|secret| {
                let secret = secret.as_bytes();
                (cut.saturating_sub(secret.len() - 1)..cut)
                    .find(|&start| text[start..].starts_with(secret))
                    .map(|start| start + secret.len())
            });
            match moved {
                Some(end) if end > cut => cut = end,
                _ => return cut,
            }
        }
    }

    /// How much of `text` to keep when nothing more will follow it: all
    /// but a tail that could be the start of a secret.
    pub fn without_secret_start(&self, text: &[u8]) -> usize {
        let tail = self
            .secrets
            .iter()
            .filter_map(|secret| {
                let secret = secret.as_bytes();
                (1..secret.len())
                    .rev()
                    .find(|&length| text.ends_with(&secret[..length]))
            })
            .max()
            .unwrap_or(0);
        text.len() - tail
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), "[secret]"));
            }
        }
        text
    }
}

/// The lines one call may still log through `wasi:logging` (the service's
/// `max_log_lines`); the rest are counted and dropped.
pub struct LogBudget {
    service: Arc<str>,
    state: Mutex<(u32, usize)>,
}

impl LogBudget {
    pub fn new(service: Arc<str>, lines: u32) -> Self {
        Self {
            service,
            state: Mutex::new((lines, 0)),
        }
    }

    /// The service whose call this is.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether one more line may be logged.
    fn take(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 == 0 {
            state.1 += 1;
            false
        } else {
            state.0 -= 1;
            true
        }
    }

    /// Says how many lines were dropped, if any.
    pub fn finish(&self, tags: &CallTags) {
        let dropped = self.state.lock().unwrap_or_else(PoisonError::into_inner).1;
        if dropped > 0 {
            tracing::warn!(
                service = %self.service,
                request_id = tags.request_id.as_deref(),
                dropped_lines = dropped,
                "plugin log lines past the service's max_log_lines were dropped"
            );
        }
    }
}

/// Longer messages are cut here.
const MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Longer contexts are cut here: a context names where a line comes from.
const MAX_CONTEXT_BYTES: usize = 256;

/// `text` with its secrets blanked out, then cut to `max` bytes.
fn redacted_and_cut(redactor: &Redactor, text: &str, max: usize) -> String {
    let mut text = redactor.redact(text).into_owned();
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" [cut]");
    }
    text
}

impl logging::Host for Sandbox {
    fn log(&mut self, level: Level, context: String, message: String) {
        if !self.log_budget.take() {
            return;
        }
        let message = redacted_and_cut(&self.redactor, &message, MAX_MESSAGE_BYTES);
        let context = redacted_and_cut(&self.redactor, &context, MAX_CONTEXT_BYTES);
        let tags = &self.tags;
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "orizuru::plugin",
                    $level,
                    service = %self.log_budget.service,
                    instance = tags.instance.as_deref(),
                    request_id = tags.request_id.as_deref(),
                    event_id = tags.event_id.as_deref(),
                    context = (!context.is_empty()).then_some(&*context),
                    critical = matches!(level, Level::Critical).then_some(true),
                    "{message}"
                )
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error | Level::Critical => emit!(tracing::Level::ERROR),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut secrets: Vec<String> = secrets.iter().map(|&secret| secret.to_owned()).collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Redactor {
            secrets: secrets.into(),
        }
    }

    #[test]
    fn a_cut_moves_past_a_secret_it_would_split() {
        let redactor = redactor(&["hunter2", "2xyz"]);
        assert_eq!(redactor.longest(), 7);
        assert_eq!(redactor.cut_after_secrets(b"abhunter2cd", 4), 9);
        // A secret that overlaps the first's end moves the cut again.
        assert_eq!(redactor.cut_after_secrets(b"abhunter2xyzcd", 4), 12);
        assert_eq!(redactor.cut_after_secrets(b"abhunter2cd", 2), 2);
        assert_eq!(redactor.cut_after_secrets(b"abhunter2cd", 9), 9);
        assert_eq!(Redactor::default().cut_after_secrets(b"abc", 2), 2);
    }

    #[test]
    fn a_tail_that_may_start_a_secret_is_left_out() {
        let redactor = redactor(&["hunter2"]);
        assert_eq!(redactor.without_secret_start(b"pw=hunt"), 3);
        assert_eq!(redactor.without_secret_start(b"pw=hunter2"), 10);
        assert_eq!(redactor.without_secret_start(b"pw=x"), 4);
    }

    #[test]
    fn text_is_redacted_before_it_is_cut() {
        let redactor = redactor(&["hunter2"]);
        assert_eq!(redacted_and_cut(&redactor, "abchunter2", 5), "abc[s [cut]");
        assert_eq!(redacted_and_cut(&redactor, "é", 1), " [cut]");
    }
}
